"""Polymarket's books: one per outcome token, `book` snapshots and absolute `price_change` levels applied.

The market channel has no sequence numbers, so a lost update is seen only as an update that cannot be applied:
an update of a token whose book has not arrived is dropped and the token asked for again, and a `price_change`
that cannot be used (the legacy schema, a broken one) withdraws the books it names until their fresh `book`,
counted in `gaps`, so a price is never published from a book that missed an update (`take_resync` tells the
live source which tokens to subscribe again). A `market_resolved` drops the books of its tokens held here and
queues each token's `Resolution`: yes for the winner, no for the others (`take_resolutions`).
"""

from __future__ import annotations

import logging

from arbees_core.venues.book import BinaryBook, ReadChanges
from arbees_core.venues.feed import BookFeed, Rejected
from arbees_core.venues.polymarket.parsing import (
    PolymarketMessage,
    PriceChange,
    Resolved,
    TokenBook,
    is_keepalive,
    parse_frame,
)
from arbees_core.venues.resolution import Resolution

log = logging.getLogger("polymarket")


class PolymarketFeed(BookFeed[BinaryBook]):
    """Books of every subscribed token; returns the tokens whose top of book changed."""

    label = "Polymarket"

    def __init__(self) -> None:
        super().__init__(log)

    def is_keepalive(self, raw: bytes | str) -> bool:
        return is_keepalive(raw)

    parse = staticmethod(parse_frame)

    def apply(self, message: PolymarketMessage, read: ReadChanges) -> None:
        if isinstance(message, PriceChange):
            self._price_change(message, read)
        elif isinstance(message, TokenBook):
            self.books.setdefault(message.token, BinaryBook()).apply_snapshot(message.bids, message.asks)
            read.snapshot(message.token, 0, message)
        elif isinstance(message, Resolved):
            self._resolved(message)

    def rejected(self, rejection: Rejected) -> None:
        """Count a skipped event; a skipped `price_change` withdraws the books it names until their fresh `book`."""
        super().rejected(rejection)
        lost = [t for t in rejection.lost if t in self.books and self.books[t].ready]
        for token in lost:
            self.books[token].ready = False
            self.resync_needed.add(token)
        self.gaps += bool(lost)

    def _price_change(self, change: PriceChange, read: ReadChanges) -> None:
        for level in change.changes:
            book = self.books.get(level.token)
            if book is None or not book.ready:
                self.updates_before_snapshot += 1
                self.resync_needed.add(level.token)
                continue
            read.changing(level.token, book, 0, change)
            book.set_level(level.side, level.price, level.size)

    def _resolved(self, resolved: Resolved) -> None:
        """Every token of the market held here: yes for the winner, no for the others."""
        for token in resolved.tokens:
            if self.books.pop(token, None) is not None:
                self.resync_needed.discard(token)
                self.resolutions.append(Resolution(token, "yes" if token == resolved.winner else "no",
                                                   resolved.ts_event_ns))
