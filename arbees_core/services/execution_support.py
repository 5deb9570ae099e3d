"""The parts of execution_service that are not the hot path: books, kill switch, Redis-mode price reader, store.

Kept apart so `execution_service.py` reads as the plan's Phase 3: receive signal, place IOC orders, record trades.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import psycopg
import redis

from arbees_core.messages import PriceUpdate
from arbees_core.services.sched import normal_scheduling
from arbees_core.store.db import StoreUnavailable, connect
from arbees_core.store.schema import migrate
from arbees_core.store.trades import TradeWriter, executed_signal_ids
from arbees_core.telemetry.peers import PeerLink
from arbees_core.topics import KILL_SWITCH_KEY
from arbees_core.transport import Inbox
from arbees_core.transport.redis import REDIS_ERRORS, make_client, redis_peer

log = logging.getLogger("execution_service")

#: How often the kill switch sources are read, seconds (off the hot path, in a thread).
KILL_SWITCH_POLL_S = 0.25
_ON_WORDS = frozenset({"1", "on", "true", "halt", "stop", "enable", "enabled"})


class BookCache:
    """The latest top of book per (venue, ticker), as execution sees it. Dict assignment is atomic under the
    GIL, so the Redis-mode reader thread and the main thread share it without a lock."""

    def __init__(self) -> None:
        self._books: dict[tuple[str, str], PriceUpdate] = {}

    def update(self, upd: PriceUpdate) -> None:
        self._books[(upd.venue, upd.ticker)] = upd

    def get(self, venue: str, ticker: str) -> PriceUpdate | None:
        return self._books.get((venue, ticker))

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
    """Redis mode: reads the price streams into the book cache while the main thread blocks on signals."""

    def __init__(self, inbox: Inbox, books: BookCache, block_ms: int) -> None:
        super().__init__(name="price-feed", daemon=True)
        self.inbox, self.books, self.block_ms = inbox, books, block_ms
        self._halt = threading.Event()  # not `_stop`: Thread.join() calls Thread._stop()

    def run(self) -> None:
        normal_scheduling()  # reads every price: under SCHED_FIFO it took the monitors' CPU (ARBEES_RT_PRIORITY)
        while not self._halt.is_set():
            for item in self.inbox.receive(self.block_ms):
                if isinstance(item.msg, PriceUpdate):
                    self.books.update(item.msg)

    def close(self) -> None:
        self._halt.set()
        self.join(timeout=2)
        self.inbox.subscriber.close()


def prepare_store(writer: TradeWriter, logger: logging.Logger) -> tuple[set[str], dict[str, int]]:
    """Run migrations and return every signal id already executed (database + spool), so idempotency survives
    a restart, and the last signal sequence number handled per game_shard instance (from the spool), so signals
    published while this service was down are counted as lost. With PostgreSQL not usable (down, no such database,
    wrong password: one line), the spool's ids are used; the writer keeps trying with backoff, and when it gets
    through it migrates and adds the database's ids (`on_reconnect`)."""
    executed, last_seq = writer.spool.scan()
    try:
        with connect(writer.database_url, retries=0, log=logger) as conn:
            migrate(conn)
            executed |= executed_signal_ids(conn)
    except (StoreUnavailable, psycopg.Error) as e:
        writer.mark_unavailable(e, f"trades are spooled to {writer.spool.path} until it is back; retrying with backoff")
    logger.info("Idempotency: %d signals already executed", len(executed))
    return executed, last_seq
