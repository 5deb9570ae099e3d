"""Kalshi REST discovery: the open game-winner markets of the sports series, as `MarketListing`s.

`GET /trade-api/v2/markets?series_ticker=KXNBAGAME&status=open&limit=1000&cursor=...` per series, following
`cursor` until it is empty. Requests are signed like every Kalshi request (the signature covers the path
without the query string). Rate limits: Basic tier allows 20 reads/s; requests are spaced by
`KALSHI_REST_MIN_INTERVAL_MS` and a 429 waits `Retry-After` (seconds or an HTTP date), else an exponential
backoff, for up to `KALSHI_REST_MAX_RETRIES` tries; 5xx and network errors are retried the same way.

Base URL (`KALSHI_ENV`): prod `https://external-api.kalshi.com/trade-api/v2`, demo
`https://external-api.demo.kalshi.co/trade-api/v2`; `KALSHI_REST_URL` overrides.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env
from arbees_core.venues.kalshi.auth import REST_URLS, KalshiSigner, kalshi_env
from arbees_core.venues.kalshi.parsing import markets_page, page_listings
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.live import AuthFailed, VenueError, proxy_for, safe_url

log = logging.getLogger("kalshi")

#: Kalshi's game-winner series, one per league.
GAME_SERIES: Final = S.KALSHI_SERIES.default
PAGE_LIMIT: Final = 1000
REQUEST_TIMEOUT_S: Final = 15.0


@dataclass(frozen=True)
class KalshiRestConfig:
    """base_url: KALSHI_REST_URL, else by KALSHI_ENV; signer: the API key (optional for discovery: market data
    is public over REST, but requests are signed when a key is configured); series: KALSHI_SERIES (comma list,
    default the four game series); min_interval_s: KALSHI_REST_MIN_INTERVAL_MS (60 ms: under the Basic tier's
    20 reads/s); max_retries: KALSHI_REST_MAX_RETRIES (6)."""

    base_url: str
    signer: KalshiSigner | None = None
    series: tuple[str, ...] = GAME_SERIES
    min_interval_s: float = 0.06
    max_retries: int = 6
    proxy: str = ""

    @classmethod
    def from_env(cls, env: Env) -> "KalshiRestConfig":
        signer = KalshiSigner.from_env(env) if env.get(S.KALSHI_API_KEY_ID) else None
        return cls(env.get(S.KALSHI_REST_URL) or REST_URLS[kalshi_env(env)], signer,
                   tuple(s.upper() for s in env.get(S.KALSHI_SERIES)),
                   env.get(S.KALSHI_REST_MIN_INTERVAL_MS) / 1000.0,
                   env.get(S.KALSHI_REST_MAX_RETRIES), env.get(S.KALSHI_PROXY))


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), None when absent/invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class KalshiRest:
    """A small signed REST client with spacing, 429 handling and retries. Use as a context manager."""

    def __init__(self, cfg: KalshiRestConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.cfg = cfg
        self.sleep = sleep
        self.client = httpx.Client(timeout=REQUEST_TIMEOUT_S, trust_env=False,
                                   proxy=proxy_for(cfg.base_url, cfg.proxy) or None,
                                   headers={"Accept": "application/json", "User-Agent": "arbees/0.1"})
        self._last = 0.0
        self.requests = 0
        self.rate_limited = 0
        self.waited_s = 0.0

    def __enter__(self) -> "KalshiRest":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.waited_s += seconds
            self.sleep(seconds)

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET `base_url + path` as JSON, signed; retries 429/5xx/network errors; raises VenueError otherwise."""
        url = self.cfg.base_url.rstrip("/") + path
        backoff = 0.5
        for attempt in range(self.cfg.max_retries + 1):
            self._wait(self._last + self.cfg.min_interval_s - time.monotonic())
            self._last = time.monotonic()
            headers = self.cfg.signer.headers("GET", urlsplit(url).path) if self.cfg.signer else {}
            self.requests += 1
            try:
                resp = self.client.get(url, params=params, headers=headers)
            except httpx.HTTPError as e:
                why, wait = f"{type(e).__name__}: {e}", backoff
            else:
                if resp.status_code == 200:
                    try:
                        body = resp.json()
                    except ValueError:
                        raise VenueError(f"Kalshi {path} answered non-JSON") from None
                    if not isinstance(body, dict):
                        raise VenueError(f"Kalshi {path} answered a {type(body).__name__}, not an object")
                    return body
                if resp.status_code in (401, 403):
                    raise AuthFailed(f"Kalshi REST {path}: HTTP {resp.status_code} (check KALSHI_API_KEY_ID and the "
                                     "private key for this KALSHI_ENV)")
                if resp.status_code != 429 and resp.status_code < 500:
                    raise VenueError(f"Kalshi REST {path}: HTTP {resp.status_code}: {resp.text[:200]}")
                if resp.status_code == 429:
                    self.rate_limited += 1
                hinted = retry_after_s(resp.headers.get("Retry-After"))
                why, wait = f"HTTP {resp.status_code}", backoff if hinted is None else hinted
            if attempt == self.cfg.max_retries:
                raise VenueError(f"Kalshi REST {path}: giving up after {attempt + 1} tries ({why})")
            log.warning("Kalshi REST %s: %s; retrying in %.2fs", path, why, wait)
            self._wait(wait)
            backoff = min(backoff * 2, 30.0)
        raise AssertionError("unreachable")


def discover_markets(cfg: KalshiRestConfig, sleep: Callable[[float], None] = time.sleep) -> list[MarketListing]:
    """Every open market of the configured series, all pages. Raises VenueError when Kalshi cannot be used."""
    if not cfg.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"KALSHI_REST_URL={cfg.base_url!r} is not an http(s) URL")
    listings: list[MarketListing] = []
    with KalshiRest(cfg, sleep) as rest:
        for series in cfg.series:
            cursor = ""
            while True:
                params: dict[str, Any] = {"series_ticker": series, "status": "open", "limit": PAGE_LIMIT}
                if cursor:
                    params["cursor"] = cursor
                try:
                    page = markets_page(rest.get("/markets", params))
                except ValueError as e:
                    raise VenueError(f"Kalshi /markets: {e}") from None
                found, skipped = page_listings(page, series)
                listings += found
                if skipped:
                    log.warning("Kalshi /markets (%s): %d malformed market(s) skipped", series, skipped)
                cursor = page.cursor or ""
                if not cursor or not page.markets:
                    break
        log.info("Kalshi discovery from %s: %d open markets in %s (%d requests, %d rate-limited)",
                 safe_url(cfg.base_url), len(listings), ",".join(cfg.series), rest.requests, rest.rate_limited)
    return listings
