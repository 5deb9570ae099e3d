"""Kalshi WebSocket v2 wire format: decoded frames -> frozen Kalshi messages (pure), and the commands we send.

Envelope: `{"type", "sid", "seq", "msg"}`. `orderbook_snapshot` carries the whole book of one market (bids only,
on YES and NO); `orderbook_delta` carries a **signed change** of the resting size at one level. `seq` rises by
one per subscription (`sid`).

`market_lifecycle_v2`: `{"type": "market_lifecycle_v2", "sid", "msg": {"event_type", "market_ticker", "result",
"determination_ts" | "settled_ts", ...}}`, for every market of the exchange (the channel takes no ticker filter).
A `determined` (or `settled`) event with a `result` resolves a market.

Units: Kalshi is moving from integer cents and integer counts to fixed-point strings (`yes_dollars_fp`,
`no_dollars_fp`, `price_dollars`, `delta_fp`; integer counts were retired, sub-penny prices follow). The
fixed-point fields are read first; the legacy integer fields only when they are absent. Prices come out in cents,
sizes in contracts. Nothing here holds state: the books and sequence checks are the feed's (kalshi/feed.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec
import orjson

from arbees_core.venues.feed import FrameFormatError, cents

#: Envelope types that carry nothing for the books (command replies, other channels).
_IGNORED: Final = frozenset({"subscribed", "unsubscribed", "ok", "list_subscriptions", "ticker", "ticker_v2",
                             "trade", "fill", "market_positions", "heartbeat", "event_lifecycle"})
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
    """The venue's `error` reply to one of our commands."""

    code: Any
    text: Any


KalshiMessage = Snapshot | Delta | MarketResult | ErrorReply


def parse_frame(frame: Any, recv_ns: int) -> KalshiMessage | None:
    """One decoded frame as its message; None for envelopes that carry nothing for the books. Raises
    KalshiFormatError (or KeyError/TypeError/ValueError) for a frame that is not a valid message."""
    if not isinstance(frame, dict):
        raise KalshiFormatError(f"frame is a {type(frame).__name__}, not an object")
    kind = frame.get("type")
    if kind == "orderbook_snapshot":
        return _snapshot(frame)
    if kind == "orderbook_delta":
        return _delta(frame)
    if kind == LIFECYCLE_CHANNEL:
        return _lifecycle(_body(frame), recv_ns)
    if kind == "error":
        msg = frame.get("msg") if isinstance(frame.get("msg"), dict) else {}
        return ErrorReply(msg.get("code"), msg.get("msg"))
    if kind not in _IGNORED:
        raise KalshiFormatError(f"unknown message type {kind!r}", "unknown_type")
    return None


def _body(frame: dict[str, Any]) -> dict[str, Any]:
    msg = frame["msg"]
    if not isinstance(msg, dict):
        raise KalshiFormatError(f"{frame.get('type')} msg is a {type(msg).__name__}, not an object")
    return msg


def _snapshot(frame: dict[str, Any]) -> Snapshot:
    msg = _body(frame)
    sid, seq = frame.get("sid"), frame.get("seq")
    return Snapshot(msg["market_ticker"], sid if isinstance(sid, int) else None, seq if isinstance(seq, int) else None,
                    seq if isinstance(seq, int) else int(seq or 0), _levels(msg, "yes"), _levels(msg, "no"),
                    msg.get("ts"))


def _delta(frame: dict[str, Any]) -> Delta:
    msg = _body(frame)
    side = msg.get("side")
    if side not in ("yes", "no"):
        raise KalshiFormatError(f"delta side {side!r} is not yes/no")
    if msg.get("price_dollars") is not None:
        price = cents(msg["price_dollars"])
    elif msg.get("price") is not None:
        price = float(msg["price"])
    else:
        raise KalshiFormatError("delta without price_dollars or price")
    if msg.get("delta_fp") is not None:
        change = float(msg["delta_fp"])
    elif msg.get("delta") is not None:
        change = float(msg["delta"])
    else:
        raise KalshiFormatError("delta without delta_fp or delta")
    sid, seq = frame.get("sid"), frame.get("seq")
    return Delta(msg["market_ticker"], sid if isinstance(sid, int) else None, seq if isinstance(seq, int) else None,
                 seq if isinstance(seq, int) else int(seq or 0), side, price, change, msg.get("ts"))


def _lifecycle(msg: dict[str, Any], recv_ns: int) -> MarketResult | None:
    """A market's result; other lifecycle events are None."""
    ticker = msg.get("market_ticker")
    if msg.get("event_type") not in _RESOLVING or not ticker or not msg.get("result"):
        return None
    ts_key = "determination_ts" if msg.get("determination_ts") is not None else "settled_ts"
    return MarketResult(str(ticker), str(msg["result"]), event_ns(msg.get(ts_key), recv_ns))


def _levels(msg: dict[str, Any], side: str) -> Levels:
    """One side of a snapshot as [(price cents, contracts)], fixed-point fields first."""
    fp = msg.get(f"{side}_dollars_fp")
    if fp is not None:
        return [(cents(p), float(q)) for p, q in fp]
    dollars = msg.get(f"{side}_dollars")
    if dollars is not None:
        return [(cents(p), float(q)) for p, q in dollars]
    return [(float(p), float(q)) for p, q in msg.get(side) or []]


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
