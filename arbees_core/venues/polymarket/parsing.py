"""Polymarket CLOB market channel wire format: decoded events -> frozen Polymarket messages (pure), and the
subscription commands we send.

Events (`event_type`): `book` is a full snapshot of one token (`bids`/`asks` as `{price, size}` strings; an older
doc names them `buys`/`sells`, both are accepted, and best levels are found by max/min, never by list order);
`price_change` carries `price_changes[]`, each the **new absolute size** at one level of one token (0 removes the
level). The server may send several events as one JSON array. `last_trade_price`, `tick_size_change` and the
other custom-feature events change no book; text `PING`/`PONG` keep-alives are skipped. `market_resolved` (a
custom-feature event: the subscription sets `custom_feature_enabled`) names the market's `winning_asset_id` among
its `assets_ids`. Prices arrive in dollars (".48") and come out in cents (48.0).

A `price_change` in the pre-September-2025 schema (`asset_id` + `changes[]`) is rejected as
`legacy_price_change`; the feed (polymarket/feed.py) treats any rejected `price_change` as a lost update.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import orjson

from arbees_core.venues.feed import FrameFormatError, cents

_NO_BOOK_CHANGE: Final = frozenset({"last_trade_price", "tick_size_change", "best_bid_ask", "new_market"})
KEEPALIVE: Final = frozenset({b"PING", b"PONG", "PING", "PONG"})

Levels = list[tuple[float, float]]  # [(price cents, contracts)]


class PolymarketFormatError(FrameFormatError):
    """A frame that is not a valid market-channel event; `reason` is the counter it goes to."""


class TokenBook(msgspec.Struct, frozen=True):
    """One outcome token's whole book."""

    token: str
    bids: Levels
    asks: Levels
    timestamp: Any = None

    def event_ns(self, fallback: int) -> int:
        return event_ns(self.timestamp, fallback)


class LevelChange(msgspec.Struct, frozen=True):
    """The new absolute size at one level of one token: side "BUY" (bids) or "SELL" (asks)."""

    token: str
    side: str
    price: float
    size: float


class PriceChange(msgspec.Struct, frozen=True):
    """The level changes of one `price_change` event (one or more tokens of a market)."""

    changes: list[LevelChange]
    timestamp: Any = None

    def event_ns(self, fallback: int) -> int:
        return event_ns(self.timestamp, fallback)


class Resolved(msgspec.Struct, frozen=True):
    """A market's result: `winner` is the winning token among `tokens` (the others resolve no)."""

    winner: str
    tokens: list[str]
    ts_event_ns: int


PolymarketMessage = TokenBook | PriceChange | Resolved


def is_keepalive(raw: bytes | str) -> bool:
    """A text `PING`/`PONG` (it says nothing about prices)."""
    return raw in KEEPALIVE or (isinstance(raw, (bytes, str)) and raw.strip() in KEEPALIVE)


def events(frame: Any) -> list[Any]:
    """The events of one frame (the server batches several as a JSON array)."""
    return frame if isinstance(frame, list) else [frame]


def parse_event(event: Any, recv_ns: int) -> PolymarketMessage | None:
    """One decoded event as its message; None for events that change no book. Raises PolymarketFormatError (or
    KeyError/TypeError/ValueError) for an event that is not valid."""
    if not isinstance(event, dict):
        raise PolymarketFormatError(f"event is a {type(event).__name__}, not an object")
    kind = event.get("event_type")
    if kind == "book":
        bids = _levels(event["bids"] if "bids" in event else event.get("buys", []))
        asks = _levels(event["asks"] if "asks" in event else event.get("sells", []))
        return TokenBook(str(event["asset_id"]), bids, asks, event.get("timestamp"))
    if kind == "price_change":
        return _price_change(event)
    if kind == "market_resolved":
        return _resolved(event, recv_ns)
    if kind not in _NO_BOOK_CHANGE:
        raise PolymarketFormatError(f"unknown event_type {kind!r}", "unknown_event")
    return None


def _price_change(event: dict[str, Any]) -> PriceChange:
    changes = event.get("price_changes")
    if not isinstance(changes, list):
        if "changes" in event or "asset_id" in event:
            raise PolymarketFormatError("price_change in the legacy schema (asset_id + changes[])",
                                        "legacy_price_change")
        raise PolymarketFormatError("price_change without price_changes[]")
    parsed = [LevelChange(str(c["asset_id"]), str(c["side"]).upper(), cents(c["price"]), float(c["size"]))
              for c in changes]
    if any(c.side not in ("BUY", "SELL") for c in parsed):
        raise PolymarketFormatError("price_change side is not BUY/SELL")
    return PriceChange(parsed, event.get("timestamp"))


def _resolved(event: dict[str, Any], recv_ns: int) -> Resolved:
    winner = str(event["winning_asset_id"])
    if not winner:
        raise PolymarketFormatError("market_resolved without a winning_asset_id")
    tokens = [str(t) for t in event.get("assets_ids") or [winner]]
    return Resolved(winner, tokens, event_ns(event.get("timestamp"), recv_ns))


def _levels(levels: Any) -> Levels:
    if not isinstance(levels, list):
        raise PolymarketFormatError("book levels are not a list")
    return [(cents(lv["price"]), float(lv["size"])) for lv in levels]


def event_ns(timestamp: Any, fallback: int) -> int:
    """`timestamp` is Unix milliseconds as a string; `fallback` (the receive time) when absent or bad."""
    try:
        return int(float(timestamp) * 1e6)
    except (TypeError, ValueError, OverflowError):
        return fallback


def asset_ids(event: dict[str, Any]) -> set[str]:
    """Every token a (possibly malformed) price_change names: top-level `asset_id` and each change's."""
    items = [event] + [c for key in ("price_changes", "changes") if isinstance(event.get(key), list)
                       for c in event[key] if isinstance(c, dict)]
    return {str(x["asset_id"]) for x in items if x.get("asset_id") is not None}


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
