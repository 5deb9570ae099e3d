"""The venue registry: the one place a venue is chosen by name.

Every venue is one package under `venues/` with the same modules in the same roles: `auth` (credentials or what
stands in for them), `rest` (market discovery), `ws` (the live WebSocket source), `wire` (the documented frames
as frozen msgspec structs), `parsing` (pure: raw frames -> wire structs -> frozen venue messages, and the commands
we send), `feed` (the books the monitor keeps), `sim` (the simulated venue's encoder) and `adapter` (the
`VenueAdapter` that names them). Services, the CLI and the simulator ask this module for a venue's parts and never
spell a venue's module themselves.

Adapters are imported on first use (`adapter(name)`), not here: every `arbees_core.venues.*` import runs this
file first, so importing the venue packages here would pull WebSocket, HTTP and crypto libraries into every user
of a book or a listing (`strategy.matching` among them), and the venue packages, which import `strategy.teams`,
would be one import away from a cycle. Fees are here directly: they are light and on game_shard's hot path.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from arbees_core import settings as S
from arbees_core.settings import Setting
from arbees_core.strategy.fees import FeeSchedule, kalshi_taker_fee_cents, polymarket_taker_fee_cents
from arbees_core.topics import KALSHI, POLYMARKET

if TYPE_CHECKING:
    from arbees_core.config import Env
    from arbees_core.venues.feed import VenueFeed
    from arbees_core.venues.listing import MarketListing
    from arbees_core.venues.live import LiveSource, Tickers
    from arbees_core.venues.sim_wire import SimWire

class UnknownVenue(ValueError):
    """A venue name the registry does not hold."""


@dataclass(frozen=True)
class VenueAdapter:
    """A venue's parts. live_config / discovery_config read the venue's settings (ConfigError when they are
    missing or wrong); make_live_source couples the live source to its feed (the feed's `take_resync` drives
    resubscription, `forget_connection` runs on each new connection); before_discovery runs once before the
    first discovery (Polymarket's geoblock check); discover raises VenueError when the venue cannot be used."""

    name: str
    make_feed: Callable[[], VenueFeed]
    live_config: Callable[[Env], Any]
    make_live_source: Callable[[Any, Tickers, VenueFeed], LiveSource]
    discovery_config: Callable[[Env], Any]
    discover: Callable[[Any], list[MarketListing]]
    before_discovery: Callable[[Any, logging.Logger], None]
    sim_wire: Callable[[int], SimWire]


@dataclass(frozen=True)
class Venue:
    """A registry entry: the venue's name, the setting that picks its source (`<VENUE>_SOURCE`), its taker fee in
    cents for `qty` contracts at `price_cents` under a FeeSchedule, and where its adapter is."""

    name: str
    source: Setting[str]
    taker_fee_cents: Callable[[float, float, FeeSchedule], float]
    adapter_module: str


REGISTRY: Final = {
    KALSHI: Venue(KALSHI, S.KALSHI_SOURCE,
                  lambda qty, price, fees: kalshi_taker_fee_cents(qty, price, fees.kalshi_taker_rate),
                  "arbees_core.venues.kalshi.adapter"),
    POLYMARKET: Venue(POLYMARKET, S.POLYMARKET_SOURCE,
                      lambda qty, price, fees: polymarket_taker_fee_cents(qty, price, fees.polymarket_taker_rate),
                      "arbees_core.venues.polymarket.adapter"),
}
NAMES: Final = tuple(REGISTRY)


def venue(name: str) -> Venue:
    """The registry entry of `name`; UnknownVenue (a ValueError) names the venues there are."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownVenue(f"unknown venue {name!r}: expected one of {', '.join(NAMES)}") from None


@functools.cache
def adapter(name: str) -> VenueAdapter:
    """The adapter of venue `name` (its package is imported on the first call)."""
    found = importlib.import_module(venue(name).adapter_module).ADAPTER
    assert isinstance(found, VenueAdapter) and found.name == name, f"{name}: not a VenueAdapter"
    return found


def taker_fee_cents(name: str, qty: float, price_cents: float, fees: FeeSchedule) -> float:
    """The taker fee in cents of buying `qty` contracts at `price_cents` on venue `name`: the only fee function,
    used by arbitrage detection and paper fills alike."""
    return venue(name).taker_fee_cents(qty, price_cents, fees)
