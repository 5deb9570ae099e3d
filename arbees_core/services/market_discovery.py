"""market_discovery: finds each venue's sports markets, pairs the same game across venues, stores the mapping.

The mapping (`market_mappings` in PostgreSQL) names, per game and team, the Kalshi ticker and the Polymarket
token that pay on the same outcome; game_shard compares exactly those contracts and signals name them, so nothing
downstream re-resolves markets from team names (the original's failure). Markets that match nothing are kept in
`unmatched_markets` for the operator. Long-running: it re-discovers every `DISCOVERY_INTERVAL_S`.

Where listings come from follows each venue's monitor source: `sim` -> the simulator's listings, `live` -> Kalshi
REST (`/markets` of the game series) and Polymarket Gamma (moneyline events), `replay:<file>` -> the listings
stored beside the recording (`<file>.listings.json`), else the simulator's. A venue that cannot be reached leaves
the stored mapping as it was (logged; retried after `DISCOVERY_RETRY_S`).
Run: `python -m arbees_core.services.market_discovery`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env
from arbees_core.services.runner import Service
from arbees_core.services.runner import main as run_main
from arbees_core.store.db import StoreUnavailable, connect, postgres_peer
from arbees_core.store.mapping_cache import MAPPING_REFRESH_S
from arbees_core.store.mappings import save_mappings
from arbees_core.store.schema import migrate
from arbees_core.strategy.matching import match_markets
from arbees_core.telemetry.peers import PeerLink
from arbees_core.topics import KALSHI, MARKET_DISCOVERY, POLYMARKET
from arbees_core.transport import TransportSettings
from arbees_core.venues import NAMES, adapter, venue
from arbees_core.venues.listing import GameMapping, MarketListing
from arbees_core.venues.live import VenueError
from arbees_core.venues.replay import load_listings
from arbees_core.venues.sim import SimConfig, SimVenue
from arbees_core.venues.source import SourceSpec, parse_source


@dataclass(frozen=True)
class DiscoveryConfig:
    """database_url: DATABASE_URL (required); interval_s: DISCOVERY_INTERVAL_S; shard_id: SHARD_ID assigned to
    every game (one shard today); sources: venue -> its `<VENUE>_SOURCE` (`sim` | `live` |
    `replay:<file>[@<speed>x]`, sim when absent); live: venue -> its discovery settings (the adapter's
    `discovery_config`: KalshiRestConfig, GammaConfig) for each live venue; retry_s: DISCOVERY_RETRY_S (30) after a
    venue failure."""

    database_url: str
    interval_s: float
    shard_id: str
    sim: SimConfig
    sources: dict[str, SourceSpec] = field(default_factory=dict)
    live: dict[str, Any] = field(default_factory=dict)
    retry_s: float = 30.0

    def source(self, name: str) -> SourceSpec:
        return self.sources.get(name, SourceSpec())

    @classmethod
    def from_env(cls, env: Env) -> "DiscoveryConfig":
        url = env.get(S.DATABASE_URL)
        if not url:
            raise ConfigError("DATABASE_URL is not set: market_discovery stores the mapping in PostgreSQL")
        sources = {name: parse_source(env.get(venue(name).source), venue(name).source.name) for name in NAMES}
        live = {name: adapter(name).discovery_config(env) for name, spec in sources.items() if spec.kind == "live"}
        return cls(url, env.get(S.DISCOVERY_INTERVAL_S), env.get(S.SHARD_ID, "shard-1"), SimConfig.from_env(env),
                   sources, live, env.get(S.DISCOVERY_RETRY_S))


def venue_listings(name: str, cfg: DiscoveryConfig) -> list[MarketListing]:
    """One venue's listings from where its monitor's prices come from. Raises VenueError when a live venue fails."""
    source = cfg.source(name)
    if source.kind == "live":
        return adapter(name).discover(cfg.live[name])
    if source.kind == "replay":
        stored = load_listings(source.path)
        if stored is not None:
            return [x for x in stored if x.venue == name]
    return SimVenue(name, cfg.sim).listings(listing_horizon_s(cfg))


def listing_horizon_s(cfg: DiscoveryConfig) -> float:
    """How far ahead simulated games are listed: until the run after next, plus a mapping refresh of the services
    reading it (`MappingCache`, 30 s), so a game is mapped everywhere before it starts, as real venues list
    their games hours ahead."""
    return 2 * cfg.interval_s + MAPPING_REFRESH_S


def discover(cfg: DiscoveryConfig) -> tuple[list[GameMapping], list[MarketListing]]:
    """One discovery pass: list both venues, match, assign the shard."""
    games, unmatched = match_markets(venue_listings(KALSHI, cfg), venue_listings(POLYMARKET, cfg))
    return [replace(g, shard_id=cfg.shard_id) for g in games], unmatched


class MarketDiscovery(Service):
    name = MARKET_DISCOVERY

    def __init__(self, settings: TransportSettings, cfg: DiscoveryConfig, heartbeat_interval_s: float = 1.0) -> None:
        super().__init__(settings, heartbeat_interval_s)
        self.cfg = cfg
        self.last: dict[str, Any] = {}
        self._migrated = False

    @classmethod
    def from_env(cls, env: Env) -> "MarketDiscovery":
        return cls(TransportSettings.from_env(env), DiscoveryConfig.from_env(env),
                   env.get(S.HEARTBEAT_INTERVAL_SECS))

    def extra_snapshot(self) -> dict[str, Any]:
        return {"discovery": self.last}

    def run(self, stop: threading.Event) -> None:
        self.log.info("Discovery sources: %s", ", ".join(f"{name} {self.cfg.source(name).describe()}"
                                                          for name in NAMES))
        for name, live in self.cfg.live.items():
            adapter(name).before_discovery(live, self.log)
        store = PeerLink(postgres_peer(self.cfg.database_url), "storing the mapping")
        try:
            while not stop.is_set():
                self.wait(self.discover_once(store), stop)
        finally:
            store.close()

    def discover_once(self, store: PeerLink) -> float:
        """One pass: list, match, store. Returns the seconds until the next pass: the interval, the venue retry,
        or the store's backoff while PostgreSQL is not usable (one line per reason, through its peer)."""
        try:
            with connect(self.cfg.database_url, retries=0, log=None if self._migrated else self.log) as conn:
                store.ok()
                if not self._migrated:
                    migrate(conn)
                    self._migrated = True
                games, unmatched = discover(self.cfg)
                save_mappings(conn, games, unmatched)
        except (StoreUnavailable, psycopg.Error) as e:
            self.metrics.inc("discovery_errors")
            store.failed(e, "the stored mapping stays as it was; retrying with backoff")
            return store.wait_s()
        except VenueError as e:
            self.metrics.inc("discovery_errors")
            self.log.error("Discovery cannot list a venue: %s; keeping the stored mapping, retrying in %gs", e,
                           self.cfg.retry_s)
            return self.cfg.retry_s
        self.last = {"games": len(games), "unmatched": len(unmatched)}
        self.metrics.inc("discovery_runs")
        self.log.info("Discovery: mapped %d games (%d contracts); %d markets unmatched", len(games),
                      sum(len(g.pairs) * 2 for g in games), len(unmatched))
        return self.cfg.interval_s

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Wait `seconds` (or until stopped), heartbeating meanwhile."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            self.tick()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            stop.wait(min(0.5, remaining))


def main() -> int:
    return run_main(MarketDiscovery)


if __name__ == "__main__":
    raise SystemExit(main())
