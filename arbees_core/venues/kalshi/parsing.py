"""Kalshi frames -> frozen Kalshi messages (pure), and the commands we send.

A raw frame is decoded straight into the venue's wire structs (`kalshi/wire.py`, tagged by `type`) and mapped to
the messages the feed applies: `Snapshot` (a market's whole book), `Delta` (a signed change at one level; seq
rises by one per subscription `sid`), `MarketResult` (a `market_lifecycle_v2` `determined` or `settled` event with
a `result`; the lifecycle channel covers every market of the exchange) and `ErrorReply`. Fixed-point fields are
read first, the legacy integer fields only when they are absent. Prices come out in cents, sizes in contracts.
A frame that is not a valid message is one `Rejected` with its counter (`malformed`, `unknown_type`,
`bad_message`) and what was wrong. Nothing here holds state: the books and sequence checks are the feed's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec
import orjson

from arbees_core.strategy.teams import parse_kalshi_ticker
from arbees_core.venues.feed import FrameFormatError, Rejected, cents, not_json
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.kalshi.wire import (
    MarketsPage,
    RestMarket,
    FRAME_DECODER,
    KNOWN,
    REPLY_DECODER,
    DeltaFrame,
    ErrorFrame,
    LifecycleBody,
    LifecycleFrame,
    SnapshotBody,
    SnapshotFrame,
    WireLevel,
)

#: Lifecycle events that carry a market's result.
_RESOLVING: Final = frozenset({"determined", "settled"})
#: The lifecycle channel, subscribed once per connection (it takes no market tickers).
LIFECYCLE_CHANNEL: Final = "market_lifecycle_v2"
BOOK_CHANNEL: Final = "orderbook_delta"

Levels = list[tuple[float, float]]  # [(price cents, contracts)]


class KalshiFormatError(FrameFormatError):
    """A frame that is not a valid Kalshi message; the detail names what is wrong, `reason` its counter."""


class Snapshot(msgspec.Struct, frozen=True):
    """A market's whole book. sid/seq: None when the frame carries none (then no sequence is checked)."""

    ticker: str
    sid: int | None
    seq: int | None
    venue_seq: int
    yes: Levels
    no: Levels
    ts: Any = None

    def event_ns(self, fallback: int) -> int:
        return event_ns(self.ts, fallback)


class Delta(msgspec.Struct, frozen=True):
    """A signed change of the resting size at one level: side "yes"|"no", price in cents, change in contracts."""

    ticker: str
    sid: int | None
    seq: int | None
    venue_seq: int
    side: str
    price: float
    change: float
    ts: Any = None

    def event_ns(self, fallback: int) -> int:
        return event_ns(self.ts, fallback)


class MarketResult(msgspec.Struct, frozen=True):
    """A lifecycle event naming a market's result (yes / no / void, or what else the venue says)."""

    ticker: str
    result: str
    ts_event_ns: int


class ErrorReply(msgspec.Struct, frozen=True):
    """The venue's `error` reply to our command `cmd_id`."""

    code: int | str | None
    text: str | None
    cmd_id: int | None = None


class Subscribed(msgspec.Struct, frozen=True):
    """The venue's reply to our `subscribe` command `cmd_id`: the subscription's id."""

    cmd_id: int | None
    sid: int


KalshiMessage = Snapshot | Delta | MarketResult | ErrorReply
Parsed = tuple[KalshiMessage | Rejected, ...]
_NOTHING: Final[Parsed] = ()


def parse_frame(raw: bytes | str, recv_ns: int) -> Parsed:
    """One raw frame as its message (none for envelopes that carry nothing for the books), or one `Rejected`."""
    try:
        frame = FRAME_DECODER.decode(raw)
    except msgspec.DecodeError as e:
        return (_rejected(raw, e),)
    try:
        message = _message(frame, recv_ns)
    except (FrameFormatError, ValueError, TypeError, OverflowError) as e:
        return (Rejected(getattr(e, "reason", "bad_message"), f"{type(e).__name__}: {e}"),)
    return _NOTHING if message is None else (message,)


def _message(frame: Any, recv_ns: int) -> KalshiMessage | None:
    kind = type(frame)
    if kind is DeltaFrame:  # most frames
        return _delta(frame)
    if kind is SnapshotFrame:
        body: SnapshotBody = frame.msg
        return Snapshot(body.market_ticker, frame.sid, frame.seq, frame.seq or 0, _levels(body, "yes"),
                        _levels(body, "no"), body.ts)
    if kind is LifecycleFrame:
        return _lifecycle(frame.msg, recv_ns)
    if kind is ErrorFrame:
        return ErrorReply(frame.msg.code, frame.msg.msg, frame.id)
    return None


def parse_reply(raw: bytes | str) -> Subscribed | ErrorReply | None:
    """A reply to one of our commands (a subscription's sid, or an error); None for every other frame, and for a
    reply that is not valid (the feed counts that one)."""
    try:
        frame = REPLY_DECODER.decode(raw)
    except msgspec.DecodeError:
        return None
    if type(frame) is ErrorFrame:
        return ErrorReply(frame.msg.code, frame.msg.msg, frame.id)
    return Subscribed(frame.id, frame.msg.sid) if frame.msg.sid is not None else None


def _rejected(raw: bytes | str, error: msgspec.DecodeError) -> Rejected:
    """Why a frame failed to decode, in the counter it goes to: not JSON, a type this build does not know, or a
    known type without a required field (or with one of the wrong type), named by the decoder."""
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return not_json(e)
    if not isinstance(frame, dict):
        return Rejected("bad_message", f"frame is a {type(frame).__name__}, not an object")
    kind = frame.get("type")
    if kind not in KNOWN:
        return Rejected("unknown_type", f"unknown message type {kind!r}")
    return Rejected("bad_message", f"{kind}: {error}")


def _delta(frame: DeltaFrame) -> Delta:
    body = frame.msg
    if body.price_dollars is not None:
        price = cents(body.price_dollars)
    elif body.price is not None:
        price = body.price
    else:
        raise KalshiFormatError("delta without price_dollars or price")
    if body.delta_fp is not None:
        change = float(body.delta_fp)
    elif body.delta is not None:
        change = body.delta
    else:
        raise KalshiFormatError("delta without delta_fp or delta")
    return Delta(body.market_ticker, frame.sid, frame.seq, frame.seq or 0, body.side, price, change, body.ts)


def _lifecycle(body: LifecycleBody, recv_ns: int) -> MarketResult | None:
    """A market's result; other lifecycle events are None."""
    if body.event_type not in _RESOLVING or not body.market_ticker or not body.result:
        return None
    ts = body.determination_ts if body.determination_ts is not None else body.settled_ts
    return MarketResult(body.market_ticker, body.result, event_ns(ts, recv_ns))


def _levels(body: SnapshotBody, side: str) -> Levels:
    """One side of a snapshot as [(price cents, contracts)], fixed-point fields first."""
    fp: list[WireLevel] | None = getattr(body, f"{side}_dollars_fp")
    if fp is None:
        fp = getattr(body, f"{side}_dollars")
    if fp is not None:
        return [(cents(p), float(q)) for p, q in fp]
    return [(float(p), float(q)) for p, q in getattr(body, side) or []]


def event_ns(ts: Any, fallback: int) -> int:
    """The venue's event time: ISO 8601 or Unix seconds/ms; `fallback` (the receive time) when absent or bad."""
    try:
        if isinstance(ts, str):
            return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e9)
        if isinstance(ts, (int, float)):
            return int(ts * 1e6) * 1000 if ts > 1e11 else int(ts * 1e9)
    except (ValueError, OverflowError):
        pass
    return fallback


# -- commands ------------------------------------------------------------------------------------------------------


def subscribe_command(cmd_id: int, tickers: list[str], channels: tuple[str, ...] = (BOOK_CHANNEL,)) -> bytes:
    """The `subscribe` command for these markets (the orderbook channel takes `market_tickers`, not ids)."""
    return orjson.dumps({"id": cmd_id, "cmd": "subscribe",
                         "params": {"channels": list(channels), "market_tickers": list(tickers)}})


def lifecycle_subscribe_command(cmd_id: int) -> bytes:
    """The `subscribe` command of the market lifecycle channel (every market's state changes, results included)."""
    return orjson.dumps({"id": cmd_id, "cmd": "subscribe", "params": {"channels": [LIFECYCLE_CHANNEL]}})


def unsubscribe_command(cmd_id: int, sids: list[int]) -> bytes:
    """The `unsubscribe` command for these subscriptions."""
    return orjson.dumps({"id": cmd_id, "cmd": "unsubscribe", "params": {"sids": sids}})


# -- REST listings (market discovery) ------------------------------------------------------------------------------


def markets_page(body: object) -> MarketsPage:
    """A decoded `GET /markets` answer as its page; ValueError naming what is wrong when it is not one."""
    try:
        return msgspec.convert(body, MarketsPage)
    except msgspec.ValidationError as e:
        raise ValueError(str(e)) from None


def page_listings(page: MarketsPage, series: str) -> tuple[list[MarketListing], int]:
    """The page's markets as listings, and how many were malformed (skipped, each costing only itself)."""
    out, skipped = [], 0
    for raw in page.markets:
        try:
            out.append(to_listing(msgspec.convert(raw, RestMarket), series))
        except msgspec.ValidationError:
            skipped += 1
    return out, skipped


def to_listing(market: RestMarket, series: str) -> MarketListing:
    """One Kalshi market as a listing: outcome = the ticker's team code (else `yes_sub_title`), date = the
    ticker's US Eastern game date (else the expected expiration's UTC date)."""
    parsed = parse_kalshi_ticker(market.ticker)
    league = parsed[0] if parsed else series.removeprefix("KX").removesuffix("GAME")
    outcome = parsed[4] if parsed else (market.yes_sub_title or "")
    day = parsed[1] if parsed else _iso_day(market.expected_expiration_time or market.close_time)
    raw = {k: v for k in ("yes_sub_title", "status", "close_time", "event_ticker")
           if (v := getattr(market, k)) is not None}
    return MarketListing("kalshi", market.ticker, market.event_ticker or market.ticker.rsplit("-", 1)[0],
                         market.title or "", outcome, league, day, raw)


def _iso_day(value: str | None) -> str:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        return ""
