"""Polymarket CLOB market channel: wire JSON in, one local book per outcome token, top-of-book changes out.

Events (`event_type`): `book` is a full snapshot of one token (`bids`/`asks` as `{price, size}` strings; an older
doc names them `buys`/`sells`, both are accepted, and best levels are found by max/min, never by list order);
`price_change` carries `price_changes[]`, each the **new absolute size** at one level of one token (0 removes the
level). The server may send several events as one JSON array. `last_trade_price`, `tick_size_change` and the
other custom-feature events change no book; text `PING`/`PONG` keep-alives are skipped. `market_resolved` (a
custom-feature event: the subscription sets `custom_feature_enabled`) names the market's `winning_asset_id` among
its `assets_ids`: each token held here resolves yes (the winner) or no, and its book is dropped
(`take_resolutions`).
Prices arrive in dollars (".48") and are kept in cents (48.0).

A frame that cannot be used is counted by reason (`malformed`, `unknown_event`, `legacy_price_change`,
`bad_message`) with one rate-limited WARNING (venues/rejects.py). A `price_change` that cannot be applied (the
pre-September-2025 schema with `changes[]`, or a broken one) is a lost update: the books it names are withdrawn
and their tokens subscribed again for a fresh `book`, counted in `gaps`, so a price is never published from a book
that missed an update.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from arbees_core.venues.book import BinaryBook, BookChange, ReadChanges
from arbees_core.venues.rejects import FrameRejects
from arbees_core.venues.resolution import Resolution

log = logging.getLogger("polymarket")

_NO_BOOK_CHANGE = frozenset({"last_trade_price", "tick_size_change", "best_bid_ask", "new_market"})
_KEEPALIVE = frozenset({b"PING", b"PONG", "PING", "PONG"})


class PolymarketFormatError(ValueError):
    """A frame that is not a valid market-channel event; `reason` is the counter it goes to."""

    def __init__(self, detail: str, reason: str = "bad_message") -> None:
        super().__init__(detail)
        self.reason = reason


def subscribe_command(asset_ids: list[str], operation: str | None = None, custom_features: bool = True) -> bytes:
    """The market-channel subscription for these outcome tokens (token ids, not condition ids): the connection's
    first (`type: market`), or a later `operation` (`subscribe` / `unsubscribe`). Subscriptions ask for each
    token's `book` explicitly (`initial_dump`) rather than rely on the server's default, and for the custom
    features, which bring `market_resolved`."""
    body: dict[str, Any] = {"assets_ids": list(asset_ids)}
    if operation is None:
        body["type"] = "market"
    else:
        body["operation"] = operation
    if operation != "unsubscribe":
        body["initial_dump"] = True
    if custom_features:
        body["custom_feature_enabled"] = True
    return orjson.dumps(body)


def _cents(dollars: Any) -> float:
    return round(float(dollars) * 100.0, 4)


def _levels(levels: Any) -> list[tuple[float, float]]:
    if not isinstance(levels, list):
        raise PolymarketFormatError("book levels are not a list")
    return [(_cents(lv["price"]), float(lv["size"])) for lv in levels]


def _event_ns(event: dict[str, Any], fallback: int) -> int:
    """`timestamp` is Unix milliseconds as a string."""
    try:
        return int(float(event["timestamp"]) * 1e6)
    except (KeyError, TypeError, ValueError):
        return fallback


class PolymarketFeed:
    """Books of every subscribed token; returns the tokens whose top of book changed."""

    def __init__(self) -> None:
        self.books: dict[str, BinaryBook] = {}
        self.rejects = FrameRejects("Polymarket", log)
        self.errors = self.rejects.counts
        self.messages = 0
        self.updates_before_snapshot = 0
        self.gaps = 0  # price_changes that could not be applied (no sequence numbers on this channel)
        self.resync_needed: set[str] = set()
        self.resolutions: list[Resolution] = []

    def handle(self, raw: bytes | str, recv_ns: int | None = None) -> list[BookChange]:
        """Apply one frame (an event or an array of events). Malformed ones are counted and logged, never raised."""
        return self.handle_many([raw], recv_ns)

    def handle_many(self, frames: list[bytes] | list[str], recv_ns: int | None = None) -> list[BookChange]:
        """Apply the frames of one read; return each token whose top of book differs from before the read, once,
        with its last event's time (a `book` snapshot is always returned)."""
        recv_ns = recv_ns or time.time_ns()
        read = ReadChanges()
        for raw in frames:
            self.messages += 1
            if raw in _KEEPALIVE or (isinstance(raw, (bytes, str)) and raw.strip() in _KEEPALIVE):
                continue
            try:
                frame = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                self.rejects.reject("malformed", f"not JSON ({e.msg})")
                continue
            for event in frame if isinstance(frame, list) else [frame]:
                try:
                    self._event(event, read, recv_ns)
                except PolymarketFormatError as e:
                    self._rejected(event, e.reason, str(e))
                except (KeyError, TypeError, ValueError) as e:
                    self._rejected(event, "bad_message", f"{type(e).__name__}: {e}")
        return read.changes(self.books, lambda event: _event_ns(event, recv_ns))

    def stats(self) -> dict[str, Any]:
        return {"messages": self.messages, "markets": len(self.books), "errors": dict(self.errors),
                "updates_before_snapshot": self.updates_before_snapshot,
                "resync_needed": sorted(self.resync_needed)}

    def take_resolutions(self) -> list[Resolution]:
        """The tokens resolved since the last call (their books are gone), cleared on return."""
        out, self.resolutions = self.resolutions, []
        return out

    def take_resync(self) -> set[str]:
        """Tokens whose book must be asked for again (updates before any snapshot, a lost update), cleared on
        return."""
        tokens, self.resync_needed = self.resync_needed, set()
        return tokens

    def forget_connection(self) -> None:
        """A new connection: every book waits for the `book` this connection sends (updates of the old one may be
        lost in between)."""
        self.resync_needed.clear()
        for book in self.books.values():
            book.ready = False

    def has_snapshot(self, token: str) -> bool:
        """Whether `token`'s book arrived (on this connection)."""
        book = self.books.get(token)
        return book is not None and book.ready

    # -- internals ----------------------------------------------------------------------------------------------

    def _event(self, event: Any, read: ReadChanges, recv_ns: int) -> None:
        if not isinstance(event, dict):
            raise PolymarketFormatError(f"event is a {type(event).__name__}, not an object")
        kind = event.get("event_type")
        if kind == "book":
            self._book(event, read)
        elif kind == "price_change":
            self._price_change(event, read)
        elif kind == "market_resolved":
            self._resolved(event, recv_ns)
        elif kind not in _NO_BOOK_CHANGE:
            raise PolymarketFormatError(f"unknown event_type {kind!r}", "unknown_event")

    def _book(self, event: dict[str, Any], read: ReadChanges) -> None:
        token = str(event["asset_id"])
        bids = _levels(event["bids"] if "bids" in event else event.get("buys", []))
        asks = _levels(event["asks"] if "asks" in event else event.get("sells", []))
        self.books.setdefault(token, BinaryBook()).apply_snapshot(bids, asks)
        read.snapshot(token, 0, event)

    def _price_change(self, event: dict[str, Any], read: ReadChanges) -> None:
        changes = event.get("price_changes")
        if not isinstance(changes, list):
            if "changes" in event or "asset_id" in event:
                raise PolymarketFormatError("price_change in the legacy schema (asset_id + changes[])",
                                            "legacy_price_change")
            raise PolymarketFormatError("price_change without price_changes[]")
        parsed = [(str(c["asset_id"]), str(c["side"]).upper(), _cents(c["price"]), float(c["size"])) for c in changes]
        if any(side not in ("BUY", "SELL") for _, side, _, _ in parsed):
            raise PolymarketFormatError("price_change side is not BUY/SELL")
        for token, side, price, size in parsed:
            book = self.books.get(token)
            if book is None or not book.ready:
                self.updates_before_snapshot += 1
                self.resync_needed.add(token)
                continue
            read.changing(token, book, 0, event)
            book.set_level(side, price, size)

    def _resolved(self, event: dict[str, Any], recv_ns: int) -> None:
        """Every token of the market held here: yes for `winning_asset_id`, no for the others."""
        winner = str(event["winning_asset_id"])
        if not winner:
            raise PolymarketFormatError("market_resolved without a winning_asset_id")
        tokens = [str(t) for t in event.get("assets_ids") or [winner]]
        ts_ns = _event_ns(event, recv_ns)
        for token in tokens:
            if self.books.pop(token, None) is not None:
                self.resync_needed.discard(token)
                self.resolutions.append(Resolution(token, "yes" if token == winner else "no", ts_ns))

    def _rejected(self, event: Any, reason: str, detail: str) -> None:
        """Count a skipped event; a skipped `price_change` withdraws the books it names until their fresh `book`."""
        self.rejects.reject(reason, detail)
        if isinstance(event, dict) and event.get("event_type") == "price_change":
            lost = [t for t in _asset_ids(event) if t in self.books and self.books[t].ready]
            for token in lost:
                self.books[token].ready = False
                self.resync_needed.add(token)
            self.gaps += bool(lost)


def _asset_ids(event: dict[str, Any]) -> set[str]:
    """Every token a (possibly malformed) price_change names: top-level `asset_id` and each change's."""
    items = [event] + [c for key in ("price_changes", "changes") if isinstance(event.get(key), list)
                       for c in event[key] if isinstance(c, dict)]
    return {str(x["asset_id"]) for x in items if x.get("asset_id") is not None}
