"""Polymarket market-channel frames -> frozen Polymarket messages (pure), and the subscription commands we send.

A raw frame (one event, or several as a JSON array) is decoded straight into the venue's wire structs
(`polymarket/wire.py`, tagged by `event_type`) and mapped to the messages the feed applies: `TokenBook` (a token's
whole book; best levels are found by max/min, never by list order), `PriceChange` (new absolute sizes per level,
0 removes the level) and `Resolved`. Text `PING`/`PONG` keep-alives are skipped. Prices arrive in dollars (".48")
and come out in cents (48.0).

An event that is not valid is one `Rejected` with its counter (`malformed`, `unknown_event`, `bad_message`) while
the other events of its frame still count. A `price_change` in the pre-September-2025 schema (`asset_id` +
`changes[]`) is rejected as `legacy_price_change`; a rejected `price_change` names the tokens it carried (`lost`),
whose books the feed (polymarket/feed.py) then withdraws until their fresh `book`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Final

import msgspec
import orjson

from arbees_core.venues.feed import FrameFormatError, Rejected, cents, not_json
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.polymarket.wire import (
    GammaEvent,
    GammaMarket,
    FRAME_DECODER,
    KNOWN,
    BookEvent,
    Event,
    PriceChangeEvent,
    ResolvedEvent,
    WireLevel,
)

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
Parsed = list[PolymarketMessage | Rejected]
_ERRORS = (FrameFormatError, ValueError, TypeError, OverflowError)


def is_keepalive(raw: bytes | str) -> bool:
    """A text `PING`/`PONG` (it says nothing about prices)."""
    return raw in KEEPALIVE or (isinstance(raw, (bytes, str)) and raw.strip() in KEEPALIVE)


def parse_frame(raw: bytes | str, recv_ns: int) -> Parsed:
    """The messages of one raw frame in order, a `Rejected` in place of each event that is not valid; events that
    change no book give nothing."""
    try:
        decoded = FRAME_DECODER.decode(raw)
    except msgspec.DecodeError:
        return _one_by_one(raw, recv_ns)
    out: Parsed = []
    for event in decoded if type(decoded) is list else (decoded,):
        try:
            message = _message(event, recv_ns)
        except _ERRORS as e:
            out.append(_failed(e, event))
            continue
        if message is not None:
            out.append(message)
    return out


def _message(event: Any, recv_ns: int) -> PolymarketMessage | None:
    kind = type(event)
    if kind is PriceChangeEvent:
        return _price_change(event)
    if kind is BookEvent:
        bids = event.bids if event.bids is not None else event.buys
        asks = event.asks if event.asks is not None else event.sells
        return TokenBook(event.asset_id, _levels(bids), _levels(asks), event.timestamp)
    if kind is ResolvedEvent:
        return _resolved(event, recv_ns)
    return None


def _failed(error: Exception, event: Any) -> Rejected:
    """A decoded event whose values are not usable (a price that is no number, a side that is no side)."""
    lost = tuple(sorted({c.asset_id for c in event.price_changes})) if type(event) is PriceChangeEvent else ()
    return Rejected(getattr(error, "reason", "bad_message"), f"{type(error).__name__}: {error}", lost)


def _one_by_one(raw: bytes | str, recv_ns: int) -> Parsed:
    """A frame the typed decode refused as a whole: each event on its own, so one bad event costs only itself."""
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return [not_json(e)]
    out: Parsed = []
    for item in frame if isinstance(frame, list) else [frame]:
        try:
            event = msgspec.convert(item, Event)
        except msgspec.ValidationError as e:
            out.append(_invalid(item, e))
            continue
        try:
            message = _message(event, recv_ns)
        except _ERRORS as e:
            out.append(_failed(e, event))
            continue
        if message is not None:
            out.append(message)
    return out


def _invalid(item: Any, error: msgspec.ValidationError) -> Rejected:
    """Why one event does not fit its documented shape, in the counter it goes to."""
    if not isinstance(item, dict):
        return Rejected("bad_message", f"event is a {type(item).__name__}, not an object")
    kind = item.get("event_type")
    if kind not in KNOWN:
        return Rejected("unknown_event", f"unknown event_type {kind!r}")
    if kind != "price_change":
        return Rejected("bad_message", f"{kind}: {error}")
    lost = tuple(sorted(asset_ids(item)))
    if not isinstance(item.get("price_changes"), list) and ("changes" in item or "asset_id" in item):
        return Rejected("legacy_price_change", "price_change in the legacy schema (asset_id + changes[])", lost)
    return Rejected("bad_message", f"price_change: {error}", lost)


def _price_change(event: PriceChangeEvent) -> PriceChange:
    parsed = [LevelChange(c.asset_id, c.side.upper(), cents(c.price), float(c.size)) for c in event.price_changes]
    if any(c.side not in ("BUY", "SELL") for c in parsed):
        raise PolymarketFormatError("price_change side is not BUY/SELL")
    return PriceChange(parsed, event.timestamp)


def _resolved(event: ResolvedEvent, recv_ns: int) -> Resolved:
    winner = event.winning_asset_id
    if not winner:
        raise PolymarketFormatError("market_resolved without a winning_asset_id")
    return Resolved(winner, event.assets_ids or [winner], event_ns(event.timestamp, recv_ns))


def _levels(levels: list[WireLevel] | None) -> Levels:
    return [(cents(lv.price), float(lv.size)) for lv in levels or []]


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


# -- Gamma REST listings (market discovery) ------------------------------------------------------------------------

_SLUG_DATE: Final = re.compile(r"(\d{4}-\d{2}-\d{2})$")
_YES_NO: Final = frozenset({"yes", "no"})


def json_list(value: Any) -> list[Any]:
    """A Gamma list field: a JSON array encoded as a string (`'["Lakers", "Celtics"]'`), or already a list."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.strip():
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return []
        return decoded if isinstance(decoded, list) else []
    return []


def _eastern_day(value: Any) -> str:
    """The US Eastern calendar date of a timestamp ("2025-11-07 00:30:00+00", ISO with Z), "" if unparsable.
    Kalshi's ticker dates are Eastern, so a late game in UTC still lands on its Eastern day."""
    if not value:
        return ""
    text = str(value).strip().replace("Z", "+00:00")
    if re.fullmatch(r".*[+-]\d{2}$", text):
        text += ":00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        from zoneinfo import ZoneInfo

        return when.astimezone(ZoneInfo("America/New_York")).date().isoformat()
    except Exception:  # noqa: BLE001 - no tz database: fixed EST is right to within an hour
        return (when.astimezone(timezone.utc) - timedelta(hours=5)).date().isoformat()


def game_day(event: GammaEvent, market: GammaMarket) -> str:
    """The game's date: the event's own `eventDate`, the slug's date, then the market's `gameStartTime`, the
    event's `startTime`, `endDate` (in that order: `startDate` is when the market opened, not the game)."""
    if event.event_date and re.fullmatch(r"\d{4}-\d{2}-\d{2}", event.event_date):
        return event.event_date
    m = _SLUG_DATE.search(event.slug or "")
    if m:
        return m.group(1)
    for value in (market.game_start_time, event.start_time, event.end_date):
        day = _eastern_day(value)
        if day:
            return day
    return ""


def is_moneyline(market: GammaMarket) -> bool:
    """A tradeable two-team winner market: two non Yes/No outcomes with two tokens, order book on, not closed,
    and no other `sportsMarketType`."""
    if market.sports_market_type not in (None, "", "moneyline"):
        return False
    if market.closed is True or market.enable_order_book is False or market.active is False:
        return False
    outcomes, tokens = json_list(market.outcomes), json_list(market.clob_token_ids)
    return len(outcomes) == 2 == len(tokens) and not {str(o).strip().lower() for o in outcomes} & _YES_NO


def event_listings(event: GammaEvent, league: str) -> list[MarketListing]:
    """The moneyline tokens of one Gamma event."""
    out = []
    for market in event.markets:
        if not is_moneyline(market):
            continue
        day = game_day(event, market)
        condition = str(market.condition_id or market.id or "")
        question = market.question or event.title or ""
        for outcome, token in zip(json_list(market.outcomes), json_list(market.clob_token_ids)):
            out.append(MarketListing("polymarket", str(token), condition, question, str(outcome), league, day,
                                     {"slug": market.slug or event.slug or "",
                                      "question": question, "event_id": str(event.id or "")}))
    return out


def gamma_events(batch: list[object]) -> tuple[list[GammaEvent], int]:
    """A decoded `GET /events` page as events, and how many were malformed (skipped, each costing only itself)."""
    out, skipped = [], 0
    for raw in batch:
        try:
            out.append(msgspec.convert(raw, GammaEvent))
        except msgspec.ValidationError:
            skipped += 1
    return out, skipped
