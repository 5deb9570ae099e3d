"""Paper trades reach PostgreSQL through the spool and the writer: once, with their latencies, across outages."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from arbees_core.polling import eventually
from arbees_core.runtime.ports import free_port
from arbees_core.store.schema import migrate
from arbees_core.store.spool import TradeSpool
from arbees_core.store.trades import TradeWriter, executed_signal_ids, insert_records, trades_for_signal
from tests.test_spool import make_record


def _count(database_url: str, table: str = "paper_trades") -> int:
    try:
        with psycopg.connect(database_url) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
    except psycopg.errors.UndefinedTable:
        return 0


def test_submitted_record_lands_in_paper_trades_with_latencies(database_url: str, state_dir: Path) -> None:
    spool = TradeSpool(state_dir / "spool" / "exec.jsonl")
    writer = TradeWriter(database_url, spool)
    writer.start()
    try:
        record = make_record("arb-one")
        spool.append(record)
        writer.submit(record)
        eventually(lambda: _count(database_url) == 2, what="both legs stored")
    finally:
        writer.close(timeout_s=5)
    with psycopg.connect(database_url) as conn:
        rows = trades_for_signal(conn, "arb-one")
        plan = conn.execute("SELECT order_id, status, filled_qty, latency_ms FROM paper_trades "
                            "ORDER BY created_at DESC LIMIT 10;").fetchall()
        signal = conn.execute("SELECT game_id, transport, legs FROM executed_signals WHERE signal_id = 'arb-one'"
                              ).fetchone()
    assert [r["order_id"] for r in rows] == ["arb-one-0", "arb-one-1"]
    assert [(r["venue"], r["side"], r["action"]) for r in rows] == [("kalshi", "yes", "buy"), ("polymarket", "no", "buy")]
    for r in rows:
        assert r["latency_ms"] == 12.0 and r["price_latency_ms"] == 3.0
        assert r["signal_latency_ms"] == 2.5 and r["execution_latency_ms"] == 0.4
        assert r["transport"] == "zmq" and r["status"] == "filled" and r["filled_qty"] == 10.0
        assert r["ts_fill_ns"] == record.executed_ns
        assert abs(r["created_at"].timestamp() - record.executed_ns / 1e9) < 1e-5
    assert sorted(p[0] for p in plan) == ["arb-one-0", "arb-one-1"]
    assert signal == ("NBA-2026-11-24-MIA-BOS", "zmq", 2)
    assert spool.pending() == []
    assert writer.stats()["inserted"] == 2


def test_the_same_record_inserted_twice_gives_one_set_of_rows(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    record = make_record("arb-dup")
    assert insert_records(pg_conn, [record]) == 2
    assert insert_records(pg_conn, [record]) == 0
    assert insert_records(pg_conn, [record, make_record("arb-other"), record]) == 2
    assert pg_conn.execute("SELECT count(*) FROM paper_trades").fetchone() == (4,)
    assert len(trades_for_signal(pg_conn, "arb-dup")) == 2


def test_trades_spooled_during_an_outage_are_flushed_once(database_url: str, state_dir: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    path = state_dir / "spool" / "exec.jsonl"
    log = logging.getLogger("test.writer")
    caplog.set_level(logging.INFO, logger="test.writer")
    spool = TradeSpool(path)
    down = TradeWriter(f"postgresql://root@127.0.0.1:{free_port()}/test", spool, log=log)
    down.start()
    for i in range(5):
        spool.append(make_record(f"arb-out-{i}"))
        down.submit()
    eventually(lambda: down.stats()["errors"] >= 2, what="the writer kept retrying")
    assert down.stats()["outage"] is True
    down.close(timeout_s=0.5)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "PostgreSQL unavailable" in errors[0] and str(path) in errors[0]
    assert len(spool.pending()) == 5

    spool.close()
    spool = TradeSpool(path)  # as after a restart of the service
    spool.append(make_record("arb-out-5"))
    up = TradeWriter(database_url, spool, batch_max=2, log=log)
    up.start()
    try:
        eventually(lambda: _count(database_url) == 12, what="all spooled trades flushed")
        eventually(lambda: spool.pending() == [], what="spool committed")
    finally:
        up.close(timeout_s=5)
    assert _count(database_url) == 12
    assert _count(database_url, "executed_signals") == 6
    # a third writer replaying from the start (offset lost) still stores nothing twice
    (state_dir / "spool" / "exec.jsonl.committed").unlink()
    again = TradeWriter(database_url, TradeSpool(path), log=log)
    again.start()
    try:
        eventually(lambda: again.spool.pending() == [], what="replayed spool committed")
    finally:
        again.close(timeout_s=5)
    assert _count(database_url) == 12


def test_outage_during_operation_logs_once_and_recovers(database_url: str, state_dir: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.writer2")
    caplog.set_level(logging.INFO, logger="test.writer2")
    caplog.set_level(logging.INFO, logger="arbees.peers")
    spool = TradeSpool(state_dir / "spool.jsonl")
    writer = TradeWriter(database_url, spool, log=log)
    writer.start()
    try:
        spool.append(make_record("before"))
        writer.submit()
        eventually(lambda: _count(database_url) == 2, what="first signal stored")
        with psycopg.connect(database_url, autocommit=True) as admin:  # cut the writer's connection
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        spool.append(make_record("after"))
        writer.submit()
        eventually(lambda: _count(database_url) == 4, what="second signal stored after reconnecting")
    finally:
        writer.close(timeout_s=5)
    assert writer.stats()["outage"] is False
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "test.writer2"]
    errors = [m for level, m in messages if level == logging.ERROR]
    messages += [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "arbees.peers"]
    errors = [m for level, m in messages if level == logging.ERROR]
    backs = [m for level, m in messages if m.startswith("PostgreSQL back after")]
    assert len(errors) == 1 and errors[0].startswith("PostgreSQL unavailable at ")
    assert len(backs) == 1 and ("Flushed 2 spooled trades into PostgreSQL" in [m for _, m in messages])


def test_executed_signal_ids(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    insert_records(pg_conn, [make_record("arb-x"), make_record("arb-y")])
    old = make_record("arb-old", fill_ns=1_600_000_000_000_000_000)
    insert_records(pg_conn, [old])
    assert executed_signal_ids(pg_conn) == {"arb-x", "arb-y"}
    assert executed_signal_ids(pg_conn, since_hours=24 * 365 * 100) == {"arb-x", "arb-y", "arb-old"}


def test_close_without_database_returns_within_its_timeout(state_dir: Path) -> None:
    import time

    spool = TradeSpool(state_dir / "spool.jsonl")
    spool.append(make_record("stuck"))
    writer = TradeWriter(f"postgresql://root@127.0.0.1:{free_port()}/test", spool)
    writer.start()
    started = time.monotonic()
    writer.close(timeout_s=0.5)
    assert time.monotonic() - started < 4.0
    assert len(spool.pending()) == 1


def test_an_outage_found_at_start_ends_when_the_database_answers_with_nothing_to_flush(
        database_url: str, state_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """execution_service found PostgreSQL unusable at start: the writer keeps trying without a trade to write,
    migrates when it gets through, hands the signal ids executed before to the service, and says it is back."""
    from arbees_core.store.db import StoreUnavailable

    with psycopg.connect(database_url, autocommit=True) as conn:  # executed by an earlier run
        migrate(conn)
        insert_records(conn, [make_record("arb-earlier")])
    caplog.set_level(logging.INFO, logger="arbees.peers")
    seen: list[set[str]] = []
    writer = TradeWriter(database_url, TradeSpool(state_dir / "spool.jsonl"),
                         on_reconnect=lambda conn: seen.append(executed_signal_ids(conn)))
    writer.mark_unavailable(StoreUnavailable("refused", "Connection refused"), "trades are spooled until it is back")
    writer.start()
    try:
        eventually(lambda: writer.stats()["outage"] is False, what="the outage ended without a trade")
    finally:
        writer.close(timeout_s=5)
    assert seen == [{"arb-earlier"}]
    lines = [r.getMessage() for r in caplog.records if r.name == "arbees.peers"]
    assert len(lines) == 2 and lines[0].endswith("Connection refused; trades are spooled until it is back")
    assert lines[1].startswith("PostgreSQL back after ")
