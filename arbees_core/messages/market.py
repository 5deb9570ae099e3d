"""What the venues say, as the monitors publish it: a contract's top of book and a market's result."""

from __future__ import annotations

import msgspec

from arbees_core.messages.base import SCHEMA_VERSION, MarketResult, Venue


class PriceUpdate(msgspec.Struct, kw_only=True, gc=False):
    """Top of book of one binary contract on one venue, published when it changes.

    `yes_*` is the book of the YES side of `ticker` (the contract that pays if `outcome` wins); `no_*` is derived
    by the monitor where the venue only gives one side (Kalshi: YES ask = 100 - best NO bid). A missing side is
    `None` with size 0. `snapshot` marks a last-value replay for a late joiner, not a change in the book.
    """

    v: int = SCHEMA_VERSION
    src: str
    seq: int
    ts_origin_ns: int
    ts_event_ns: int = 0
    ts_pub_ns: int = 0
    venue: Venue
    ticker: str
    game_id: str
    outcome: str
    yes_bid: float | None = None
    yes_bid_size: float = 0.0
    yes_ask: float | None = None
    yes_ask_size: float = 0.0
    no_bid: float | None = None
    no_bid_size: float = 0.0
    no_ask: float | None = None
    no_ask_size: float = 0.0
    venue_seq: int = 0
    snapshot: bool = False
    topic_seq: int = 0


class MarketResolution(msgspec.Struct, kw_only=True, gc=False):
    """A market's result as its venue announced it: the contract `ticker` on `venue` settled `result`.

    Published by the venue's monitor when the venue says the market is determined (Kalshi `market_lifecycle_v2`
    `determined`/`settled` with `result`; Polymarket `market_resolved` with `winning_asset_id`); execution settles
    the positions held in that market and frees their exposure. `ts_event_ns` is the venue's time of the
    determination, `ts_origin_ns` its receipt by the monitor. `snapshot` marks a replay to a late joiner.
    """

    v: int = SCHEMA_VERSION
    src: str
    seq: int
    ts_pub_ns: int = 0
    ts_origin_ns: int
    ts_event_ns: int = 0
    venue: Venue
    ticker: str
    game_id: str = ""
    outcome: str = ""
    result: MarketResult
    snapshot: bool = False

