"""Executed signals and paper trades in PostgreSQL, and the background writer that gets them there.

The spool (`store.spool`) is the queue of truth: execution appends a record there, then `TradeWriter.submit()`
only wakes the writer thread, which drains `spool.pending()` into PostgreSQL in batches and advances the
spool's committed offset. The insert is idempotent per signal id (`executed_signals` gates `paper_trades` and the
signal's `positions` in the same transaction), so a record replayed after a crash or an outage never duplicates
trades or positions; an exit's record (`pair_id` set) sells its pair's legs in the same transaction, once. Market resolutions (`submit_resolution`) go the same way, after the records: they settle the
positions in PostgreSQL; while it is away they wait in memory (a restarted execution_service hears them again from
the monitors' last values and the `markets:resolved` stream).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import psycopg
from psycopg.rows import dict_row

from arbees_core.messages import MarketResolution
from arbees_core.store.db import connect, ns_to_datetime, postgres_peer
from arbees_core.store.positions import apply_exits, insert_positions, load_open, record_resolutions
from arbees_core.store.schema import migrate
from arbees_core.store.spool import SpoolRecord, TradeSpool
from arbees_core.strategy.positions import LegPosition
from arbees_core.telemetry.peers import PeerLink

#: Compact the spool once this many committed bytes precede nothing pending.
COMPACT_BYTES = 1 << 20
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 2.0
#: Errors that say "this record cannot be stored" rather than "the database is away": the record is set aside.
_POISON = (psycopg.errors.DataError, psycopg.errors.IntegrityError)

_INSERT_SIGNALS = """
INSERT INTO executed_signals (signal_id, game_id, transport, executed_at, legs)
SELECT s, g, t, to_timestamp(e::double precision / 1e9), l
  FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::int[]) AS u(s, g, t, e, l)
ON CONFLICT (signal_id) DO NOTHING
RETURNING signal_id"""

_TRADE_COLUMNS = ("order_id", "signal_id", "leg", "game_id", "venue", "ticker", "side", "action", "limit_price", "qty",
                  "filled_qty", "avg_price", "fees_cents", "status", "reason", "transport", "latency_ms",
                  "price_latency_ms", "signal_latency_ms", "execution_latency_ms", "ts_origin_ns", "ts_fill_ns",
                  "edge_pct", "edge_cents", "legging_loss_cents", "created_at")
_INSERT_TRADE = (f"INSERT INTO paper_trades ({', '.join(_TRADE_COLUMNS)}) "
                 f"VALUES ({', '.join(['%s'] * len(_TRADE_COLUMNS))}) "
                 "ON CONFLICT (order_id, created_at) DO NOTHING")


def _trade_row(record: SpoolRecord, index: int) -> tuple[Any, ...]:
    r = record.results[index]
    fill_ns = r.ts_fill_ns or record.executed_ns
    return (r.order_id, r.signal_id or record.signal_id, r.leg, r.game_id or record.game_id, r.venue, r.ticker,
            r.side, r.action, r.limit_price, r.qty, r.filled_qty, r.avg_price, r.fees_cents, r.status, r.reason,
            r.transport or record.transport, r.latency_ms, r.price_latency_ms, r.signal_latency_ms,
            r.execution_latency_ms, r.ts_origin_ns, fill_ns, record.edge_pct, record.edge_cents,
            r.legging_loss_cents, ns_to_datetime(fill_ns))


def insert_records(conn: psycopg.Connection, records: list[SpoolRecord]) -> int:
    """Store executed signals, their trades and the positions they open in one transaction; return the
    paper_trades rows inserted.

    A signal already in `executed_signals` is skipped entirely, so replaying a record never duplicates trades.
    """
    first: dict[str, SpoolRecord] = {}
    for rec in records:
        first.setdefault(rec.signal_id, rec)
    if not first:
        return 0
    recs = list(first.values())
    with conn.transaction():
        new = {row[0] for row in conn.execute(_INSERT_SIGNALS, (
            [r.signal_id for r in recs], [r.game_id for r in recs], [r.transport for r in recs],
            [r.executed_ns for r in recs], [len(r.results) for r in recs])).fetchall()}
        rows = [_trade_row(r, i) for r in recs if r.signal_id in new for i in range(len(r.results))]
        if not rows:
            return 0
        with conn.cursor() as cur:
            cur.executemany(_INSERT_TRADE, rows)
            inserted = max(cur.rowcount, 0)
        insert_positions(conn, [r for r in recs if r.signal_id in new])
        apply_exits(conn, [r for r in recs if r.signal_id in new])
        return inserted


def executed_signal_ids(conn: psycopg.Connection, since_hours: float = 48) -> set[str]:
    """Signal ids executed within the last `since_hours` (loaded at start so a redelivery is not re-traded)."""
    rows = conn.execute("SELECT signal_id FROM executed_signals WHERE executed_at >= now() - make_interval(secs => %s)",
                        (float(since_hours) * 3600.0,)).fetchall()
    return {row[0] for row in rows}


def trades_for_signal(conn: psycopg.Connection, signal_id: str) -> list[dict[str, Any]]:
    """Every paper_trades row of one signal, by leg, as dicts keyed by column name."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM paper_trades WHERE signal_id = %s ORDER BY leg, created_at",
                           (signal_id,)).fetchall()


def _short(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class TradeWriter:
    """Moves spooled records into PostgreSQL on a daemon thread, surviving database outages.

    An outage is the process's PostgreSQL peer's (telemetry/peers.py): logged once per reason when it starts and
    once when it ends; the backlog flushed then is logged too. In between the writer retries with exponential
    backoff capped at 2 s, with trades pending or not (an outage found at start ends when the database answers).
    Records that the database rejects as invalid (data or integrity errors, not connection errors) are set aside
    in `<spool>.rejected` so they cannot block the rest. on_reconnect(conn): called on the first connection after
    an outage, once the schema is migrated (execution_service adds the signal ids executed before to its own).
    """

    def __init__(self, database_url: str, spool: TradeSpool, batch_max: int = 200,
                 log: logging.Logger | None = None,
                 on_reconnect: Callable[[psycopg.Connection], None] | None = None) -> None:
        self.database_url = database_url
        self.link = PeerLink(postgres_peer(database_url), "writing paper trades")
        self.on_reconnect = on_reconnect
        self.spool = spool
        self.batch_max = max(1, batch_max)
        self.log = log or logging.getLogger("arbees.store.trades")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self._inserted = 0
        self._batches = 0
        self._errors = 0
        self._rejected = 0
        self._pending = 0
        self._outage = False
        self._flushed_in_outage = 0
        self._resolutions: list[MarketResolution] = []
        self._settled = 0
        self._want_positions = False
        self._loaded: list[LegPosition] | None = None

    # -- public ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread; it first replays whatever the spool holds uncommitted."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="trade-writer", daemon=True)
        self._thread.start()

    def submit(self, record: SpoolRecord | None = None, offset: int | None = None) -> None:
        """Tell the writer there is new work. The record must already be in the spool (the writer reads it from
        there); the arguments are accepted for callers' clarity and ignored. Never blocks, never raises."""
        self._wake.set()

    def submit_resolution(self, resolution: MarketResolution) -> None:
        """Store a market's result and settle its positions in PostgreSQL, after the pending records. Never blocks."""
        with self._lock:
            self._resolutions.append(resolution)
        self._wake.set()

    def request_positions(self) -> None:
        """Load the open positions once everything spooled is stored (`take_positions` hands them over): for an
        execution_service that started while PostgreSQL was away and does not know its positions yet."""
        with self._lock:
            self._want_positions = True
        self._wake.set()

    def take_positions(self) -> list[LegPosition] | None:
        """The open positions loaded since `request_positions`, once; None until then."""
        with self._lock:
            loaded, self._loaded = self._loaded, None
        return loaded

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what can be flushed within `timeout_s`, then stop the thread (what remains stays spooled)."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(max(0.0, timeout_s))
        if thread.is_alive():
            self._abort.set()
            thread.join(BACKOFF_MAX_S + 5.0)
        self._thread = None
        self.link.close()

    def stats(self) -> dict[str, Any]:
        """Counters for heartbeats: rows inserted, records pending, batches, errors, rejected, outage, market
        resolutions waiting to be stored, positions they settled."""
        with self._lock:
            return {"inserted": self._inserted, "pending": self._pending, "batches": self._batches,
                    "errors": self._errors, "rejected": self._rejected, "outage": self._outage,
                    "resolutions_pending": len(self._resolutions), "positions_settled": self._settled}

    # -- thread ------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_START_S
        try:
            while not self._abort.is_set():
                self._wake.clear()
                try:
                    more = self._flush_batch()
                except Exception as e:  # noqa: BLE001 - any failure: keep the records spooled and retry
                    self.mark_unavailable(e)
                    self._abort.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    continue
                backoff = BACKOFF_START_S
                if more:
                    continue
                if self._stop.is_set():
                    return
                self._wake.wait(1.0)  # poll too: a record appended without submit() is still picked up
        finally:
            self._disconnect()

    def _flush_batch(self) -> bool:
        """Store the next batch of pending records; True when more remain after it."""
        pending = self.spool.pending()
        with self._lock:
            self._pending = len(pending)
        if not pending:
            if self._outage and (self._conn is None or self._conn.closed):
                if self._stop.is_set():  # closing with nothing to flush: no reason to wait for the database
                    return False
                self._connection()  # an outage ends when the database answers, trades pending or not
            self._after_records()
            self._on_drained()
            return False
        batch = pending[: self.batch_max]
        conn = self._connection()
        records = [rec for _, rec in batch]
        try:
            inserted = insert_records(conn, records)
        except _POISON:
            inserted = self._insert_one_by_one(conn, records)
        except Exception:
            self._disconnect()
            raise
        self.spool.mark_committed(batch[-1][0])
        with self._lock:
            self._inserted += inserted
            self._batches += 1
            self._pending = len(pending) - len(batch)
            if self._outage:
                self._flushed_in_outage += sum(len(r.results) for r in records)
        return len(pending) > len(batch)

    def _after_records(self) -> None:
        """With every record stored: the pending market resolutions, then a requested load of open positions."""
        with self._lock:
            resolutions, want = list(self._resolutions), self._want_positions
        if not resolutions and not want:
            return
        conn = self._connection()
        try:
            settled = record_resolutions(conn, resolutions)
            loaded = load_open(conn) if want else None
        except Exception:
            self._disconnect()
            raise
        with self._lock:
            del self._resolutions[:len(resolutions)]
            self._settled += settled
            if want:
                self._want_positions, self._loaded = False, loaded

    def _insert_one_by_one(self, conn: psycopg.Connection, records: list[SpoolRecord]) -> int:
        """Isolate the record(s) the database refuses; store the others."""
        inserted = 0
        for rec in records:
            try:
                inserted += insert_records(conn, [rec])
            except _POISON as e:
                self._reject(rec, e)
        return inserted

    def _reject(self, record: SpoolRecord, error: BaseException) -> None:
        path = Path(str(self.spool.path) + ".rejected")
        with open(path, "ab") as f:
            f.write(msgspec.json.encode(record) + b"\n")
        with self._lock:
            self._rejected += 1
        self.log.error("Signal %s cannot be stored in paper_trades (%s); set aside in %s", record.signal_id,
                       _short(error), path)

    def mark_unavailable(self, error: BaseException, context: str = "") -> None:
        """PostgreSQL is not usable (found at start, or a write failed): the outage starts (one line per reason
        through the peer; context: what happens to trades meanwhile) and the thread retries with backoff."""
        with self._lock:
            self._errors += 1
            starting = not self._outage
            self._outage = True
            if starting:
                self._flushed_in_outage = 0
        if starting and not context:
            trades = sum(len(rec.results) for _, rec in self._safe_pending())
            context = f"{trades} trades spooled to {self.spool.path}; retrying with backoff"
        self.link.failed(error, context)

    def _on_drained(self) -> None:
        """Nothing pending: end an outage (the peer's `back` line, and what was flushed) and compact the spool
        when it has grown."""
        with self._lock:
            ended, flushed = self._outage, self._flushed_in_outage
            self._outage = False
            self._flushed_in_outage = 0
        if ended:
            self.link.ok()
            if flushed:
                self.log.info("Flushed %d spooled trades into PostgreSQL", flushed)
        if self.spool.committed_offset > COMPACT_BYTES:
            try:
                self.spool.compact()
            except OSError as e:
                self.log.warning("Spool compaction failed (%s); will retry later", e)

    def _safe_pending(self) -> list[tuple[int, SpoolRecord]]:
        try:
            return self.spool.pending()
        except OSError:
            return []

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            conn = connect(self.database_url, retries=0)
            try:
                migrate(conn)  # the tables may not exist yet if PostgreSQL was away when the service started
                if self._outage and self.on_reconnect is not None:
                    self.on_reconnect(conn)
            except Exception:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone either way
                pass


def wait_flushed(writer: TradeWriter, timeout_s: float = 10.0) -> bool:
    """Whether the writer's spool has nothing pending within `timeout_s` (tests and shutdown helpers)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not writer.spool.pending():
            return True
        writer.submit()
        time.sleep(0.05)
    return False
