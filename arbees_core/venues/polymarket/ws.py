"""Polymarket CLOB market channel: `book` snapshots and `price_change` updates for the mapped outcome tokens.

`wss://ws-subscriptions-clob.polymarket.com/ws/market` (`POLYMARKET_WS_URL` overrides), no auth. After connecting
the client sends `{"assets_ids": [...], "type": "market", "initial_dump": true}`; later changes of the wanted
tokens are sent as `{"assets_ids": [...], "operation": "subscribe"|"unsubscribe", "initial_dump": true}`. The
snapshot is asked for explicitly: a public report (nautilus_trader issue 3963) saw the server skip the `book` of
some assets without it. A token whose `book` has not arrived `POLYMARKET_SNAPSHOT_TIMEOUT_S` (5 s) after it was
subscribed is unsubscribed and subscribed again, counted in `snapshot_timeouts`.
Keep-alive: a text `PING` every `POLYMARKET_PING_S` (10 s); the server's `PONG` is not handed to the monitor (it
says nothing about prices) but keeps the feed intact while the market is quiet (venues/keepalive.py).

The CLOB is geo-blocked for orders in several countries and the plan routes Polymarket through a VPN container:
`POLYMARKET_PROXY`, else `HTTPS_PROXY` / `ALL_PROXY`, is used for the connection (http://, https:// or socks5://).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from websockets.asyncio.client import ClientConnection

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.telemetry.logs import RateLimiter
from arbees_core.topics import POLYMARKET
from arbees_core.venues.live import (
    DEFAULT_KEEPALIVE_S,
    TICKER_CHECK_S,
    Backoff,
    LiveSource,
    Tickers,
    proxy_for,
    tickers_of,
)
from arbees_core.venues.polymarket.auth import check_geoblock
from arbees_core.venues.polymarket.parsing import subscribe_command

WS_URL: Final = S.POLYMARKET_WS_URL.default
PING_S: Final = S.POLYMARKET_PING_S.default
SNAPSHOT_TIMEOUT_S: Final = S.POLYMARKET_SNAPSHOT_TIMEOUT_S.default
_KEEPALIVE: Final = frozenset({b"PONG", b"PING"})


@dataclass(frozen=True)
class PolymarketLiveConfig:
    """ws_url: POLYMARKET_WS_URL; proxy: POLYMARKET_PROXY, else HTTPS_PROXY / ALL_PROXY (NO_PROXY honoured);
    ping_s: POLYMARKET_PING_S (10); backoff: VENUE_BACKOFF_MIN_S / VENUE_BACKOFF_MAX_S; geoblock_url:
    POLYMARKET_GEOBLOCK_URL (checked once at start, logged, never fatal; empty = skip); snapshot_timeout_s:
    POLYMARKET_SNAPSHOT_TIMEOUT_S (5), how long a subscribed token may wait for its `book` before it is
    subscribed again."""

    ws_url: str = WS_URL
    proxy: str = ""
    ping_s: float = PING_S
    backoff: Backoff = field(default_factory=Backoff)
    geoblock_url: str = ""
    snapshot_timeout_s: float = SNAPSHOT_TIMEOUT_S

    @classmethod
    def from_env(cls, env: Env) -> "PolymarketLiveConfig":
        url = env.get(S.POLYMARKET_WS_URL)
        return cls(url, proxy_for(url, env.get(S.POLYMARKET_PROXY)) or "", env.get(S.POLYMARKET_PING_S),
                   Backoff.from_env(env), env.get(S.POLYMARKET_GEOBLOCK_URL), env.get(S.POLYMARKET_SNAPSHOT_TIMEOUT_S))


class PolymarketLiveSource(LiveSource):
    """Raw frames of the market channel for `tickers` (token ids; a list or a callable returning the current
    list). `resync` returns tokens whose book must be fetched again (updates before any book, a lost update: the
    feed's `take_resync`); `on_connect` runs before each new connection's first frame (the feed voids the books of
    the previous one); `has_snapshot(token)` says whether a token's `book` arrived (the feed's)."""

    venue = POLYMARKET
    label = "Polymarket WebSocket"

    def __init__(self, cfg: PolymarketLiveConfig, tickers: Tickers,
                 resync: Callable[[], set[str]] | None = None, on_connect: Callable[[], None] | None = None,
                 has_snapshot: Callable[[str], bool] | None = None) -> None:
        super().__init__(cfg.ws_url, tickers, Backoff(cfg.backoff.min_s, cfg.backoff.max_s), cfg.proxy or None,
                         keepalive_s=cfg.ping_s, protocol_ping_s=DEFAULT_KEEPALIVE_S,  # the text PING keeps alive
                         resync=resync, on_connect=on_connect)
        self.cfg = cfg
        self.has_snapshot = has_snapshot
        self.pings = 0
        self.pongs = 0
        self.snapshot_timeouts = 0
        self._subscribed: set[str] = set()
        self._awaiting: dict[str, float] = {}  # token -> when its book is overdue (monotonic s)
        self._next_ping = 0.0
        self._next_ticker_check = 0.0
        self._geoblock_checked = False
        self._limiter = RateLimiter(1 / 60, burst=1)

    def gauges(self) -> dict[str, int]:
        return super().gauges() | {"snapshot_timeouts": self.snapshot_timeouts}

    def stats(self) -> dict[str, Any]:
        return super().stats() | {"pings": self.pings, "pongs": self.pongs, "resubscribes": self.resubscribes,
                                  "snapshot_timeouts": self.snapshot_timeouts,
                                  "markets_subscribed": len(self._subscribed)}

    async def stream(self, stop: asyncio.Event | None = None):  # type: ignore[override]
        if not self._geoblock_checked and self.cfg.geoblock_url:
            self._geoblock_checked = True
            await asyncio.to_thread(check_geoblock, self.cfg.geoblock_url, self.cfg.proxy, self.log)
        async for raw in super().stream(stop):
            yield raw

    # -- hooks ---------------------------------------------------------------------------------------------------

    async def on_open(self, ws: ClientConnection) -> None:
        self._subscribed = set()
        self._awaiting.clear()
        wanted = tickers_of(self.tickers)
        if wanted:
            await self._send(ws, wanted, "subscribe")
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
        tokens = self.take_resync()
        if tokens:
            self.resubscribes += 1
            await self._resubscribe(ws, sorted(tokens))
        await self._check_snapshots(ws, now)
        if now >= self._next_ticker_check:
            self._next_ticker_check = now + TICKER_CHECK_S
            await self._follow_tickers(ws)

    def inspect(self, raw: bytes) -> bool:
        if self.is_keepalive(raw):
            self.pongs += 1
            return False
        return True

    def is_keepalive(self, raw: bytes) -> bool:
        return len(raw) <= 6 and raw.strip() in _KEEPALIVE

    # -- subscriptions -------------------------------------------------------------------------------------------

    async def _send(self, ws: ClientConnection, tokens: list[str], operation: str) -> None:
        """Subscribe (asking for each token's `book`, which is then awaited) or unsubscribe `tokens`."""
        first = not self._subscribed and operation == "subscribe"  # the first subscription of a connection
        await ws.send(subscribe_command(tokens, operation=None if first else operation).decode())
        if operation == "subscribe":
            due = time.monotonic() + self.cfg.snapshot_timeout_s
            self._awaiting.update(dict.fromkeys(tokens, due))
        else:
            for token in tokens:
                self._awaiting.pop(token, None)

    async def _resubscribe(self, ws: ClientConnection, tokens: list[str]) -> None:
        """Unsubscribe and subscribe again: the server sends a fresh `book` (a repeated subscribe alone may be
        ignored by a server that thinks the token is already subscribed)."""
        await self._send(ws, tokens, "unsubscribe")
        await self._send(ws, tokens, "subscribe")

    async def _check_snapshots(self, ws: ClientConnection, now: float) -> None:
        """Tokens subscribed `snapshot_timeout_s` ago without their `book`: counted, one rate-limited warning,
        subscribed again."""
        due = [t for t, at in self._awaiting.items() if now >= at]
        if not due or self.has_snapshot is None:
            return
        missing = [t for t in due if t in self._subscribed and not self.has_snapshot(t)]
        for token in due:
            del self._awaiting[token]
        if missing:
            self.snapshot_timeouts += len(missing)
            if self._limiter.allow("snapshot"):
                self.log.warning("Polymarket: no book for %d tokens %.1fs after subscribing (e.g. %s); subscribing "
                                 "them again (%d so far)", len(missing), self.cfg.snapshot_timeout_s, missing[0],
                                 self.snapshot_timeouts)
            await self._resubscribe(ws, missing)

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
