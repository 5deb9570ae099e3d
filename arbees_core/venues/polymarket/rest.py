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
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

import httpx
import orjson

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.polymarket.auth import GEOBLOCK_URL
from arbees_core.venues.live import VenueError, proxy_for, safe_url

log = logging.getLogger("polymarket")

GAMMA_URL: Final = S.POLYMARKET_GAMMA_URL.default
LEAGUES: Final = S.POLYMARKET_LEAGUES.default
PAGE_LIMIT: Final = 100
MAX_PAGES: Final = 50
REQUEST_TIMEOUT_S: Final = 15.0
_SLUG_DATE: Final = re.compile(r"(\d{4}-\d{2}-\d{2})$")
_YES_NO: Final = frozenset({"yes", "no"})


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


def game_day(event: dict[str, Any], market: dict[str, Any]) -> str:
    """The game's date: the event's own `eventDate`, the slug's date, then the market's `gameStartTime`, the
    event's `startTime`, `endDate` (in that order: `startDate` is when the market opened, not the game)."""
    if isinstance(event.get("eventDate"), str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", event["eventDate"]):
        return event["eventDate"]
    m = _SLUG_DATE.search(str(event.get("slug") or ""))
    if m:
        return m.group(1)
    for value in (market.get("gameStartTime"), event.get("startTime"), event.get("endDate")):
        day = _eastern_day(value)
        if day:
            return day
    return ""


def is_moneyline(market: dict[str, Any]) -> bool:
    """A tradeable two-team winner market: two non Yes/No outcomes with two tokens, order book on, not closed,
    and no other `sportsMarketType`."""
    kind = market.get("sportsMarketType")
    if kind not in (None, "", "moneyline"):
        return False
    if market.get("closed") is True or market.get("enableOrderBook") is False or market.get("active") is False:
        return False
    outcomes, tokens = json_list(market.get("outcomes")), json_list(market.get("clobTokenIds"))
    return len(outcomes) == 2 == len(tokens) and not {str(o).strip().lower() for o in outcomes} & _YES_NO


def event_listings(event: dict[str, Any], league: str) -> list[MarketListing]:
    """The moneyline tokens of one Gamma event."""
    out = []
    for market in event.get("markets") or []:
        if not isinstance(market, dict) or not is_moneyline(market):
            continue
        day = game_day(event, market)
        condition = str(market.get("conditionId") or market.get("id") or "")
        question = str(market.get("question") or event.get("title") or "")
        for outcome, token in zip(json_list(market["outcomes"]), json_list(market["clobTokenIds"])):
            out.append(MarketListing("polymarket", str(token), condition, question, str(outcome), league, day,
                                     {"slug": market.get("slug") or event.get("slug") or "",
                                      "question": question, "event_id": str(event.get("id") or "")}))
    return out


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

    def events(self, league: str, series_id: str | None) -> list[dict[str, Any]]:
        """Every open event of one league, all pages."""
        found: list[dict[str, Any]] = []
        for page in range(MAX_PAGES):
            params: dict[str, Any] = {"closed": "false", "limit": PAGE_LIMIT, "offset": page * PAGE_LIMIT}
            params |= {"series_id": series_id} if series_id else {"tag_slug": league.lower()}
            batch = self.get("/events", params)
            if not isinstance(batch, list):
                raise VenueError("Polymarket Gamma /events did not answer a list")
            found += [e for e in batch if isinstance(e, dict)]
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
