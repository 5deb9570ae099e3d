"""The schema: created by migrate(), idempotent, safe under concurrent starts, and the plan's SQL runs on it."""

from __future__ import annotations

import threading

import psycopg
import pytest

from arbees_core.store.db import StoreUnavailable, connect, redact_dsn
from arbees_core.store.schema import migrate, timescale_enabled

PLAN_PHASE3_SQL = """SELECT order_id, status, filled_qty, latency_ms
   FROM paper_trades
   ORDER BY created_at DESC
   LIMIT 10;"""

TABLES = {"schema_migrations", "paper_trades", "executed_signals", "market_mappings", "unmatched_markets", "positions",
          "market_resolutions"}


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()
    return {r[0] for r in rows}


def test_migrate_creates_the_tables(pg_conn: psycopg.Connection) -> None:
    applied = migrate(pg_conn)
    assert "0001_base_tables" in applied
    assert TABLES <= _tables(pg_conn)
    columns = {r[0] for r in pg_conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'paper_trades'").fetchall()}
    assert {"order_id", "signal_id", "leg", "side", "action", "status", "transport", "edge_pct", "latency_ms",
            "price_latency_ms", "signal_latency_ms", "execution_latency_ms", "ts_origin_ns", "ts_fill_ns",
            "legging_loss_cents", "created_at"} <= columns


def test_migrate_is_idempotent(pg_conn: psycopg.Connection) -> None:
    assert migrate(pg_conn)
    assert migrate(pg_conn) == []
    names = [r[0] for r in pg_conn.execute("SELECT name FROM schema_migrations").fetchall()]
    assert names.count("0001_base_tables") == 1


def test_concurrent_migrations_both_succeed(database_url: str) -> None:
    barrier = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with connect(database_url, retries=0) as conn:
                barrier.wait(5)
                results.append(migrate(conn))
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(results) == 2
    assert sorted(len(r) for r in results)[0] == 0  # the second caller found everything applied
    with psycopg.connect(database_url) as conn:
        assert TABLES <= _tables(conn)


def test_plan_phase3_sql_runs(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    assert pg_conn.execute(PLAN_PHASE3_SQL).fetchall() == []


def test_without_timescale_migrate_still_works(pg_conn: psycopg.Connection) -> None:
    available = pg_conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if available:
        pytest.skip("this server has TimescaleDB")
    migrate(pg_conn)
    assert timescale_enabled(pg_conn) is False
    assert migrate(pg_conn) == []  # the skipped step is not reported as applied


def test_migrate_on_a_transactional_connection(database_url: str) -> None:
    with connect(database_url, retries=0, autocommit=False) as conn:
        assert migrate(conn)
        conn.commit()
    with psycopg.connect(database_url) as conn:
        assert TABLES <= _tables(conn)


def test_connect_gives_up_with_a_redacted_reason() -> None:
    dsn = "postgresql://someone:s3cret@127.0.0.1:1/nothing"
    with pytest.raises(StoreUnavailable) as info:
        connect(dsn, retries=1, delay_s=0.01)
    assert "s3cret" not in str(info.value)
    assert "127.0.0.1:1" in str(info.value)


def test_redact_dsn() -> None:
    assert redact_dsn("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert "pw" not in redact_dsn("host=h user=u password=pw dbname=db")
    assert redact_dsn("postgresql://root@127.0.0.1/test") == "postgresql://root@127.0.0.1/test"


def test_connect_logs_the_redacted_dsn(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    log = logging.getLogger("test.store")
    with caplog.at_level(logging.INFO, logger="test.store"):
        with connect(database_url, log=log) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert any("Connected to PostgreSQL" in r.getMessage() for r in caplog.records)
