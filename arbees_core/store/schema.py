"""The PostgreSQL schema, applied by whichever service starts first.

Several services (discovery, execution) migrate at start and may do so at the same moment, so `migrate()` holds a
transaction-scoped advisory lock: the second caller waits, then finds everything applied. Each migration runs once
and is recorded in `schema_migrations`. TimescaleDB is used when the server offers it (paper_trades becomes a
hypertable on `created_at`); a plain PostgreSQL, as on developer machines and CI, simply skips that step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import psycopg

log = logging.getLogger("arbees.store.schema")

#: Arbitrary constant identifying "arbees schema migration" among advisory locks of the database.
MIGRATION_LOCK_KEY: Final = 0x4152_4245_4553  # "ARBEES"
TIMESCALE_MIGRATION: Final = "0002_timescale_paper_trades"

_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""

_BASE_TABLES = """
CREATE TABLE IF NOT EXISTS paper_trades (
    order_id text NOT NULL,
    signal_id text NOT NULL,
    leg integer NOT NULL,
    game_id text NOT NULL,
    venue text NOT NULL,
    ticker text NOT NULL,
    side text NOT NULL CHECK (side IN ('yes', 'no')),
    action text NOT NULL DEFAULT 'buy',
    limit_price double precision NOT NULL,
    qty double precision NOT NULL,
    filled_qty double precision NOT NULL,
    avg_price double precision,
    fees_cents double precision NOT NULL DEFAULT 0,
    status text NOT NULL CHECK (status IN ('filled', 'partial', 'cancelled', 'rejected')),
    reason text NOT NULL DEFAULT '',
    transport text NOT NULL DEFAULT '',
    edge_pct double precision,
    edge_cents double precision,
    latency_ms double precision NOT NULL DEFAULT 0,
    price_latency_ms double precision NOT NULL DEFAULT 0,
    signal_latency_ms double precision NOT NULL DEFAULT 0,
    execution_latency_ms double precision NOT NULL DEFAULT 0,
    ts_origin_ns bigint NOT NULL DEFAULT 0,
    ts_fill_ns bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (order_id, created_at)
);
CREATE INDEX IF NOT EXISTS paper_trades_signal_id_idx ON paper_trades (signal_id);
CREATE INDEX IF NOT EXISTS paper_trades_created_at_idx ON paper_trades (created_at DESC);

CREATE TABLE IF NOT EXISTS executed_signals (
    signal_id text PRIMARY KEY,
    game_id text NOT NULL DEFAULT '',
    transport text NOT NULL DEFAULT '',
    executed_at timestamptz NOT NULL,
    legs integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS executed_signals_executed_at_idx ON executed_signals (executed_at DESC);

CREATE TABLE IF NOT EXISTS market_mappings (
    game_id text NOT NULL,
    outcome text NOT NULL,
    league text NOT NULL DEFAULT '',
    start_date date,
    away text NOT NULL DEFAULT '',
    home text NOT NULL DEFAULT '',
    kalshi_ticker text NOT NULL,
    poly_token text NOT NULL,
    shard_id text NOT NULL DEFAULT 'shard-1',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, outcome)
);
CREATE INDEX IF NOT EXISTS market_mappings_shard_idx ON market_mappings (shard_id);

CREATE TABLE IF NOT EXISTS unmatched_markets (
    venue text NOT NULL,
    ticker text NOT NULL,
    event_id text NOT NULL DEFAULT '',
    title text NOT NULL DEFAULT '',
    outcome text NOT NULL DEFAULT '',
    league text NOT NULL DEFAULT '',
    start_date text NOT NULL DEFAULT '',
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, ticker)
);
"""


_POSITIONS = """
-- one row per leg of an executed signal that bought something (store/positions.py); exposure = cost of open rows
CREATE TABLE IF NOT EXISTS positions (
    pair_id text NOT NULL,
    leg integer NOT NULL,
    game_id text NOT NULL DEFAULT '',
    venue text NOT NULL,
    ticker text NOT NULL,
    side text NOT NULL CHECK (side IN ('yes', 'no')),
    qty double precision NOT NULL,
    cost_cents double precision NOT NULL,
    exited_qty double precision NOT NULL DEFAULT 0,
    exit_proceeds_cents double precision NOT NULL DEFAULT 0,
    realised_pnl_cents double precision NOT NULL DEFAULT 0,
    opened_at timestamptz NOT NULL,
    closed_at timestamptz,
    close_reason text CHECK (close_reason IN ('settled', 'exit')),
    result text CHECK (result IN ('yes', 'no', 'void')),
    payout_cents double precision,
    transport text NOT NULL DEFAULT '',
    PRIMARY KEY (pair_id, leg)
);
CREATE INDEX IF NOT EXISTS positions_open_market_idx ON positions (venue, ticker) WHERE closed_at IS NULL;

CREATE TABLE IF NOT EXISTS market_resolutions (
    venue text NOT NULL,
    ticker text NOT NULL,
    result text NOT NULL CHECK (result IN ('yes', 'no', 'void')),
    game_id text NOT NULL DEFAULT '',
    resolved_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, ticker)
);

ALTER TABLE paper_trades ADD COLUMN IF NOT EXISTS legging_loss_cents double precision NOT NULL DEFAULT 0;
"""


_POSITION_MARKS = """
-- position_tracker's marks: each open leg at the current bid of its side, net of the sell fee (store/marks.py)
CREATE TABLE IF NOT EXISTS position_marks (
    pair_id text NOT NULL,
    leg integer NOT NULL,
    bid double precision,
    value_cents double precision,
    unrealised_pnl_cents double precision,
    marked_at timestamptz NOT NULL,
    PRIMARY KEY (pair_id, leg)
);
-- per arbitrage pair: its open legs, open cost, realised P&L, and the tracker's mark of what is open
CREATE OR REPLACE VIEW pair_positions AS
SELECT p.pair_id, min(p.game_id) AS game_id, count(*) FILTER (WHERE p.closed_at IS NULL) AS open_legs,
       coalesce(sum(p.cost_cents) FILTER (WHERE p.closed_at IS NULL), 0) AS open_cost_cents,
       sum(p.realised_pnl_cents) AS realised_pnl_cents,
       sum(m.value_cents) FILTER (WHERE p.closed_at IS NULL) AS mark_cents,
       sum(m.unrealised_pnl_cents) FILTER (WHERE p.closed_at IS NULL) AS unrealised_pnl_cents,
       max(m.marked_at) AS marked_at, min(p.opened_at) AS opened_at, max(p.closed_at) AS last_closed_at
  FROM positions p LEFT JOIN position_marks m USING (pair_id, leg)
 GROUP BY p.pair_id;
-- per market (venue, contract, side): the open contracts held there, their cost and mark
CREATE OR REPLACE VIEW market_positions AS
SELECT p.venue, p.ticker, p.side, min(p.game_id) AS game_id, count(*) AS open_legs, sum(p.qty) AS qty,
       sum(p.cost_cents) AS cost_cents, sum(m.value_cents) AS mark_cents,
       sum(m.unrealised_pnl_cents) AS unrealised_pnl_cents, max(m.marked_at) AS marked_at
  FROM positions p LEFT JOIN position_marks m USING (pair_id, leg)
 WHERE p.closed_at IS NULL
 GROUP BY p.venue, p.ticker, p.side;
"""


def _position_marks(conn: psycopg.Connection) -> bool:
    conn.execute(_POSITION_MARKS)
    return True


def _base_tables(conn: psycopg.Connection) -> bool:
    conn.execute(_BASE_TABLES)
    return True


def _positions(conn: psycopg.Connection) -> bool:
    conn.execute(_POSITIONS)
    return True


def _game_assignments(conn: psycopg.Connection) -> bool:
    from arbees_core.store.assignments import ASSIGNMENT_TABLES

    conn.execute(ASSIGNMENT_TABLES)
    return True


def _timescale(conn: psycopg.Connection) -> bool:
    """Make paper_trades a hypertable when TimescaleDB can be loaded; False (not recorded) when it cannot, so a
    server that gains the extension later is converted on the next start."""
    available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if not available:
        _note_no_timescale()
        return False
    try:
        with conn.transaction():  # a savepoint: a failure here must not undo the base tables
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute("SELECT create_hypertable('paper_trades', 'created_at', if_not_exists => TRUE, "
                         "migrate_data => TRUE)")
    except psycopg.Error as e:
        log.warning("TimescaleDB is installed but could not be enabled (%s); paper_trades stays a plain table",
                    str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        return False
    return True


_timescale_absent_logged = False


def _note_no_timescale() -> None:
    """One info line per process: absent TimescaleDB is tolerated, and the operator should know why."""
    global _timescale_absent_logged
    if not _timescale_absent_logged:
        _timescale_absent_logged = True
        log.info("TimescaleDB is not available on this PostgreSQL server; paper_trades is a plain table "
                 "(install the timescaledb extension to make it a hypertable)")


#: (name, step) in order; a step returns False when it did nothing and should be tried again next time.
MIGRATIONS: Final[list[tuple[str, Callable[[psycopg.Connection], bool]]]] = [
    ("0001_base_tables", _base_tables),
    (TIMESCALE_MIGRATION, _timescale),
    ("0003_positions", _positions),
    ("0004_position_marks", _position_marks),
    ("0005_game_assignments", _game_assignments),
]


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations not applied yet; return their names (empty when the schema is current).

    All of it is one transaction under `pg_advisory_xact_lock`, so concurrent callers serialise and a failure
    leaves the database as it was.
    """
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute(_SCHEMA_MIGRATIONS)
        done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
        for name, step in MIGRATIONS:
            if name in done or not step(conn):
                continue
            conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (%s, now()) "
                         "ON CONFLICT (name) DO NOTHING", (name,))
            applied.append(name)
    if applied:
        log.info("Applied schema migrations: %s", ", ".join(applied))
    return applied


def timescale_enabled(conn: psycopg.Connection) -> bool:
    """Whether paper_trades is a TimescaleDB hypertable in this database."""
    has_ext = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if not has_ext:
        return False
    row = conn.execute("SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'paper_trades'"
                       ).fetchone()
    return row is not None
