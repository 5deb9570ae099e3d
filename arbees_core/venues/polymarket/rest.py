"""Polymarket REST: market discovery through the Gamma API.

Gamma (`https://gamma-api.polymarket.com`, `POLYMARKET_GAMMA_URL` overrides) lists events with their markets.
`GET /sports` names each league's series id; `GET /events?series_id=<id>&closed=false&limit=&offset=` pages
through that league's open events (when `/sports` does not name a league, `tag_slug=<league>` is used). A game's
moneyline is one market with two outcomes (the teams), each outcome one CLOB token: `outcomes` and
`clobTokenIds` are JSON arrays **encoded as strings**, token order following `outcomes`. Markets marked with
another `sportsMarketType` (spreads, totals, props) or with Yes/No outcomes are skipped; the matcher checks the
question once more.

Each token becomes a `MarketListing`: ticker = token id, event_id = condition id, title = question, outcome =
outcome name, league, start_date = the game's US Eastern date.

The geoblock check (asked once before discovery and before the WebSocket connects) is in polymarket/auth.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

import httpx

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.polymarket.auth import GEOBLOCK_URL
from arbees_core.venues.polymarket.parsing import event_listings, gamma_events
from arbees_core.venues.polymarket.wire import GammaEvent
from arbees_core.venues.live import VenueError, proxy_for, safe_url

log = logging.getLogger("polymarket")

GAMMA_URL: Final = S.POLYMARKET_GAMMA_URL.default
LEAGUES: Final = S.POLYMARKET_LEAGUES.default
PAGE_LIMIT: Final = 100
MAX_PAGES: Final = 50
REQUEST_TIMEOUT_S: Final = 15.0


@dataclass(frozen=True)
class GammaConfig:
    """base_url: POLYMARKET_GAMMA_URL; leagues: POLYMARKET_LEAGUES (comma list, default NBA,NFL,NHL,MLB);
    proxy: POLYMARKET_PROXY, else HTTPS_PROXY / ALL_PROXY; geoblock_url: POLYMARKET_GEOBLOCK_URL (empty = skip)."""

    base_url: str = GAMMA_URL
    leagues: tuple[str, ...] = LEAGUES
    proxy: str = ""
    geoblock_url: str = GEOBLOCK_URL

    @classmethod
    def from_env(cls, env: Env) -> "GammaConfig":
        url = env.get(S.POLYMARKET_GAMMA_URL)
        return cls(url, tuple(x.upper() for x in env.get(S.POLYMARKET_LEAGUES)),
                   proxy_for(url, env.get(S.POLYMARKET_PROXY)) or "", env.get(S.POLYMARKET_GEOBLOCK_URL))


class Gamma:
    """A small Gamma client (public, no auth). Use as a context manager."""

    def __init__(self, cfg: GammaConfig) -> None:
        self.cfg = cfg
        self.client = httpx.Client(base_url=cfg.base_url.rstrip("/"), timeout=REQUEST_TIMEOUT_S, trust_env=False,
                                   proxy=cfg.proxy or None, headers={"User-Agent": "arbees/0.1"})

    def __enter__(self) -> "Gamma":
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            resp = self.client.get(path, params=params)
        except httpx.HTTPError as e:
            raise VenueError(f"Polymarket Gamma {path}: {type(e).__name__}: {e}") from None
        if resp.status_code != 200:
            raise VenueError(f"Polymarket Gamma {path}: HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            return resp.json()
        except ValueError:
            raise VenueError(f"Polymarket Gamma {path} answered non-JSON") from None

    def series_ids(self) -> dict[str, str]:
        """League -> series id from `/sports` ({} when the endpoint is unavailable: tag slugs are used instead)."""
        try:
            sports = self.get("/sports")
        except VenueError as e:
            log.warning("Polymarket Gamma /sports unavailable (%s); using tag slugs", e)
            return {}
        out: dict[str, str] = {}
        for item in sports if isinstance(sports, list) else []:
            if isinstance(item, dict) and item.get("sport") and item.get("series"):
                out.setdefault(str(item["sport"]).upper(), str(item["series"]))
        return out

    def events(self, league: str, series_id: str | None) -> list[GammaEvent]:
        """Every open event of one league, all pages (a malformed event is skipped and counted in the log)."""
        found: list[GammaEvent] = []
        for page in range(MAX_PAGES):
            params: dict[str, Any] = {"closed": "false", "limit": PAGE_LIMIT, "offset": page * PAGE_LIMIT}
            params |= {"series_id": series_id} if series_id else {"tag_slug": league.lower()}
            batch = self.get("/events", params)
            if not isinstance(batch, list):
                raise VenueError("Polymarket Gamma /events did not answer a list")
            events, skipped = gamma_events(batch)
            found += events
            if skipped:
                log.warning("Polymarket Gamma /events (%s): %d malformed event(s) skipped", league, skipped)
            if len(batch) < PAGE_LIMIT:
                break
        return found


def discover_markets(cfg: GammaConfig) -> list[MarketListing]:
    """Every moneyline token of the configured leagues' open events. Raises VenueError when Gamma cannot be used."""
    listings: list[MarketListing] = []
    with Gamma(cfg) as gamma:
        series = gamma.series_ids()
        for league in cfg.leagues:
            for event in gamma.events(league, series.get(league)):
                listings += event_listings(event, league)
    log.info("Polymarket discovery from %s: %d moneyline tokens in %s", safe_url(cfg.base_url), len(listings),
             ",".join(cfg.leagues))
    return listings
