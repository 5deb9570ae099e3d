"""How execution_service keeps its books current in ZMQ mode, without waking up for every price.

Prices come on their own SUB socket and are read when a signal arrives (before it is filled) and at least every
PRICE_DRAIN_MS otherwise. A fill must see the latest book, and at least the book its signal was derived from:
the signal comes monitor -> game_shard -> execution_service, its input prices monitor -> execution_service on
another connection, so a price can arrive a moment after its signal (`catch_up`). An order's modeled round trip
to the venue (PAPER_ORDER_LATENCY_MS) reads the prices that land meanwhile (`read_until`). In Redis mode a reader
thread keeps the books current (`execution_support.PriceFeedThread`), and a signal waits for its inputs the same
way (`await_books`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from arbees_core.messages import DecodeError, PriceRef, PriceUpdate, TradingSignal, decode
from arbees_core.services.execution_support import BookCache
from arbees_core.telemetry.metrics import Metrics
from arbees_core.topics import price_topic
from arbees_core.transport import Delivery, Inbox, Received


class PriceIntake:
    """The price socket and the books it feeds. `late` holds the deliveries read between the loop's reads (during
    a catch-up or an order's round trip): primed into the books at once, counted with the loop's next batch."""

    def __init__(self, prices: Inbox, books: BookCache, metrics: Metrics, catchup_ms: float) -> None:
        self.prices = prices
        self.books = books
        self.metrics = metrics
        self.catchup_ms = catchup_ms
        self.late: list[Delivery] = []

    def read(self) -> list[Delivery]:
        """What is queued now, as read (not yet decoded)."""
        return self.prices.subscriber.receive(0)

    def before_fills(self, items: list[Received], queued: list[Delivery]) -> list[Delivery]:
        """The signals' input prices caught up, then the latest valid price of every leg they trade primed into
        the books, decoding only those (a signal waits for a few decodes, not for all of the ~PRICE_DRAIN_MS of
        prices; `take` handles every queued price afterwards). Returns `queued` with what the catch-up read."""
        signals = [i.msg for i in items if isinstance(i.msg, TradingSignal)]
        if not signals:
            return queued
        queued = self.catch_up([r for s in signals for r in s.inputs], queued)
        self.prime({price_topic(leg.venue, leg.ticker) for s in signals for leg in s.legs}, queued)
        return queued

    def catch_up(self, refs: list[PriceRef], queued: list[Delivery]) -> list[Delivery]:
        """Wait up to PRICE_CATCHUP_MS for every input price (by publisher and sequence) to reach the books, so a
        fill sees at least the book its signal saw; counted (`price_catchup_waits`, and `price_catchup_timeouts`
        when one never came, e.g. its monitor died)."""
        self.prime({price_topic(r.venue, r.ticker) for r in refs}, queued)
        missing = [r for r in refs if not self.has(r)]
        if not missing:
            return queued
        self.metrics.inc("price_catchup_waits")
        deadline = time.monotonic() + self.catchup_ms / 1000
        while missing and time.monotonic() < deadline:
            more = self.prices.subscriber.receive(1)
            if more:
                queued = queued + more
                self.prime({price_topic(r.venue, r.ticker) for r in missing}, more)
                missing = [r for r in missing if not self.has(r)]
        if missing:
            self.metrics.inc("price_catchup_timeouts")
        return queued

    def has(self, ref: PriceRef) -> bool:
        return book_has(self.books, ref)

    def prime(self, topics: set[str], queued: Iterable[Delivery]) -> None:
        """The newest valid price of each of `topics` among `queued` into the books (not yet counted: `take`
        handles every delivery afterwards, in order)."""
        for d in reversed(list(queued)):
            if d.topic not in topics or d.error:
                continue
            try:
                msg = decode(d.topic, d.payload)
            except DecodeError:
                continue  # counted and logged when `take` reaches it; an older one may still be valid
            if isinstance(msg, PriceUpdate):
                self.books.update(msg)
                topics.discard(d.topic)

    def read_until(self, deadline: float) -> None:
        """Until `deadline` (time.monotonic()): every price that arrives goes into the books at once (an order
        in flight meets the book of its arrival); at least one read, even when the deadline has passed."""
        while True:
            left_ms = (deadline - time.monotonic()) * 1000
            fresh = self.prices.subscriber.receive(max(0, math.ceil(left_ms)))
            self.prime({d.topic for d in fresh}, fresh)
            self.late += fresh
            if time.monotonic() >= deadline:
                return

    def take(self, queued: list[Delivery]) -> list[Received]:
        """Every queued and late delivery, oldest first, through the inbox (rejects and gaps counted); prices into
        the books. Returns the other messages (resolutions, exit signals) for the service."""
        if self.late:
            queued, self.late = queued + self.late, []
        others = []
        for item in self.prices.accept(queued):
            if isinstance(item.msg, PriceUpdate):
                self.books.update(item.msg)
            else:
                others.append(item)
        return others


def book_has(books: BookCache, ref: PriceRef) -> bool:
    """Whether the book holds the referenced price or a newer one of the same publisher (by time otherwise)."""
    book = books.get(ref.venue, ref.ticker)
    if book is None:
        return False
    return book.seq >= ref.seq if book.src == ref.src else book.ts_pub_ns >= ref.ts_pub_ns


def await_books(books: BookCache, refs: list[PriceRef], timeout_ms: float, metrics: Metrics) -> None:
    """Redis mode: the reader thread fills the books, from the price streams, while the signal came through its
    own stream, so here too a signal can arrive before the price it was derived from. Wait up to PRICE_CATCHUP_MS
    for the thread to have put every input into the books (counted as in ZMQ mode)."""
    missing = [r for r in refs if not book_has(books, r)]
    if not missing:
        return
    metrics.inc("price_catchup_waits")
    deadline = time.monotonic() + timeout_ms / 1000
    while missing and time.monotonic() < deadline:
        time.sleep(0.0002)
        missing = [r for r in missing if not book_has(books, r)]
    if missing:
        metrics.inc("price_catchup_timeouts")
