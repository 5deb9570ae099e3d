"""A quiet market on a working connection stays tradeable; a connection that stops answering ages out.

Each monitor runs against a local venue server (the adapter tests' servers) that sends its books once and then goes
quiet. While the server keeps the venue's keep-alive going (Kalshi's heartbeat Ping frames, Polymarket's PONG to
our PING), the monitor's heartbeats vouch for the feed, so game_shard trades the unchanged book against a move on
the other venue long after `MAX_PRICE_AGE_MS`, and `STALE_FEED_S` clears nothing. When the server stops answering
(it stops reading: no keep-alive, no pong, the connection still open), the keep-alive goes overdue, the heartbeats
stop vouching, game_shard stops trading the book, and after `STALE_FEED_S` the monitor withdraws the quote.
No wall-clock assertion: the quiet time is counted in the server's own keep-alives, outcomes are awaited.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.server import ServerConnection, serve

from arbees_core.config import Env
from arbees_core.messages import Heartbeat, PriceUpdate, decode
from arbees_core.polling import eventually_async
from arbees_core.services.kalshi_monitor import KalshiMonitor
from arbees_core.services.monitor import MonitorService
from arbees_core.services.polymarket_monitor import PolymarketMonitor
from arbees_core.store.mappings import save_mappings
from arbees_core.store.schema import migrate
from arbees_core.transport import Outbox, TransportSettings
from arbees_core.venues.listing import GameMapping, OutcomePair
from tests.conftest import KeptPublisher
from tests.test_game_shard import _kalshi, _make_shard, _poly, _received, _signals
from tests.test_kalshi_live import WS_PATH, FakeKalshi, snapshot
from tests.test_polymarket_live import FakeClob, book

KALSHI_TICKER = "KXNBAGAME-26NOV24MIABOS-BOS"
POLY_TOKEN = "111"
GAME = GameMapping(game_id="NBA-2026-11-24-MIA-BOS", league="NBA", start_date="2026-11-24", away="MIA", home="BOS",
                   pairs=(OutcomePair("BOS", KALSHI_TICKER, POLY_TOKEN),))
#: A keep-alive expected every 0.1 s; a price older than 0.3 s needs the feed's word; STALE_FEED_S 0.5 s.
KEEPALIVE_S, MAX_PRICE_AGE_MS, STALE_FEED_S = 0.1, 300, 0.5
#: How long a market stays quiet, seconds (counted in keep-alives, which are at least their spacing apart).
QUIET_S = 1.0


@dataclass
class Run:
    """A monitor running against a local venue, and what it published (decoded)."""

    monitor: MonitorService
    ticker: str
    other: Callable[[], PriceUpdate]  # a fresh price on the other venue that makes an arbitrage with the book
    keepalives: Callable[[], int]
    keepalive_spacing_s: float  # the server's keep-alives are at least this far apart
    silence: Callable[[], None]
    publisher: KeptPublisher = field(default_factory=KeptPublisher)
    stop: threading.Event = field(default_factory=threading.Event)

    def messages(self) -> list[Any]:
        return [decode(t, p) for t, p in list(self.publisher.frames)]

    def prices(self) -> list[PriceUpdate]:
        return [m for m in self.messages() if isinstance(m, PriceUpdate)]

    def heartbeats(self) -> list[Heartbeat]:
        return [m for m in self.messages() if isinstance(m, Heartbeat)]


def _install_mapping(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrate(conn)
        save_mappings(conn, [GAME], [])


async def _run_monitor(monitor: MonitorService, scenario: Callable[[Run], Awaitable[None]], run: Run) -> None:
    pub = run.publisher
    monitor.outbox = monitor.heartbeat_outbox = Outbox(pub, monitor.instance, "json", monitor.metrics)
    monitor.mapping.refresh()
    task = asyncio.create_task(monitor._run_async(run.stop))  # noqa: SLF001 - the service's loop, in this loop
    try:
        await scenario(run)
    finally:
        run.stop.set()
        await asyncio.wait_for(task, 10)


def _trades(run: Run, frames: list[Any] | None = None) -> bool:
    """Whether game_shard, fed the monitor's `frames` (all so far by default) and a fresh move on the other venue,
    signals a trade."""
    shard, pub = _make_shard(MAX_PRICE_AGE_MS=str(MAX_PRICE_AGE_MS))
    shard.mapping._install([GAME])  # noqa: SLF001
    frames = run.messages() if frames is None else frames
    shard.handle_batch([_received(m) for m in frames] + [_received(run.other())])
    return bool(_signals(pub))


def _price_age_ns(run: Run) -> int:
    return time.time_ns() - next(p for p in run.prices() if p.ticker == run.ticker).ts_origin_ns


async def quiet_market_stays_tradeable(run: Run) -> None:
    await eventually_async(lambda: run.prices(), 10, "the book's first price")
    start, quiet = run.keepalives(), round(QUIET_S / run.keepalive_spacing_s)
    await eventually_async(lambda: run.keepalives() - start >= quiet, 20, "a quiet second of keep-alives")
    assert _price_age_ns(run) > MAX_PRICE_AGE_MS * 1e6 and len(run.prices()) == 1  # quiet, no update
    await eventually_async(lambda: _trades(run), 10, "game_shard trades the quiet book")
    source = run.monitor.source
    assert source.keepalive_misses == 0 and source.intact(time.time_ns())  # type: ignore[union-attr]
    assert run.monitor.metrics.counters.get("stale_events", 0) == 0 and run.monitor.metrics.counters.get(
        "quotes_withdrawn", 0) == 0


async def silent_connection_ages_out(run: Run) -> None:
    await eventually_async(lambda: run.prices(), 10, "the book's first price")
    run.silence()
    source = run.monitor.source
    await eventually_async(lambda: source.keepalive_misses == 1,  # type: ignore[union-attr]
                           10, "the keep-alive goes overdue")
    assert source.connected and not source.intact(time.time_ns())  # type: ignore[union-attr]
    frozen = run.monitor.feed_live_ns()
    assert frozen <= source.keepalive.last_ns + source.keepalive.window_ns  # type: ignore[union-attr]
    await eventually_async(lambda: len(run.heartbeats()) > 2 and run.heartbeats()[-1].feed_live_ns == frozen, 10,
                           "heartbeats stop vouching for the feed")
    before_withdrawal = [m for m in run.messages() if not (isinstance(m, PriceUpdate) and m.yes_bid is None)]
    await eventually_async(lambda: not _trades(run, before_withdrawal), 10, "game_shard stops trading the book")
    await eventually_async(lambda: any(p.yes_bid is None and p.yes_ask is None for p in run.prices()), 10,
                           "STALE_FEED_S withdraws the quote of the feed that lost its keep-alive")
    assert run.monitor.metrics.counters["stale_events"] == 1 and not _trades(run)


SCENARIOS = {"quiet": quiet_market_stays_tradeable, "silent": silent_connection_ages_out}


# -- Kalshi: its heartbeat Ping frames ---------------------------------------------------------------------------


class PingingKalshi(FakeKalshi):
    """Kalshi with its keep-alive: a Ping frame with body `heartbeat` every half interval, until silenced (then it
    also stops reading, so our own pings go unanswered while the connection stays open)."""

    def __init__(self, public_key: rsa.RSAPublicKey) -> None:
        super().__init__(public_key, self._book_then_quiet)
        self.heartbeats = 0
        self.silent = False

    async def _book_then_quiet(self, srv: FakeKalshi, ws: ServerConnection, conn: int, sid: int,
                               tickers: list[str]) -> None:
        for seq, ticker in enumerate(tickers, 1):
            await ws.send(json.dumps(snapshot(sid, seq, ticker=ticker)))
        asyncio.get_running_loop().create_task(self._heartbeat(ws))

    async def _heartbeat(self, ws: ServerConnection) -> None:
        while not self.silent:
            await ws.ping(b"heartbeat")
            self.heartbeats += 1
            await asyncio.sleep(KEEPALIVE_S / 2)
        ws.transport.pause_reading()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_kalshi_feed_liveness_follows_its_heartbeat_not_its_data(scenario: str, database_url: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    server = PingingKalshi(key.public_key())
    _install_mapping(database_url)

    async def main() -> None:
        async with serve(server.handler, "127.0.0.1", 0, process_request=server.process_request,
                         close_timeout=0.1) as ws_server:  # a silenced server reads no close frame
            port = ws_server.sockets[0].getsockname()[1]
            env = Env({"KALSHI_SOURCE": "live", "DATABASE_URL": database_url, "KALSHI_API_KEY_ID": "id",
                       "KALSHI_PRIVATE_KEY": pem, "KALSHI_WS_URL": f"ws://127.0.0.1:{port}{WS_PATH}",
                       "KALSHI_HEARTBEAT_S": str(KEEPALIVE_S), "STALE_FEED_S": str(STALE_FEED_S)})
            monitor = KalshiMonitor(TransportSettings(), KalshiMonitor.config_from_env(env), 0.05)
            poly_move = lambda: _poly(ticker=POLY_TOKEN, yes_bid=60.0, yes_ask=62.0, no_bid=38.0, no_ask=40.0)  # noqa: E731
            run = Run(monitor, KALSHI_TICKER, poly_move, lambda: server.heartbeats, KEEPALIVE_S / 2,
                      lambda: setattr(server, "silent", True))
            await _run_monitor(monitor, SCENARIOS[scenario], run)

    asyncio.run(main())


# -- Polymarket: PONG to our PING ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_polymarket_feed_liveness_follows_pongs_not_data(scenario: str, database_url: str) -> None:
    async def book_once(srv: FakeClob, ws: ServerConnection, conn: int, msg: dict) -> None:
        if msg.get("type") == "market":
            srv.ws = ws
            await ws.send(json.dumps([book(POLY_TOKEN, [(".44", "100")], [(".47", "80")])]))

    server = FakeClob(book_once)
    _install_mapping(database_url)

    def silence() -> None:
        server.answer_pings = False
        server.ws.transport.pause_reading()

    async def main() -> None:
        async with serve(server.handler, "127.0.0.1", 0, close_timeout=0.1) as ws_server:
            port = ws_server.sockets[0].getsockname()[1]
            env = Env({"POLYMARKET_SOURCE": "live", "DATABASE_URL": database_url, "POLYMARKET_GEOBLOCK_URL": "",
                       "POLYMARKET_WS_URL": f"ws://127.0.0.1:{port}/ws/market", "POLYMARKET_PING_S": str(KEEPALIVE_S),
                       "STALE_FEED_S": str(STALE_FEED_S)})
            monitor = PolymarketMonitor(TransportSettings(), PolymarketMonitor.config_from_env(env), 0.05)
            kalshi_move = lambda: _kalshi(ticker=KALSHI_TICKER, yes_bid=60.0, yes_ask=62.0, no_bid=38.0, no_ask=40.0)  # noqa: E731
            run = Run(monitor, POLY_TOKEN, kalshi_move, lambda: server.pings, KEEPALIVE_S, silence)
            await _run_monitor(monitor, SCENARIOS[scenario], run)

    asyncio.run(main())
