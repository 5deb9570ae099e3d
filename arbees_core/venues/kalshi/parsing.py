"""Kalshi WebSocket v2 `orderbook_delta` channel: wire JSON in, local books, top-of-book changes out; and the
`market_lifecycle_v2` channel's results of the markets held (`take_resolutions`).

Envelope: `{"type", "sid", "seq", "msg"}`. `orderbook_snapshot` carries the whole book of one market (bids only,
on YES and NO); `orderbook_delta` carries a **signed change** of the resting size at one level. `seq` rises by
one per subscription (`sid`); a gap means deltas were lost, so every book of that subscription is invalid until a
fresh snapshot (`resync_needed` tells the client which sids to resubscribe).

`market_lifecycle_v2`: `{"type": "market_lifecycle_v2", "sid", "msg": {"event_type", "market_ticker", "result",
"determination_ts" | "settled_ts", ...}}`, for every market of the exchange (the channel takes no ticker filter).
A `determined` (or `settled`) event with a `result` of yes / no / void resolves a market this feed holds a book of.

Units: Kalshi is moving from integer cents and integer counts to fixed-point strings (`yes_dollars_fp`,
`no_dollars_fp`, `price_dollars`, `delta_fp`; integer counts were retired 2026-02-19, sub-penny prices follow).
The fixed-point fields are read first; the legacy integer fields only when they are absent.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import orjson

from arbees_core.telemetry.logs import RateLimiter
from arbees_core.venues.book import BookChange, KalshiBook, ReadChanges
from arbees_core.venues.rejects import FrameRejects
from arbees_core.venues.resolution import RESULTS, Resolution

log = logging.getLogger("kalshi")

#: Envelope types that carry nothing for the books (command replies, other channels).
_IGNORED = frozenset({"subscribed", "unsubscribed", "ok", "list_subscriptions", "ticker", "ticker_v2", "trade",
                      "fill", "market_positions", "heartbeat", "event_lifecycle"})
#: Lifecycle events that carry a market's result.
_RESOLVING = frozenset({"determined", "settled"})
#: The lifecycle channel, subscribed once per connection (it takes no market tickers).
LIFECYCLE_CHANNEL = "market_lifecycle_v2"


def lifecycle_subscribe_command(cmd_id: int) -> bytes:
    """The `subscribe` command of the market lifecycle channel (every market's state changes, results included)."""
    return orjson.dumps({"id": cmd_id, "cmd": "subscribe", "params": {"channels": [LIFECYCLE_CHANNEL]}})


class KalshiFormatError(ValueError):
    """A frame that is not a valid Kalshi message; the detail names what is wrong, `reason` its counter."""

    def __init__(self, detail: str, reason: str = "bad_message") -> None:
        super().__init__(detail)
        self.reason = reason


def subscribe_command(cmd_id: int, tickers: list[str], channels: tuple[str, ...] = ("orderbook_delta",)) -> bytes:
    """The `subscribe` command for these markets (the orderbook channel takes `market_tickers`, not ids)."""
    return orjson.dumps({"id": cmd_id, "cmd": "subscribe",
                         "params": {"channels": list(channels), "market_tickers": list(tickers)}})


def _cents(dollars: Any) -> float:
    """A fixed-point dollar string ("0.4800") as cents (48.0), rounded to a hundredth of a cent."""
    return round(float(dollars) * 100.0, 4)


def _levels(msg: dict[str, Any], side: str) -> list[tuple[float, float]]:
    """One side of a snapshot as [(price cents, contracts)], fixed-point fields first."""
    fp = msg.get(f"{side}_dollars_fp")
    if fp is not None:
        return [(_cents(p), float(q)) for p, q in fp]
    dollars = msg.get(f"{side}_dollars")
    if dollars is not None:
        return [(_cents(p), float(q)) for p, q in dollars]
    return [(float(p), float(q)) for p, q in msg.get(side) or []]


def _delta(msg: dict[str, Any]) -> tuple[str, float, float]:
    side = msg.get("side")
    if side not in ("yes", "no"):
        raise KalshiFormatError(f"delta side {side!r} is not yes/no")
    if msg.get("price_dollars") is not None:
        price = _cents(msg["price_dollars"])
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
    return side, price, change


def _event_ns(msg: dict[str, Any], fallback: int, key: str = "ts") -> int:
    """The venue's event time: `ts` (or `key`) as ISO 8601 or Unix seconds/ms; the receive time when absent."""
    ts = msg.get(key)
    try:
        if isinstance(ts, str):
            return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e9)
        if isinstance(ts, (int, float)):
            return int(ts * 1e6) * 1000 if ts > 1e11 else int(ts * 1e9)
    except (ValueError, OverflowError):
        pass
    return fallback


class KalshiFeed:
    """Books of every subscribed market, fed with raw frames; returns the markets whose top of book changed."""

    def __init__(self) -> None:
        self.books: dict[str, KalshiBook] = {}
        self._sid_of: dict[str, int] = {}
        self._last_seq: dict[int, int] = {}
        self.resync_needed: set[int] = set()
        self.gaps = 0
        self.rejects = FrameRejects("Kalshi", log)
        self.errors = self.rejects.counts
        self.messages = 0
        self.deltas_before_snapshot = 0
        self.resolutions: list[Resolution] = []
        self._limiter = RateLimiter(1.0)

    # -- public -------------------------------------------------------------------------------------------------

    def handle(self, raw: bytes | str, recv_ns: int | None = None) -> list[BookChange]:
        """Apply one frame. Malformed frames are counted and logged (rate-limited), never raised."""
        return self.handle_many([raw], recv_ns)

    def handle_many(self, frames: list[bytes] | list[str], recv_ns: int | None = None) -> list[BookChange]:
        """Apply the frames of one read; return each market whose top of book differs from before the read, once,
        with its last frame's seq and time (a snapshot is always returned). A burst of deltas moving one book
        (a 12-cent move is ~30 deltas) costs one top-of-book computation instead of two per delta."""
        recv_ns = recv_ns or time.time_ns()
        read = ReadChanges()
        for raw in frames:
            self.messages += 1
            try:
                frame = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                self.rejects.reject("malformed", f"not JSON ({e.msg})")
                continue
            try:
                self._dispatch(frame, read, recv_ns)
            except (KalshiFormatError, KeyError, TypeError, ValueError, IndexError) as e:
                self.rejects.reject(getattr(e, "reason", "bad_message"), f"{type(e).__name__}: {e}")
        return read.changes(self.books, lambda msg: _event_ns(msg, recv_ns))

    def stats(self) -> dict[str, Any]:
        return {"messages": self.messages, "markets": len(self.books), "gaps": self.gaps,
                "resync_needed": sorted(self.resync_needed), "errors": dict(self.errors),
                "deltas_before_snapshot": self.deltas_before_snapshot}

    def forget_connection(self) -> None:
        """Make the feed ready for a new connection: sids and their sequence numbers restart with it, and every
        book waits for its fresh snapshot (deltas of the old connection must not be applied to it)."""
        self._last_seq.clear()
        self._sid_of.clear()
        self.resync_needed.clear()
        for book in self.books.values():
            book.ready = False

    def take_resolutions(self) -> list[Resolution]:
        """The markets resolved since the last call (their books are gone), cleared on return."""
        out, self.resolutions = self.resolutions, []
        return out

    def take_resync(self) -> set[int]:
        """The subscriptions to resubscribe (gap seen), cleared on return."""
        sids, self.resync_needed = self.resync_needed, set()
        return sids

    # -- internals ----------------------------------------------------------------------------------------------

    def _dispatch(self, frame: Any, read: ReadChanges, recv_ns: int) -> None:
        if not isinstance(frame, dict):
            raise KalshiFormatError(f"frame is a {type(frame).__name__}, not an object")
        kind = frame.get("type")
        if kind == "orderbook_snapshot":
            self._snapshot(frame, read)
        elif kind == "orderbook_delta":
            self._delta(frame, read)
        elif kind == LIFECYCLE_CHANNEL:
            self._lifecycle(frame["msg"], recv_ns)
        elif kind == "error":
            msg = frame.get("msg") if isinstance(frame.get("msg"), dict) else {}
            self.rejects.reject("venue_error", f"code {msg.get('code')}: {msg.get('msg')}")
        elif kind not in _IGNORED:
            raise KalshiFormatError(f"unknown message type {kind!r}", "unknown_type")

    def _check_seq(self, frame: dict[str, Any]) -> bool:
        """False when this frame follows a gap on its subscription (its books are then invalid). Sequence numbers
        start at 1 with each subscription, so seq 1 starts its sid afresh: after a reconnect the new connection
        reuses sid numbers, and a recording that spans one must not replay as a gap."""
        sid, seq = frame.get("sid"), frame.get("seq")
        if not isinstance(sid, int) or not isinstance(seq, int):
            return True
        last = self._last_seq.get(sid)
        self._last_seq[sid] = seq
        if last is None or seq == last + 1 or seq == 1:
            return True
        self.gaps += 1
        self.resync_needed.add(sid)
        if self._limiter.allow("gap"):
            log.warning("Kalshi sequence gap on sid %s: expected %s, got %s; books invalid until a fresh snapshot",
                        sid, last + 1, seq)
        for ticker, book_sid in self._sid_of.items():
            if book_sid == sid:
                self.books[ticker].ready = False
        return False

    def _snapshot(self, frame: dict[str, Any], read: ReadChanges) -> None:
        msg = frame["msg"]
        ticker = msg["market_ticker"]
        yes, no = _levels(msg, "yes"), _levels(msg, "no")
        self._check_seq(frame)  # a snapshot is a fresh start whatever came before
        book = self.books.setdefault(ticker, KalshiBook())
        book.apply_snapshot(yes, no)
        if isinstance(frame.get("sid"), int):
            self._sid_of[ticker] = frame["sid"]
        read.snapshot(ticker, int(frame.get("seq") or 0), msg)

    def _delta(self, frame: dict[str, Any], read: ReadChanges) -> None:
        msg = frame["msg"]
        ticker = msg["market_ticker"]
        side, price, change = _delta(msg)
        in_order = self._check_seq(frame)
        book = self.books.get(ticker)
        if book is None or not book.ready or not in_order:
            self.deltas_before_snapshot += book is None or not book.ready
            return
        read.changing(ticker, book, int(frame.get("seq") or 0), msg)
        book.apply_delta(side, price, change)

    def _lifecycle(self, msg: dict[str, Any], recv_ns: int) -> None:
        """A market's result (module docstring); other lifecycle events, and markets without a book here, are
        not this feed's. A result outside yes / no / void (a scalar market) is rejected as a bad message."""
        ticker = msg.get("market_ticker")
        if msg.get("event_type") not in _RESOLVING or ticker not in self.books or not msg.get("result"):
            return
        if msg["result"] not in RESULTS:
            raise KalshiFormatError(f"result {msg['result']!r} of {ticker} is not yes/no/void")
        ts_key = "determination_ts" if msg.get("determination_ts") is not None else "settled_ts"
        del self.books[ticker]
        self._sid_of.pop(ticker, None)
        self.resolutions.append(Resolution(ticker, msg["result"], _event_ns(msg, recv_ns, ts_key)))
