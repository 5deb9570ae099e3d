"""Polymarket access: market data needs no credentials; what stands in for them is the geoblock.

The CLOB's market channel and Gamma are public. Orders are refused from several countries while market data is
not, and the plan routes Polymarket through a VPN container (`POLYMARKET_PROXY`, else `HTTPS_PROXY` /
`ALL_PROXY`). `GET https://polymarket.com/api/geoblock` -> `blocked`, `country`, ...: the answer is logged once at
start (discovery, the live source) and never stops anything.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import httpx

from arbees_core import settings as S
from arbees_core.venues.live import proxy_for

log = logging.getLogger("polymarket")

GEOBLOCK_URL: Final = S.POLYMARKET_GEOBLOCK_URL.default
REQUEST_TIMEOUT_S: Final = 15.0


def check_geoblock(url: str, proxy: str = "", logger: logging.Logger | None = None) -> dict[str, Any] | None:
    """Ask Polymarket whether this IP may place orders; log the answer. Never raises (None when unknown)."""
    logger = logger or log
    try:
        with httpx.Client(timeout=REQUEST_TIMEOUT_S, trust_env=False, proxy=proxy_for(url, proxy) or None) as client:
            resp = client.get(url)
        answer = resp.json() if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as e:
        logger.warning("Polymarket geoblock check failed (%s); orders may be refused from a blocked country",
                       type(e).__name__)
        return None
    if not isinstance(answer, dict):
        logger.warning("Polymarket geoblock check: unexpected answer (HTTP %s)", resp.status_code)
        return None
    country = answer.get("country") or "?"
    if answer.get("blocked"):
        logger.warning("Polymarket reports this IP blocked in %s: orders are not allowed; market data only", country)
    else:
        logger.info("Polymarket geoblock check: this IP is not blocked (%s)", country)
    return answer
