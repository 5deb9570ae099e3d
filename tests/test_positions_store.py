"""Positions and market resolutions in PostgreSQL: opened with the trades that made them (once), settled by the
market's result whichever arrives first, and read back to rebuild execution's book after a restart."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import msgspec
import psycopg
import pytest

from arbees_core.messages import MarketResolution
from arbees_core.polling import eventually
from arbees_core.runtime.ports import free_port
from arbees_core.services.execution_support import prepare_store
from arbees_core.store.positions import load_open, open_exposure_usd, record_resolutions, unequal_pairs
from arbees_core.store.schema import migrate
from arbees_core.store.spool import TradeSpool
from arbees_core.store.trades import TradeWriter, insert_records
from arbees_core.strategy.positions import PositionBook
from tests.test_spool import make_record

KALSHI_TICKER = "KXNBAGAME-26NOV24MIABOS-BOS"
#: make_record's pair: 10 YES at 39c + 0.7c fee on Kalshi, 10 NO at 51c + 0.7c fee on Polymarket.
PAIR_COST_USD = (390 + 0.7 + 510 + 0.7) / 100
LOG = logging.getLogger("test.positions")


def _resolution(venue: str, ticker: str, result: str) -> MarketResolution:
    now = time.time_ns()
    return MarketResolution(src="kalshi_monitor.t", seq=1, ts_origin_ns=now, ts_event_ns=now - 10**9, venue=venue,  # type: ignore[arg-type]
                            ticker=ticker, game_id="NBA-2026-11-24-MIA-BOS", outcome="BOS", result=result)  # type: ignore[arg-type]


def _open_rows(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT pair_id, leg, venue, qty, closed_at IS NULL FROM positions ORDER BY pair_id, leg"
                        ).fetchall()


def test_stored_signals_open_their_positions_once(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    insert_records(pg_conn, [make_record("arb-a"), make_record("arb-b")])
    insert_records(pg_conn, [make_record("arb-a")])  # a replayed spool record
    assert [r[:2] for r in _open_rows(pg_conn)] == [("arb-a", 0), ("arb-a", 1), ("arb-b", 0), ("arb-b", 1)]
    assert open_exposure_usd(pg_conn) == pytest.approx(2 * PAIR_COST_USD)


def test_a_resolution_settles_the_open_positions_of_its_market_and_frees_their_cost(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    insert_records(pg_conn, [make_record("arb-a")])
    assert record_resolutions(pg_conn, [_resolution("kalshi", KALSHI_TICKER, "yes")]) == 1
    assert record_resolutions(pg_conn, [_resolution("kalshi", KALSHI_TICKER, "yes")]) == 0  # heard again: no-op
    row = pg_conn.execute("SELECT close_reason, result, payout_cents, realised_pnl_cents FROM positions "
                          "WHERE pair_id = 'arb-a' AND leg = 0").fetchone()
    assert row == ("settled", "yes", 1000.0, pytest.approx(1000 - 390.7))
    assert open_exposure_usd(pg_conn) == pytest.approx(5.107)  # the Polymarket leg only


def test_a_resolution_heard_before_the_trades_are_stored_settles_them_as_they_arrive(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    record_resolutions(pg_conn, [_resolution("polymarket", "1234", "no")])  # the writer was behind
    insert_records(pg_conn, [make_record("arb-late")])
    closed = pg_conn.execute("SELECT leg, close_reason, payout_cents FROM positions WHERE closed_at IS NOT NULL"
                             ).fetchall()
    assert closed == [(1, "settled", 1000.0)]  # NO won on the token: 10 x 100c


def test_the_open_pairs_rebuild_the_same_exposure_with_their_settled_legs(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    insert_records(pg_conn, [make_record("arb-a"), make_record("arb-b")])
    record_resolutions(pg_conn, [_resolution("kalshi", KALSHI_TICKER, "no")])
    legs = load_open(pg_conn)
    assert len(legs) == 4 and sum(1 for leg in legs if leg.open) == 2  # settled legs come with their pair
    book = PositionBook()
    book.add(legs)
    assert book.exposure_usd == pytest.approx(open_exposure_usd(pg_conn)) == pytest.approx(2 * 5.107)
    assert book.unhedged() == []


def test_unequal_pairs_finds_a_naked_leg_and_counts_a_sale_back(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    naked = make_record("arb-naked")
    naked.results[1] = msgspec.structs.replace(naked.results[1], status="cancelled", filled_qty=0.0, avg_price=None)
    unwound = make_record("arb-unwound")
    unwound.results[1] = msgspec.structs.replace(unwound.results[1], status="cancelled", filled_qty=0.0,
                                                 avg_price=None)
    sale = msgspec.structs.replace(unwound.results[0], order_id="arb-unwound-2", leg=2, action="sell",
                                   avg_price=37.0, legging_loss_cents=21.4)
    unwound.results.append(sale)
    insert_records(pg_conn, [make_record("arb-hedged"), naked, unwound])
    assert unequal_pairs(pg_conn) == [("arb-naked", 10.0, 0.0)]
    loss = pg_conn.execute("SELECT action, legging_loss_cents FROM paper_trades WHERE order_id = 'arb-unwound-2'"
                           ).fetchone()
    assert loss == ("sell", 21.4)
    exit_row = pg_conn.execute("SELECT qty, exited_qty, close_reason FROM positions WHERE pair_id = 'arb-unwound'"
                               ).fetchone()
    assert exit_row == (0.0, 10.0, "exit")


def test_the_writer_stores_resolutions_after_the_records(database_url: str, state_dir: Path) -> None:
    spool = TradeSpool(state_dir / "spool" / "exec.jsonl")
    writer = TradeWriter(database_url, spool)
    writer.start()
    try:
        spool.append(make_record("arb-w"))
        writer.submit_resolution(_resolution("kalshi", KALSHI_TICKER, "yes"))
        writer.submit()
        eventually(lambda: writer.stats()["positions_settled"] == 1 and writer.stats()["resolutions_pending"] == 0,
                   what="the resolution stored and the position settled")
    finally:
        writer.close(timeout_s=5)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT result FROM market_resolutions").fetchall() == [("yes",)]


def test_a_restart_rebuilds_positions_from_the_database_and_the_unstored_spool_once(database_url: str,
                                                                                   state_dir: Path) -> None:
    spool = TradeSpool(state_dir / "spool" / "exec.jsonl")
    stored, unstored = make_record("arb-stored"), make_record("arb-unstored")
    spool.append(stored)
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrate(conn)
        insert_records(conn, [stored])  # in PostgreSQL, and still pending in the spool (not marked committed)
    spool.append(unstored)
    state = prepare_store(TradeWriter(database_url, spool), LOG)
    assert state.positions is not None and {"arb-stored", "arb-unstored"} <= state.executed
    book = PositionBook()
    book.add(state.positions)
    assert sorted({leg.pair_id for leg in state.positions}) == ["arb-stored", "arb-unstored"]
    assert book.exposure_usd == pytest.approx(2 * PAIR_COST_USD)  # each pair counted once


def test_positions_are_unknown_while_postgresql_is_away(state_dir: Path) -> None:
    state = prepare_store(TradeWriter(f"postgresql://127.0.0.1:{free_port()}/none", TradeSpool(state_dir / "s.jsonl")),
                          LOG)
    assert state.positions is None

