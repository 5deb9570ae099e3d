"""Kalshi WebSocket v2 frames as the venue documents them, decoded straight into frozen structs.

Envelope: `{"type", "sid", "seq", "msg"}`, tagged by `type`. `orderbook_snapshot` carries the whole book of one
market (bids only, on YES and NO), `orderbook_delta` a signed change of the resting size at one level,
`market_lifecycle_v2` a market's state change (its `result` once determined), `error` the reply to a command of
ours. Prices and sizes come as fixed-point strings (`yes_dollars_fp`, `price_dollars`, `delta_fp`) or, in the
legacy fields, as integer cents and counts; both are kept as sent here (`parsing.py` turns them into cents and
contracts). Fields the venue adds later are ignored; a missing required field fails the decode, naming it.
"""

from __future__ import annotations

from typing import Final, Literal, Union

import msgspec

#: A price or size as sent: a fixed-point string ("0.5500") or a number (legacy integer cents and counts).
Num = Union[str, float]
#: One level of a book side: [price, size].
WireLevel = tuple[Num, Num]
#: An event time: ISO 8601 or Unix seconds / milliseconds.
Stamp = Union[str, float, None]


class SnapshotBody(msgspec.Struct, frozen=True):
    market_ticker: str
    yes_dollars_fp: list[WireLevel] | None = None
    no_dollars_fp: list[WireLevel] | None = None
    yes_dollars: list[WireLevel] | None = None
    no_dollars: list[WireLevel] | None = None
    yes: list[WireLevel] | None = None
    no: list[WireLevel] | None = None
    ts: Stamp = None


class DeltaBody(msgspec.Struct, frozen=True):
    market_ticker: str
    side: Literal["yes", "no"]
    price_dollars: Num | None = None
    price: float | None = None
    delta_fp: Num | None = None
    delta: float | None = None
    ts: Stamp = None


class LifecycleBody(msgspec.Struct, frozen=True):
    event_type: str = ""
    market_ticker: str = ""
    result: str | None = None
    determination_ts: Stamp = None
    settled_ts: Stamp = None


class ErrorBody(msgspec.Struct, frozen=True):
    code: int | str | None = None
    msg: str | None = None


class SnapshotFrame(msgspec.Struct, frozen=True, tag_field="type", tag="orderbook_snapshot"):
    msg: SnapshotBody
    sid: int | None = None
    seq: int | None = None


class DeltaFrame(msgspec.Struct, frozen=True, tag_field="type", tag="orderbook_delta"):
    msg: DeltaBody
    sid: int | None = None
    seq: int | None = None


class LifecycleFrame(msgspec.Struct, frozen=True, tag_field="type", tag="market_lifecycle_v2"):
    msg: LifecycleBody
    sid: int | None = None


class ErrorFrame(msgspec.Struct, frozen=True, tag_field="type", tag="error"):
    msg: ErrorBody = ErrorBody()
    id: int | None = None


class SubscribedBody(msgspec.Struct, frozen=True):
    sid: int | None = None
    channel: str = ""


class SubscribedFrame(msgspec.Struct, frozen=True, tag_field="type", tag="subscribed"):
    """The reply to our `subscribe` command `id`: the subscription id (`sid`) its markets' frames will carry."""

    msg: SubscribedBody = SubscribedBody()
    id: int | None = None


#: Envelope types that carry nothing for the books (command replies, other channels): decoded, then skipped.
IGNORED: Final = ("unsubscribed", "ok", "list_subscriptions", "ticker", "ticker_v2", "trade", "fill",
                  "market_positions", "heartbeat", "event_lifecycle")
_IGNORED_FRAMES = tuple(msgspec.defstruct(f"Ignored_{kind}", [], tag_field="type", tag=kind, frozen=True)
                        for kind in IGNORED)
KNOWN: Final = frozenset({"orderbook_snapshot", "orderbook_delta", "market_lifecycle_v2", "error", "subscribed",
                          *IGNORED})

Frame = Union[(SnapshotFrame, DeltaFrame, LifecycleFrame, ErrorFrame, SubscribedFrame,  # type: ignore[valid-type]
               *_IGNORED_FRAMES)]
FRAME_DECODER: Final = msgspec.json.Decoder(Frame)
#: The replies to our commands the live source follows (`ws.py`): which sid a subscription got, and errors.
REPLY_DECODER: Final = msgspec.json.Decoder(Union[SubscribedFrame, ErrorFrame])


# -- REST (market discovery) ---------------------------------------------------------------------------------------


class RestMarket(msgspec.Struct, frozen=True):
    """One market of `GET /trade-api/v2/markets` (the fields discovery reads; the rest are ignored)."""

    ticker: str
    event_ticker: str | None = None
    title: str | None = None
    yes_sub_title: str | None = None
    status: str | None = None
    close_time: str | None = None
    expected_expiration_time: str | None = None


class MarketsPage(msgspec.Struct, frozen=True):
    """A page of `GET /markets`: its markets as sent (each decoded on its own, so one malformed market costs only
    itself) and the cursor of the next page ("" or null on the last)."""

    markets: list[dict[str, object]] = []
    cursor: str | None = None
