"""What both venues' feeds do: raw frames of one read in, books updated, top-of-book changes out.

A feed is the monitor's side of a venue: it hands each raw frame to the venue's pure parser
(`venues/<venue>/parsing.py`: raw frame -> the venue's frozen wire structs (`wire.py`) -> frozen venue messages,
or a `Rejected` per invalid event) and applies the messages to its books (`venues/book.py`). What differs between
venues is only `parse` and `apply`; the read loop, the counting of rejected frames, the resync and resolution
queues and the stats live here once, so both venues count and log bad input the same way. `VenueFeed` is the protocol the monitor programs against (services/monitor.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import msgspec
import orjson

from arbees_core.venues.book import BookChange, ReadChanges, TopOfBook
from arbees_core.venues.rejects import FrameRejects
from arbees_core.venues.resolution import Resolution


def cents(dollars: Any) -> float:
    """A dollar price as sent on the wire ("0.4800", ".48", 0.48) in cents (48.0), rounded to 1/10000 cent."""
    return round(float(dollars) * 100.0, 4)


class FrameFormatError(ValueError):
    """A frame (or one event of it) that is not a valid venue message; `reason` is the counter it goes to."""

    def __init__(self, detail: str, reason: str = "bad_message") -> None:
        super().__init__(detail)
        self.reason = reason


class Rejected(msgspec.Struct, frozen=True):
    """A frame, or one event of it, that is not a valid venue message: `reason` is the counter it goes to, `detail`
    what was wrong; `lost`: the markets whose update it carried (their books missed it)."""

    reason: str
    detail: str
    lost: tuple[str, ...] = ()


def not_json(error: orjson.JSONDecodeError) -> Rejected:
    """A frame that is not JSON at all."""
    return Rejected("malformed", f"not JSON ({error.msg})")


class Book(Protocol):
    """One market's local book, as the monitor reads it."""

    ready: bool

    def top(self) -> TopOfBook: ...


class VenueFeed(Protocol):
    """A venue's parser and books, as the monitor uses them: frames of one read in, the markets whose top of book
    moved out; the books (a book not `ready` is invalid until its fresh snapshot), the count of lost updates
    (`gaps`), what to resubscribe (`take_resync`), the markets resolved (`take_resolutions`)."""

    gaps: int

    @property
    def books(self) -> Mapping[str, Book]: ...

    def handle_many(self, frames: list[bytes], recv_ns: int | None = None) -> list[BookChange]: ...

    def take_resync(self) -> set[Any]: ...

    def take_resolutions(self) -> list[Resolution]: ...

    def forget_connection(self) -> None: ...

    def has_snapshot(self, ticker: str) -> bool: ...

    def stats(self) -> dict[str, Any]: ...


#: What applying a parsed message can raise for a message the books cannot take (never beyond the feed).
_REJECTED = (FrameFormatError, KeyError, TypeError, ValueError, IndexError)

B = TypeVar("B", bound=Book)


class BookFeed(Generic[B]):
    """The shared half of a venue feed. Subclasses implement `parse(raw, recv_ns)` (pure: one raw frame -> its
    venue messages, a `Rejected` in place of each invalid one) and `apply(message, read)`, and may override
    `is_keepalive`, `event_ns` and `rejected`."""

    label: str = ""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.books: dict[str, B] = {}
        self.rejects = FrameRejects(self.label, log)
        self.errors = self.rejects.counts
        self.messages = 0
        self.gaps = 0
        self.updates_before_snapshot = 0  # updates of a market whose book was not ready (dropped)
        self.resync_needed: set[Any] = set()
        self.resolutions: list[Resolution] = []

    # -- the venue's part ---------------------------------------------------------------------------------------

    @staticmethod
    def parse(raw: bytes | str, recv_ns: int) -> Sequence[Any]:
        raise NotImplementedError

    def apply(self, message: Any, read: ReadChanges) -> None:
        raise NotImplementedError

    def is_keepalive(self, raw: bytes | str) -> bool:
        return False

    def event_ns(self, recv_ns: int) -> Callable[[Any], int]:
        """The event time of a market's last message in a read (computed once per moved market, not per frame)."""
        return lambda message: message.event_ns(recv_ns)

    def rejected(self, rejection: Rejected) -> None:
        self.rejects.reject(rejection.reason, rejection.detail)

    # -- the read ------------------------------------------------------------------------------------------------

    def handle(self, raw: bytes | str, recv_ns: int | None = None) -> list[BookChange]:
        """Apply one frame. Malformed frames are counted and logged (rate-limited), never raised."""
        return self.handle_many([raw], recv_ns)

    def handle_many(self, frames: list[bytes] | list[str], recv_ns: int | None = None) -> list[BookChange]:
        """Apply the frames of one read; return each market whose top of book differs from before the read, once,
        with its last message's seq and time (a snapshot is always returned). A burst of updates moving one book
        costs one top-of-book computation instead of two per update."""
        recv_ns = recv_ns or time.time_ns()
        read = ReadChanges()
        parse, apply, is_keepalive = self.parse, self.apply, self.is_keepalive  # the hot loop
        self.messages += len(frames)
        for raw in frames:
            if is_keepalive(raw):
                continue
            for message in parse(raw, recv_ns):
                if type(message) is Rejected:
                    self.rejected(message)
                    continue
                try:
                    apply(message, read)
                except _REJECTED as e:
                    self.rejects.reject(getattr(e, "reason", "bad_message"), f"{type(e).__name__}: {e}")
        return read.changes(self.books, self.event_ns(recv_ns))

    # -- the monitor's queries ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {"messages": self.messages, "markets": len(self.books), "gaps": self.gaps,
                "resync_needed": sorted(self.resync_needed), "errors": dict(self.errors),
                "updates_before_snapshot": self.updates_before_snapshot}

    def take_resolutions(self) -> list[Resolution]:
        """The markets resolved since the last call (their books are gone), cleared on return."""
        out, self.resolutions = self.resolutions, []
        return out

    def take_resync(self) -> set[Any]:
        """What the live source must subscribe again for fresh snapshots (the venue's unit: Kalshi subscription
        ids, Polymarket tokens), cleared on return."""
        wanted, self.resync_needed = self.resync_needed, set()
        return wanted

    def forget_connection(self) -> None:
        """A new connection: every book waits for the snapshot this connection sends (updates of the old one may
        be lost in between)."""
        self.resync_needed.clear()
        for book in self.books.values():
            book.ready = False

    def has_snapshot(self, ticker: str) -> bool:
        """Whether `ticker`'s book arrived (on this connection)."""
        book = self.books.get(ticker)
        return book is not None and book.ready
