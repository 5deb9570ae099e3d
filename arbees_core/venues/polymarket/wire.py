"""Polymarket CLOB market-channel events as the venue documents them, decoded straight into frozen structs.

Events are tagged by `event_type`; the server may send several as one JSON array. `book` is a full snapshot of
one token (`bids`/`asks` as `{price, size}` strings; an older doc names them `buys`/`sells`); `price_change`
carries `price_changes[]`, each the new absolute size at one level of one token; `market_resolved` (a custom
feature) names the market's `winning_asset_id` among its `assets_ids`. `last_trade_price`, `tick_size_change`,
`best_bid_ask` and `new_market` change no book. Prices and sizes are kept as sent (`parsing.py` turns dollars
into cents). Fields the venue adds later are ignored; a missing required field fails the decode, naming it.
"""

from __future__ import annotations

from typing import Final, Union

import msgspec

#: A price or size as sent: a decimal string (".48", "30") or a number.
Num = Union[str, float]
#: An event time: Unix milliseconds, as a string or a number.
Stamp = Union[str, float, None]


class WireLevel(msgspec.Struct, frozen=True):
    price: Num
    size: Num


class BookEvent(msgspec.Struct, frozen=True, tag_field="event_type", tag="book"):
    asset_id: str
    bids: list[WireLevel] | None = None
    asks: list[WireLevel] | None = None
    buys: list[WireLevel] | None = None
    sells: list[WireLevel] | None = None
    timestamp: Stamp = None


class WireChange(msgspec.Struct, frozen=True):
    asset_id: str
    price: Num
    size: Num
    side: str


class PriceChangeEvent(msgspec.Struct, frozen=True, tag_field="event_type", tag="price_change"):
    price_changes: list[WireChange]
    timestamp: Stamp = None


class ResolvedEvent(msgspec.Struct, frozen=True, tag_field="event_type", tag="market_resolved"):
    winning_asset_id: str
    assets_ids: list[str] | None = None
    timestamp: Stamp = None


#: Events that change no book: decoded, then skipped.
NO_BOOK_CHANGE: Final = ("last_trade_price", "tick_size_change", "best_bid_ask", "new_market")
_SKIPPED = tuple(msgspec.defstruct(f"Skipped_{kind}", [], tag_field="event_type", tag=kind, frozen=True)
                 for kind in NO_BOOK_CHANGE)
KNOWN: Final = frozenset({"book", "price_change", "market_resolved", *NO_BOOK_CHANGE})

Event = Union[(BookEvent, PriceChangeEvent, ResolvedEvent, *_SKIPPED)]  # type: ignore[valid-type]
#: A frame: one event, or several as an array.
FRAME_DECODER: Final = msgspec.json.Decoder(Union[list[Event], Event])  # type: ignore[valid-type]


# -- Gamma REST (market discovery) ---------------------------------------------------------------------------------

#: A Gamma list field: a JSON array encoded as a string (`'["Lakers", "Celtics"]'`), or a list.
JsonList = Union[str, list[object], None]


class GammaMarket(msgspec.Struct, frozen=True, rename="camel"):
    """One market of a Gamma event (the fields discovery reads; the rest are ignored)."""

    condition_id: str | None = None
    id: Union[str, int, None] = None
    question: str | None = None
    slug: str | None = None
    game_start_time: str | None = None
    sports_market_type: str | None = None
    closed: bool | None = None
    enable_order_book: bool | None = None
    active: bool | None = None
    outcomes: JsonList = None
    clob_token_ids: JsonList = None


class GammaEvent(msgspec.Struct, frozen=True, rename="camel"):
    """One event of `GET /events`, with its markets."""

    id: Union[str, int, None] = None
    slug: str | None = None
    title: str | None = None
    event_date: str | None = None
    start_time: str | None = None
    end_date: str | None = None
    markets: list[GammaMarket] = []
