"""The parts of execution_service that are not the hot path: books, kill switch, Redis-mode price reader, store.

Kept apart so `execution_service.py` reads as the plan's Phase 3: receive signal, place IOC orders, record trades.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psycopg
import redis

from arbees_core.messages import DecodeError, ExitSignal, MarketResolution, PriceUpdate, decode
from arbees_core.services.sched import normal_scheduling
from arbees_core.store.db import StoreUnavailable, connect
from arbees_core.store.schema import migrate
from arbees_core.store.positions import load_open, record_legs, resolved_markets, settle_known
from arbees_core.store.spool import SpoolRecord, TradeSpool
from arbees_core.store.trades import TradeWriter, executed_signal_ids
from arbees_core.strategy.positions import LegPosition, sell_before_settlement
from arbees_core.telemetry.peers import PeerLink
from arbees_core.topics import KILL_SWITCH_KEY, STREAMS, Family
from arbees_core.transport import Inbox
from arbees_core.transport.redis import REDIS_ERRORS, make_client, redis_peer

log = logging.getLogger("execution_service")

#: How often the kill switch sources are read, seconds (off the hot path, in a thread).
KILL_SWITCH_POLL_S = 0.25
_ON_WORDS = frozenset({"1", "on", "true", "halt", "stop", "enable", "enabled"})


#: Resolved markets remembered, so a price that arrives after its market's resolution is not booked again (and a
#: resolution heard twice is handled once): at most this many, for at most CLOSED_MARKETS_KEEP_S. The time bound
#: keeps the set at what a few minutes of games resolve; without it the set grew for a day of simulated games, and
#: each entry, allocated among the prices' short-lived objects, held a page of its own resident.
CLOSED_MARKETS_KEPT = 100_000
CLOSED_MARKETS_KEEP_S = 600.0


class BookCache:
    """The latest top of book per (venue, ticker), as execution sees it. Dict assignment is atomic under the
    GIL, so the Redis-mode reader thread and the main thread share it without a lock. A resolved market's book is
    dropped and never taken again: nothing can fill in a market that has settled."""

    def __init__(self) -> None:
        self._books: dict[tuple[str, str], PriceUpdate] = {}
        self._closed: set[tuple[str, str]] = set()
        self._closed_order: collections.deque[tuple[float, tuple[str, str]]] = collections.deque()

    def update(self, upd: PriceUpdate) -> None:
        key = (upd.venue, upd.ticker)
        if key not in self._closed:
            self._books[key] = upd

    def get(self, venue: str, ticker: str) -> PriceUpdate | None:
        return self._books.get((venue, ticker))

    def close_market(self, venue: str, ticker: str, now: float | None = None) -> bool:
        """Drop the market's book for good; False when it was closed already (within CLOSED_MARKETS_KEEP_S)."""
        now = time.monotonic() if now is None else now
        key = (venue, ticker)
        self._books.pop(key, None)
        order = self._closed_order
        while order and (len(order) >= CLOSED_MARKETS_KEPT or now - order[0][0] > CLOSED_MARKETS_KEEP_S):
            self._closed.discard(order.popleft()[1])
        if key in self._closed:
            return False
        self._closed.add(key)
        order.append((now, key))
        return True

    @property
    def closed(self) -> int:
        return len(self._closed)

    def __len__(self) -> int:
        return len(self._books)


class KillSwitch(threading.Thread):
    """Halts new orders while `KILL_SWITCH_FILE` exists or Redis `arbees:kill_switch` is on. Polled in a thread,
    so a slow or absent Redis never delays a signal; a file works when Redis is down."""

    def __init__(self, path: Path, redis_url: str) -> None:
        super().__init__(name="kill-switch", daemon=True)
        self.path = path
        self._redis_url = redis_url
        self._halt = threading.Event()  # not `_stop`: Thread.join() calls Thread._stop()
        self._client: redis.Redis | None = None
        self._link = PeerLink(redis_peer(redis_url), "kill switch")
        self.active = False
        self.source = ""

    def read_once(self) -> None:
        source = ""
        if self.path.exists():
            source = f"file {self.path}"
        elif not self._link.may_try():
            source = self.source if self.source.startswith("Redis") else ""  # keep the last known state
        else:
            try:
                self._client = self._client or make_client(self._redis_url)
                value = self._client.get(KILL_SWITCH_KEY)
                self._link.ok()
                if value is not None and value.decode(errors="replace").strip().lower() in _ON_WORDS:
                    source = f"Redis key {KILL_SWITCH_KEY}"
            except REDIS_ERRORS as e:
                self._client = None
                self._link.failed(e, "the kill switch keeps its last state (the file still works); retrying with "
                                     "backoff")
                source = self.source if self.source.startswith("Redis") else ""
        if bool(source) != self.active:
            log.warning("Kill switch %s%s", "ON: new orders are rejected" if source else "OFF: trading resumed",
                        f" ({source})" if source else "")
        self.active, self.source = bool(source), source

    def run(self) -> None:
        while not self._halt.wait(KILL_SWITCH_POLL_S):
            self.read_once()

    def start(self) -> None:
        self.read_once()
        super().start()

    def close(self) -> None:
        self._halt.set()
        if self.is_alive():  # its read must end before its client closes, or the read fails as an outage
            self.join(timeout=KILL_SWITCH_POLL_S + 3.0)
        self._link.close()
        if self._client is not None:
            self._client.close()


class PriceFeedThread(threading.Thread):
    """Redis mode: reads the price streams into the book cache while the main thread blocks on signals. Market
    resolutions and exit signals (read from the same subscriber) are queued for the main thread, which owns the
    positions."""

    def __init__(self, inbox: Inbox, books: BookCache, block_ms: int) -> None:
        super().__init__(name="price-feed", daemon=True)
        self.inbox, self.books, self.block_ms = inbox, books, block_ms
        self.resolutions: queue.SimpleQueue[MarketResolution] = queue.SimpleQueue()
        self.exits: queue.SimpleQueue[tuple[ExitSignal, int]] = queue.SimpleQueue()
        self._halt = threading.Event()  # not `_stop`: Thread.join() calls Thread._stop()

    def run(self) -> None:
        normal_scheduling()  # reads every price: under SCHED_FIFO it took the monitors' CPU (ARBEES_RT_PRIORITY)
        while not self._halt.is_set():
            for item in self.inbox.receive(self.block_ms):
                if isinstance(item.msg, PriceUpdate):
                    self.books.update(item.msg)
                elif isinstance(item.msg, MarketResolution):
                    self.resolutions.put(item.msg)
                elif isinstance(item.msg, ExitSignal) and not item.replay:  # an old exit at a restart: stale
                    self.exits.put((item.msg, item.recv_ns))

    def close(self) -> None:
        self._halt.set()
        self.join(timeout=2)
        self.inbox.subscriber.close()


@dataclass
class StoreState:
    """What execution needs from its store at start. executed: every signal id already executed (database and
    spool), so idempotency survives a restart; last_seq: the last signal sequence number handled per game_shard
    instance (spool), so signals published while this service was down count as lost; positions: every leg of
    the pairs still open (database, plus spooled records not stored yet), None when PostgreSQL was not usable."""

    executed: set[str]
    last_seq: dict[str, int]
    positions: list[LegPosition] | None


def prepare_store(writer: TradeWriter, logger: logging.Logger, window_s: float = 48 * 3600.0) -> StoreState:
    """Run migrations and read `StoreState`. With PostgreSQL not usable (down, no such database, wrong password:
    one line), the spool's ids are used; the writer keeps trying with backoff, and when it gets through it migrates
    and adds the database's ids (`on_reconnect`) and loads the open positions (`TradeWriter.request_positions`),
    until which no signal trades. window_s: how far back the database's ids are read (execution keeps no more)."""
    executed, last_seq = writer.spool.scan()
    positions: list[LegPosition] | None = None
    try:
        with connect(writer.database_url, retries=0, log=logger) as conn:
            migrate(conn)
            executed |= executed_signal_ids(conn, window_s / 3600)
            positions = _open_positions(conn, writer.spool)
    except (StoreUnavailable, psycopg.Error) as e:
        writer.mark_unavailable(e, f"trades are spooled to {writer.spool.path} until it is back; retrying with "
                                "backoff; no signal trades until the open positions are known")
    logger.info("Idempotency: %d signals already executed", len(executed))
    return StoreState(executed, last_seq, positions)


def _open_positions(conn: psycopg.Connection, spool: TradeSpool) -> list[LegPosition]:
    """Open positions as stored, plus those of spooled records the database does not have yet (each pair once)."""
    legs = load_open(conn)
    pending = [rec for _, rec in spool.pending()]
    stored = {row[0] for row in conn.execute(
        "SELECT signal_id FROM executed_signals WHERE signal_id = ANY(%s)", ([r.signal_id for r in pending],))}
    unstored = [leg for rec in pending if rec.signal_id not in stored for leg in record_legs(rec)]
    legs = legs + settle_known(unstored, resolved_markets(conn, (leg.market for leg in unstored)))
    return exits_applied(legs, [rec for rec in pending if rec.pair_id and rec.signal_id not in stored])


def exits_applied(legs: list[LegPosition], exits: list[SpoolRecord]) -> list[LegPosition]:
    """`legs` after the sales of exits not stored yet (the writer applies them to the database later)."""
    by_key = {(leg.pair_id, leg.leg): leg for leg in legs}
    for rec in exits:
        for r in rec.results:
            key = (rec.pair_id, r.leg)
            if r.action == "sell" and r.filled_qty > 0 and r.avg_price is not None and key in by_key:
                by_key[key] = sell_before_settlement(by_key[key], r.filled_qty, r.filled_qty * r.avg_price
                                                     - r.fees_cents, r.ts_fill_ns or rec.executed_ns)
    return list(by_key.values())


#: Resolutions read back from `markets:resolved` at start in ZMQ mode (the newest first).
CATCH_UP_RESOLUTIONS = 5000


def recent_resolutions(redis_url: str, logger: logging.Logger) -> list[MarketResolution]:
    """ZMQ mode, at start: the market resolutions zmq_listener mirrored into `markets:resolved`, so positions of
    markets that resolved while this service was down are settled even when their monitor restarted since (its
    late-joiner replay then no longer has them). Best effort: Redis away -> [] and one warning."""
    try:
        client = make_client(redis_url, socket_timeout_s=5.0)
        try:
            entries = client.xrevrange(STREAMS[Family.RESOLUTIONS], count=CATCH_UP_RESOLUTIONS)
        finally:
            client.close()
    except REDIS_ERRORS as e:
        logger.warning("Cannot read %s from Redis (%s): resolutions published while execution_service was down "
                       "are settled only if their monitor replays them", STREAMS[Family.RESOLUTIONS], type(e).__name__)
        return []
    out = []
    for _, fields in reversed(entries):
        try:
            msg = decode(fields.get(b"topic", b"").decode(errors="replace"), fields.get(b"data", b""))
        except (DecodeError, msgspec.DecodeError):
            continue  # counted where it was published; a catch-up read skips it
        if isinstance(msg, MarketResolution):
            out.append(msg)
    return out
