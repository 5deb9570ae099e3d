"""Local order books per market, and the top of book a monitor publishes from them.

Both venues stream a snapshot and then changes; a monitor that forwards the changes as quotes publishes garbage
(the original read Kalshi deltas as snapshots and quoted 0/1). Here every message is applied to a local book, and
the top of book is derived from the whole book:

* Kalshi lists **bids only**, on YES and on NO; a NO bid at X is a YES ask at 100 - X, so the best YES ask is
  100 - best NO bid. Deltas are signed *changes* of the resting size at a level.
* Polymarket lists bids and asks of one outcome token; `price_change` carries the *new absolute* size of a level
  (0 removes it). NO on a token is the other side of the same book: NO bid = 100 - YES ask, NO ask = 100 - YES bid.

Prices are cents as floats (sub-cent ticks exist on both venues), sizes are contracts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

#: A size at or below this is an empty level (fixed-point counts arrive as "0.00").
_EMPTY = 1e-9


@dataclass(frozen=True, slots=True)
class TopOfBook:
    """Best prices (cents) and their sizes (contracts) of buying and selling YES and NO; None = no level."""

    yes_bid: float | None = None
    yes_bid_size: float = 0.0
    yes_ask: float | None = None
    yes_ask_size: float = 0.0
    no_bid: float | None = None
    no_bid_size: float = 0.0
    no_ask: float | None = None
    no_ask_size: float = 0.0

    @property
    def crossed(self) -> bool:
        """A bid at or above the ask: never a valid book (a sign of a lost update)."""
        return self.yes_bid is not None and self.yes_ask is not None and self.yes_bid >= self.yes_ask


@dataclass(frozen=True, slots=True)
class BookChange:
    """A market whose top of book changed: what a monitor turns into one `PriceUpdate`."""

    ticker: str
    top: TopOfBook
    venue_seq: int = 0
    ts_event_ns: int = 0


def _best(levels: dict[float, float], highest: bool) -> tuple[float | None, float]:
    if not levels:
        return None, 0.0
    price = max(levels) if highest else min(levels)
    return price, levels[price]


def _complement(price: float | None) -> float | None:
    return None if price is None else round(100.0 - price, 6)


class _Levels:
    """price -> size of one side, empty levels removed."""

    __slots__ = ("levels",)

    def __init__(self) -> None:
        self.levels: dict[float, float] = {}

    def set(self, price: float, size: float) -> None:
        if size <= _EMPTY:
            self.levels.pop(price, None)
        else:
            self.levels[price] = size

    def add(self, price: float, change: float) -> float:
        """Apply a signed change; returns the new size (a negative result is clamped to empty)."""
        size = self.levels.get(price, 0.0) + change
        self.set(price, size)
        return max(size, 0.0)

    def replace(self, levels: list[tuple[float, float]]) -> None:
        self.levels = {}
        for price, size in levels:
            self.set(price, size)


class KalshiBook:
    """One Kalshi market: YES bids and NO bids."""

    __slots__ = ("yes", "no", "ready")

    def __init__(self) -> None:
        self.yes = _Levels()
        self.no = _Levels()
        self.ready = False  # a snapshot has been applied; deltas before it are meaningless

    def apply_snapshot(self, yes: list[tuple[float, float]], no: list[tuple[float, float]]) -> None:
        self.yes.replace(yes)
        self.no.replace(no)
        self.ready = True

    def apply_delta(self, side: str, price: float, change: float) -> float:
        """Signed change of the resting size at `price` on `side` ("yes"/"no"); returns the level's new size."""
        return (self.yes if side == "yes" else self.no).add(price, change)

    def top(self) -> TopOfBook:
        yes_bid, yes_bid_size = _best(self.yes.levels, highest=True)
        no_bid, no_bid_size = _best(self.no.levels, highest=True)
        return TopOfBook(yes_bid, yes_bid_size, _complement(no_bid), no_bid_size,
                         no_bid, no_bid_size, _complement(yes_bid), yes_bid_size)


class BinaryBook:
    """One Polymarket outcome token: bids and asks of YES (the token); NO is the same book seen from the other side."""

    __slots__ = ("bids", "asks", "ready")

    def __init__(self) -> None:
        self.bids = _Levels()
        self.asks = _Levels()
        self.ready = False

    def apply_snapshot(self, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> None:
        self.bids.replace(bids)
        self.asks.replace(asks)
        self.ready = True

    def set_level(self, side: str, price: float, size: float) -> None:
        """Absolute new size at a level; side "BUY" (bids) or "SELL" (asks); size 0 removes the level."""
        (self.bids if side.upper() in ("BUY", "BID", "BIDS") else self.asks).set(price, size)

    def top(self) -> TopOfBook:
        bid, bid_size = _best(self.bids.levels, highest=True)
        ask, ask_size = _best(self.asks.levels, highest=False)
        return TopOfBook(bid, bid_size, ask, ask_size, _complement(ask), ask_size, _complement(bid), bid_size)


class _Book(Protocol):
    ready: bool

    def top(self) -> TopOfBook: ...


class ReadChanges:
    """The markets one read of venue frames touched, each with its top of book before the read and its last
    frame: a monitor publishes each moved market once per read, and a burst of deltas moving one book costs one
    top-of-book computation at the end instead of two per delta. Both venues' feeds use it."""

    __slots__ = ("_before", "_last")

    def __init__(self) -> None:
        self._before: dict[str, TopOfBook | None] = {}  # None: a snapshot, reported whatever its top
        self._last: dict[str, tuple[int, Any]] = {}  # venue seq and message of each market's last frame

    def snapshot(self, ticker: str, seq: int, message: Any) -> None:
        self._before[ticker] = None
        self._last[ticker] = (seq, message)

    def changing(self, ticker: str, book: _Book, seq: int, message: Any) -> None:
        """Call before applying a change to `book`: its first change in the read keeps the top it had."""
        if ticker not in self._before:
            self._before[ticker] = book.top()
        self._last[ticker] = (seq, message)

    def changes(self, books: dict[str, Any], event_ns: Callable[[Any], int]) -> list[BookChange]:
        """Each ready book whose top differs from before the read (or was snapshotted), with its last frame's
        seq and `event_ns(message)`."""
        out: list[BookChange] = []
        for ticker, old in self._before.items():
            book = books.get(ticker)
            if book is None or not book.ready:  # resolved, or a sequence gap later in the read voided it
                continue
            top = book.top()
            if old is None or top != old:
                seq, message = self._last[ticker]
                out.append(BookChange(ticker, top, seq, event_ns(message)))
        return out
