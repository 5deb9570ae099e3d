"""Polymarket's parts, as the venue registry (venues/__init__.py) hands them out."""

from __future__ import annotations

import logging

from arbees_core.topics import POLYMARKET
from arbees_core.venues import VenueAdapter
from arbees_core.venues.polymarket.auth import check_geoblock
from arbees_core.venues.polymarket.feed import PolymarketFeed
from arbees_core.venues.polymarket.rest import GammaConfig, discover_markets
from arbees_core.venues.polymarket.sim import PolymarketSimWire
from arbees_core.venues.live import Tickers
from arbees_core.venues.polymarket.ws import PolymarketLiveConfig, PolymarketLiveSource


def make_live_source(cfg: PolymarketLiveConfig, tickers: Tickers, feed: PolymarketFeed) -> PolymarketLiveSource:
    return PolymarketLiveSource(cfg, tickers, resync=feed.take_resync, on_connect=feed.forget_connection,
                                has_snapshot=feed.has_snapshot)


def before_discovery(cfg: GammaConfig, log: logging.Logger) -> None:
    """The geoblock answer, logged once (never fatal: market data is not blocked)."""
    if cfg.geoblock_url:
        check_geoblock(cfg.geoblock_url, cfg.proxy, log)


ADAPTER = VenueAdapter(POLYMARKET, PolymarketFeed, PolymarketLiveConfig.from_env, make_live_source,
                       GammaConfig.from_env, discover_markets, before_discovery, PolymarketSimWire)
