"""Polymarket CLOB market channel: `book` snapshots and `price_change` updates for the mapped outcome tokens.

`wss://ws-subscriptions-clob.polymarket.com/ws/market` (`POLYMARKET_WS_URL` overrides), no auth. After connecting
the client sends `{"assets_ids": [...], "type": "market"}`; later changes of the wanted tokens are sent as
`{"assets_ids": [...], "operation": "subscribe"|"unsubscribe"}`. Keep-alive: a text `PING` every
`POLYMARKET_PING_S` (10 s); the server's `PONG` is not handed to the monitor (it says nothing about prices).

The CLOB is geo-blocked for orders in several countries and the plan routes Polymarket through a VPN container:
`POLYMARKET_PROXY`, else `HTTPS_PROXY` / `ALL_PROXY`, is used for the connection (http://, https:// or socks5://).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from websockets.asyncio.client import ClientConnection

from arbees_core.config import Env
from arbees_core.venues.live import TICKER_CHECK_S, Backoff, LiveSource, Tickers, proxy_for, tickers_of
from arbees_core.venues.polymarket.parsing import subscribe_command

WS_URL: Final = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
PING_S: Final = 10.0
_KEEPALIVE: Final = frozenset({b"PONG", b"PING"})


@dataclass(frozen=True)
class PolymarketLiveConfig:
    """ws_url: POLYMARKET_WS_URL; proxy: POLYMARKET_PROXY, else HTTPS_PROXY / ALL_PROXY (NO_PROXY honoured);
    ping_s: POLYMARKET_PING_S (10); backoff: VENUE_BACKOFF_MIN_S / VENUE_BACKOFF_MAX_S; geoblock_url:
    POLYMARKET_GEOBLOCK_URL (checked once at start, logged, never fatal; empty = skip)."""

    ws_url: str = WS_URL
    proxy: str = ""
    ping_s: float = PING_S
    backoff: Backoff = field(default_factory=Backoff)
    geoblock_url: str = ""

    @classmethod
    def from_env(cls, env: Env) -> "PolymarketLiveConfig":
        from arbees_core.venues.polymarket.gamma import GEOBLOCK_URL

        url = env.str("POLYMARKET_WS_URL") or WS_URL
        return cls(url, proxy_for(url, env.str("POLYMARKET_PROXY")) or "",
                   env.float("POLYMARKET_PING_S", PING_S, minimum=0.1), Backoff.from_env(env),
                   env.str("POLYMARKET_GEOBLOCK_URL", GEOBLOCK_URL))


class PolymarketLiveSource(LiveSource):
    """Raw frames of the market channel for `tickers` (token ids; a list or a callable returning the current
    list). `resync` returns tokens whose updates arrived before any book (the feed's `take_resync`): they are
    subscribed again, which makes the server send their book."""

    venue = "polymarket"
    label = "Polymarket WebSocket"

    def __init__(self, cfg: PolymarketLiveConfig, tickers: Tickers,
                 resync: Callable[[], set[str]] | None = None) -> None:
        super().__init__(cfg.ws_url, tickers, Backoff(cfg.backoff.min_s, cfg.backoff.max_s), cfg.proxy or None)
        self.cfg = cfg
        self.resync = resync
        self.pings = 0
        self.pongs = 0
        self.resubscribes = 0
        self._subscribed: set[str] = set()
        self._next_ping = 0.0
        self._next_ticker_check = 0.0
        self._geoblock_checked = False

    def stats(self) -> dict[str, Any]:
        return super().stats() | {"pings": self.pings, "pongs": self.pongs, "resubscribes": self.resubscribes,
                                  "markets_subscribed": len(self._subscribed)}

    async def stream(self, stop: asyncio.Event | None = None):  # type: ignore[override]
        if not self._geoblock_checked and self.cfg.geoblock_url:
            self._geoblock_checked = True
            from arbees_core.venues.polymarket.gamma import check_geoblock

            await asyncio.to_thread(check_geoblock, self.cfg.geoblock_url, self.cfg.proxy, self.log)
        async for raw in super().stream(stop):
            yield raw

    # -- hooks ---------------------------------------------------------------------------------------------------

    async def on_open(self, ws: ClientConnection) -> None:
        self._subscribed = set()
        if self.resync is not None:
            self.resync()
        wanted = tickers_of(self.tickers)
        if wanted:
            await ws.send(subscribe_command(wanted).decode())
            self._subscribed = set(wanted)
            self.log.info("Polymarket: subscribed the market channel for %d tokens", len(wanted))
        self._next_ping = time.monotonic() + self.cfg.ping_s
        self._next_ticker_check = time.monotonic() + TICKER_CHECK_S

    async def on_idle(self, ws: ClientConnection) -> None:
        now = time.monotonic()
        if now >= self._next_ping:
            self._next_ping = now + self.cfg.ping_s
            self.pings += 1
            await ws.send("PING")
        if self.resync is not None:
            tokens = self.resync()
            if tokens:
                self.resubscribes += 1
                await self._send(ws, sorted(tokens), "subscribe")
        if now >= self._next_ticker_check:
            self._next_ticker_check = now + TICKER_CHECK_S
            await self._follow_tickers(ws)

    def inspect(self, raw: bytes) -> bool:
        if len(raw) <= 6 and raw.strip() in _KEEPALIVE:
            self.pongs += 1
            return False
        return True

    # -- subscriptions -------------------------------------------------------------------------------------------

    async def _send(self, ws: ClientConnection, tokens: list[str], operation: str) -> None:
        if not self._subscribed and operation == "subscribe":
            await ws.send(subscribe_command(tokens).decode())  # the first subscription of a connection
        else:
            await ws.send(orjson.dumps({"assets_ids": tokens, "operation": operation,
                                        "custom_feature_enabled": True}).decode())  # market_resolved for them

    async def _follow_tickers(self, ws: ClientConnection) -> None:
        wanted = tickers_of(self.tickers)
        added = [t for t in wanted if t not in self._subscribed]
        gone = sorted(self._subscribed - set(wanted))
        if gone:
            await self._send(ws, gone, "unsubscribe")
            self._subscribed -= set(gone)
        if added:
            await self._send(ws, added, "subscribe")
            self._subscribed |= set(added)
        if added or gone:
            self.log.info("Polymarket: mapping changed: +%d / -%d tokens (%d subscribed)", len(added), len(gone),
                          len(self._subscribed))
