"""Kalshi's parts, as the venue registry (venues/__init__.py) hands them out."""

from __future__ import annotations

import logging
from typing import Any

from arbees_core.topics import KALSHI
from arbees_core.venues import VenueAdapter
from arbees_core.venues.kalshi.feed import KalshiFeed
from arbees_core.venues.kalshi.rest import KalshiRestConfig, discover_markets
from arbees_core.venues.kalshi.sim import KalshiSimWire
from arbees_core.venues.live import Tickers
from arbees_core.venues.kalshi.ws import KalshiLiveConfig, KalshiLiveSource


def make_live_source(cfg: KalshiLiveConfig, tickers: Tickers, feed: KalshiFeed) -> KalshiLiveSource:
    return KalshiLiveSource(cfg, tickers, resync=feed.take_resync, on_connect=feed.forget_connection)


def before_discovery(cfg: Any, log: logging.Logger) -> None:
    """Nothing to check before Kalshi's discovery."""


ADAPTER = VenueAdapter(KALSHI, KalshiFeed, KalshiLiveConfig.from_env, make_live_source, KalshiRestConfig.from_env,
                       discover_markets, before_discovery, KalshiSimWire)
