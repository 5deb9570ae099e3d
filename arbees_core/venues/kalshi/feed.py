"""Kalshi's books: snapshots and signed deltas applied per market, sequence checked per subscription.

`seq` rises by one per subscription (`sid`); a gap means deltas were lost, so every book of that subscription is
invalid until a fresh snapshot (`take_resync` tells the live source which sids to resubscribe). A lifecycle
result of a market held here drops its book and queues its `Resolution` (`take_resolutions`).
"""

from __future__ import annotations

import logging

from arbees_core.telemetry.logs import RateLimiter
from arbees_core.venues.book import KalshiBook, ReadChanges
from arbees_core.venues.feed import BookFeed
from arbees_core.venues.kalshi.parsing import (
    Delta,
    ErrorReply,
    KalshiFormatError,
    KalshiMessage,
    MarketResult,
    Snapshot,
    parse_frame,
)
from arbees_core.venues.resolution import RESULTS, Resolution

log = logging.getLogger("kalshi")


class KalshiFeed(BookFeed[KalshiBook]):
    """Books of every subscribed market, fed with raw frames; returns the markets whose top of book changed."""

    label = "Kalshi"

    def __init__(self) -> None:
        super().__init__(log)
        self._sid_of: dict[str, int] = {}
        self._last_seq: dict[int, int] = {}
        self._limiter = RateLimiter(1.0)

    parse = staticmethod(parse_frame)

    def apply(self, message: KalshiMessage, read: ReadChanges) -> None:
        if type(message) is Delta:  # most frames
            self._delta(message, read)
        elif isinstance(message, Snapshot):
            self._snapshot(message, read)
        elif isinstance(message, MarketResult):
            self._result(message)
        elif isinstance(message, ErrorReply):
            self.rejects.reject("venue_error", f"code {message.code}: {message.text}")

    def forget_connection(self) -> None:
        """A new connection: sids and their sequence numbers restart with it, and every book waits for its fresh
        snapshot (deltas of the old connection must not be applied to it)."""
        self._last_seq.clear()
        self._sid_of.clear()
        super().forget_connection()

    # -- internals ----------------------------------------------------------------------------------------------

    def _in_order(self, sid: int | None, seq: int | None) -> bool:
        """False when this message follows a gap on its subscription (its books are then invalid). Sequence
        numbers start at 1 with each subscription, so seq 1 starts its sid afresh: after a reconnect the new
        connection reuses sid numbers, and a recording that spans one must not replay as a gap."""
        if sid is None or seq is None:
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

    def _snapshot(self, snap: Snapshot, read: ReadChanges) -> None:
        self._in_order(snap.sid, snap.seq)  # a snapshot is a fresh start whatever came before
        self.books.setdefault(snap.ticker, KalshiBook()).apply_snapshot(snap.yes, snap.no)
        if snap.sid is not None:
            self._sid_of[snap.ticker] = snap.sid
        read.snapshot(snap.ticker, snap.venue_seq, snap)

    def _delta(self, delta: Delta, read: ReadChanges) -> None:
        in_order = self._in_order(delta.sid, delta.seq)
        book = self.books.get(delta.ticker)
        if book is None or not book.ready or not in_order:
            self.updates_before_snapshot += book is None or not book.ready
            return
        read.changing(delta.ticker, book, delta.venue_seq, delta)
        book.apply_delta(delta.side, delta.price, delta.change)

    def _result(self, result: MarketResult) -> None:
        """A result of a market held here drops its book; markets without a book here are not this feed's. A
        result outside yes / no / void (a scalar market) is rejected as a bad message."""
        if result.ticker not in self.books:
            return
        if result.result not in RESULTS:
            raise KalshiFormatError(f"result {result.result!r} of {result.ticker} is not yes/no/void")
        del self.books[result.ticker]
        sid = self._sid_of.pop(result.ticker, None)
        if sid is not None and sid not in self._sid_of.values():  # its subscription's last market: forget its seq
            self._last_seq.pop(sid, None)
        self.resolutions.append(Resolution(result.ticker, result.result, result.ts_event_ns))
