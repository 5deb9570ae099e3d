"""Kalshi WebSocket v2 market data: a signed connection subscribed to `orderbook_delta` for the mapped markets, and
to `market_lifecycle_v2` (every market's determination and settlement, so positions settle when a market resolves).

The connection is signed even for public channels (timestamp + `GET` + `/trade-api/ws/v2`); Kalshi sends a Ping
frame (body `heartbeat`) every 10 s (`KALSHI_HEARTBEAT_S`) and websockets answers; those pings keep the feed
intact while its markets are quiet (venues/keepalive.py). One `subscribe` command per batch of tickers; the server answers `subscribed` with
the subscription id (`sid`), then an `orderbook_snapshot` per market and `orderbook_delta`s, `seq` rising by one
per sid. When the feed reports a gap (`resync()` returns sids), the sid is unsubscribed and its markets
subscribed again, which brings fresh snapshots. Error code 9 ("authentication required") is an auth failure.

Hosts (`KALSHI_ENV`): prod `wss://external-api-ws.kalshi.com/trade-api/ws/v2`, demo
`wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2`; `KALSHI_WS_URL` overrides (tests, the legacy
`api.elections.kalshi.com` host).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.telemetry.logs import RateLimiter
from arbees_core.topics import KALSHI
from arbees_core.venues.kalshi.auth import WS_URLS, KalshiSigner, kalshi_env
from arbees_core.venues.kalshi.parsing import (
    ErrorReply,
    Subscribed,
    lifecycle_subscribe_command,
    parse_reply,
    subscribe_command,
    unsubscribe_command,
)
from arbees_core.venues.live import AuthFailed, Backoff, LiveSource, Tickers, tickers_of
from arbees_core.venues.live import TICKER_CHECK_S as _TICKER_CHECK_S

#: Markets per subscribe command (keeps one command's reply and snapshot burst bounded).
SUBSCRIBE_BATCH: Final = 200
#: Kalshi error codes: 9 = authentication required.
AUTH_REQUIRED: Final = 9
#: How often Kalshi sends its heartbeat Ping frame, seconds (its WebSocket documentation).
HEARTBEAT_S: Final = S.KALSHI_HEARTBEAT_S.default


@dataclass(frozen=True)
class KalshiLiveConfig:
    """ws_url: KALSHI_WS_URL, else by KALSHI_ENV (prod | demo); signer: KALSHI_API_KEY_ID + KALSHI_PRIVATE_KEY_PATH
    or KALSHI_PRIVATE_KEY; backoff: VENUE_BACKOFF_MIN_S / VENUE_BACKOFF_MAX_S; proxy: KALSHI_PROXY (none by
    default: Kalshi is reached directly); heartbeat_s: KALSHI_HEARTBEAT_S, how often Kalshi pings (10 s)."""

    ws_url: str
    signer: KalshiSigner
    backoff: Backoff
    proxy: str = ""
    heartbeat_s: float = HEARTBEAT_S

    @classmethod
    def from_env(cls, env: Env) -> "KalshiLiveConfig":
        return cls(env.get(S.KALSHI_WS_URL) or WS_URLS[kalshi_env(env)], KalshiSigner.from_env(env),
                   Backoff.from_env(env), env.get(S.KALSHI_PROXY), env.get(S.KALSHI_HEARTBEAT_S))


class KalshiLiveSource(LiveSource):
    """Raw frames of Kalshi's `orderbook_delta` channel for `tickers` (a list, or a callable returning the
    current list: subscriptions follow it). `resync` returns the sids whose books lost deltas (the feed's
    `take_resync`); `on_connect` runs before each new connection's first frame (the feed forgets the previous
    connection's sequence numbers, which restart with new sids); both are LiveSource's."""

    venue = KALSHI
    label = "Kalshi WebSocket"

    def __init__(self, cfg: KalshiLiveConfig, tickers: Tickers, resync: Callable[[], set[int]] | None = None,
                 on_connect: Callable[[], None] | None = None) -> None:
        super().__init__(cfg.ws_url, tickers, Backoff(cfg.backoff.min_s, cfg.backoff.max_s), cfg.proxy or None,
                         keepalive_s=cfg.heartbeat_s, resync=resync, on_connect=on_connect)
        self.cfg = cfg
        self.venue_errors = 0
        self._ids = itertools.count(1)
        self._pending: dict[int, list[str]] = {}  # command id -> tickers of a subscribe awaiting its sid
        self._sids: dict[int, list[str]] = {}  # sid -> tickers
        self._subscribed: set[str] = set()
        self._next_ticker_check = 0.0
        self._limiter = RateLimiter(1.0)

    def handshake_headers(self) -> dict[str, str]:
        return self.cfg.signer.headers("GET", urlsplit(self.url).path or "/")

    def stats(self) -> dict[str, Any]:
        return super().stats() | {"resubscribes": self.resubscribes, "subscriptions": len(self._sids),
                                  "markets_subscribed": len(self._subscribed), "venue_errors": self.venue_errors}

    # -- hooks ---------------------------------------------------------------------------------------------------

    async def on_open(self, ws: ClientConnection) -> None:
        self._pending.clear()
        self._sids.clear()
        self._subscribed.clear()
        await self._subscribe(ws, tickers_of(self.tickers))
        await ws.send(lifecycle_subscribe_command(next(self._ids)).decode())  # market results; no sid to track
        self._next_ticker_check = _now() + _TICKER_CHECK_S

    async def on_idle(self, ws: ClientConnection) -> None:
        sids = self.take_resync()
        if sids:
            await self._resubscribe(ws, sids)
        if _now() >= self._next_ticker_check:
            self._next_ticker_check = _now() + _TICKER_CHECK_S
            await self._follow_tickers(ws)

    def inspect(self, raw: bytes) -> bool:
        if b'"subscribed"' not in raw and b'"error"' not in raw:
            return True
        reply = parse_reply(raw)
        if isinstance(reply, Subscribed):
            tickers = self._pending.pop(reply.cmd_id, None)  # type: ignore[arg-type]
            if tickers is not None:
                self._sids[reply.sid] = tickers
        elif isinstance(reply, ErrorReply):
            self.venue_errors += 1
            if reply.code == AUTH_REQUIRED:
                raise AuthFailed(f"Kalshi error {AUTH_REQUIRED}: {reply.text or 'authentication required'}")
            if self._limiter.allow("error"):
                self.log.error("Kalshi rejected command %s: code %s: %s", reply.cmd_id, reply.code, reply.text)
        return True

    # -- subscriptions -------------------------------------------------------------------------------------------

    async def _subscribe(self, ws: ClientConnection, tickers: list[str]) -> None:
        for i in range(0, len(tickers), SUBSCRIBE_BATCH):
            batch = tickers[i:i + SUBSCRIBE_BATCH]
            cmd_id = next(self._ids)
            self._pending[cmd_id] = batch
            self._subscribed.update(batch)
            await ws.send(subscribe_command(cmd_id, batch).decode())
        if tickers:
            self.log.info("Kalshi: subscribed orderbook_delta for %d markets", len(tickers))

    async def _unsubscribe(self, ws: ClientConnection, sids: list[int]) -> list[str]:
        """Unsubscribe `sids`; returns their tickers."""
        tickers = [t for sid in sids for t in self._sids.pop(sid, [])]
        if sids:
            await ws.send(unsubscribe_command(next(self._ids), sids).decode())
        self._subscribed.difference_update(tickers)
        return tickers

    async def _resubscribe(self, ws: ClientConnection, sids: set[int]) -> None:
        """A gap on `sids`: drop them and subscribe their markets again (fresh snapshots, new sids)."""
        known = [s for s in sids if s in self._sids]
        tickers = await self._unsubscribe(ws, sorted(known))
        if not tickers:  # a sid we never saw acknowledged: resubscribe everything to be sure
            tickers = tickers_of(self.tickers)
            await self._unsubscribe(ws, sorted(self._sids))
        self.resubscribes += 1
        self.log.warning("Kalshi: resubscribing %d markets of sid %s for a fresh snapshot after a sequence gap",
                         len(tickers), sorted(sids))
        wanted = set(tickers_of(self.tickers))
        await self._subscribe(ws, [t for t in tickers if t in wanted])

    async def _follow_tickers(self, ws: ClientConnection) -> None:
        """Subscribe markets that joined the wanted list; drop subscriptions holding markets that left it."""
        wanted = tickers_of(self.tickers)
        wanted_set = set(wanted)
        gone = self._subscribed - wanted_set
        if gone:
            stale = sorted(sid for sid, ts in self._sids.items() if gone & set(ts))
            keep = [t for t in await self._unsubscribe(ws, stale) if t in wanted_set]
            self._subscribed -= gone
            self.log.info("Kalshi: %d markets left the mapping; unsubscribed %d subscriptions", len(gone), len(stale))
            await self._subscribe(ws, keep)
        added = [t for t in wanted if t not in self._subscribed]
        if added:
            await self._subscribe(ws, added)


def _now() -> float:
    return time.monotonic()
