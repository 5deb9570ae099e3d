"""Early exits: a pair marked at the bids after fees, an exit signalled only when selling both legs beats the 100c per
contract that settlement pays, sold jointly (both legs the same quantity or neither), and recorded once in the store
whatever order the sale and the market's result reach it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import psycopg
import pytest

from arbees_core.messages import PriceUpdate
from arbees_core.services.execution_exits import exit_record, exit_rejection, exit_results, held_quantities, sales
from arbees_core.services.execution_support import prepare_store
from arbees_core.store.positions import load_open, record_resolutions
from arbees_core.store.schema import migrate
from arbees_core.store.spool import TradeSpool
from arbees_core.store.trades import TradeWriter, insert_records
from arbees_core.strategy.exits import exit_signal, joint_sell, mark_pair, sale_value_cents
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.strategy.positions import PositionBook
from arbees_core.store.positions import record_legs
from tests.test_positions_store import _resolution
from tests.test_spool import make_record

FEES = FeeSchedule()
KALSHI = ("kalshi", "KXNBAGAME-26NOV24MIABOS-BOS")
POLY = ("polymarket", "1234")
#: make_record's pair: 10 YES at 39c + 0.7c on Kalshi, 10 NO at 51c + 0.7c on Polymarket.
COST = 390.7 + 510.7


def _book(venue: str, ticker: str, yes_bid: float | None = None, no_bid: float | None = None,
          size: float = 100.0) -> PriceUpdate:
    return PriceUpdate(src="t", seq=1, ts_origin_ns=time.time_ns(), venue=venue, ticker=ticker, game_id="g",  # type: ignore[arg-type]
                       outcome="BOS", yes_bid=yes_bid, yes_bid_size=size if yes_bid is not None else 0.0,
                       no_bid=no_bid, no_bid_size=size if no_bid is not None else 0.0)


def _books(kalshi_yes_bid: float, poly_no_bid: float, size: float = 100.0) -> dict:
    return {KALSHI: _book(*KALSHI, yes_bid=kalshi_yes_bid, size=size), POLY: _book(*POLY, no_bid=poly_no_bid, size=size)}


def _legs(pair_id: str = "arb-x"):
    return record_legs(make_record(pair_id))


def test_a_pair_is_marked_at_its_bids_after_fees_and_held_at_100c_per_contract() -> None:
    books = _books(60.0, 45.0)
    mark = mark_pair(_legs(), lambda v, t: books.get((v, t)), FEES)
    value = sale_value_cents("kalshi", 10, 60.0, FEES) + sale_value_cents("polymarket", 10, 45.0, FEES)
    assert (mark.qty, mark.hold_cents) == (10.0, 1000.0)
    assert mark.mark_cents == pytest.approx(value) and mark.cost_cents == pytest.approx(COST)
    assert mark.unrealised_pnl_cents == pytest.approx(value - COST)
    assert mark.exit_gain_cents == pytest.approx(value - 1000.0)
    no_bid = mark_pair(_legs(), lambda v, t: books.get((v, t)) if v == "kalshi" else None, FEES)
    assert no_bid.mark_cents is None and exit_signal(no_bid, 0.0, 1) is None  # unmarkable: never exited


def test_an_exit_is_signalled_only_when_selling_beats_settlement_by_the_minimum_gain() -> None:
    books = _books(55.0, 46.0)  # 101c of bids per contract: less than settlement once fees are paid
    mark = mark_pair(_legs(), lambda v, t: books.get((v, t)), FEES)
    assert mark.exit_gain_cents is not None and mark.exit_gain_cents < 0
    assert exit_signal(mark, 1.0, 1) is None
    books = _books(62.0, 45.0)  # 107c of bids: about 5c per contract over settlement after fees
    mark = mark_pair(_legs(), lambda v, t: books.get((v, t)), FEES)
    sig = exit_signal(mark, 1.0, 123)
    assert sig is not None and sig.pair_id == "arb-x" and sig.gain_cents == pytest.approx(mark.mark_cents - 1000)
    assert [(leg.leg, leg.qty, leg.limit_price) for leg in sig.legs] == [(0, 10.0, 62.0), (1, 10.0, 45.0)]
    assert exit_signal(mark, sig.gain_cents / 10 + 0.01, 1) is None  # a higher bar is not met


def test_an_exit_sells_both_legs_the_same_quantity_or_neither() -> None:
    books = _books(62.0, 45.0)
    sig = exit_signal(mark_pair(_legs(), lambda v, t: books.get((v, t)), FEES), 1.0, 1)
    assert sig is not None
    thin = [_book(*KALSHI, yes_bid=62.0, size=4.0), books[POLY]]
    assert [(o.status, o.filled_qty) for o in joint_sell(sig.legs, [10.0, 10.0], thin, FEES)] == [("partial", 4.0)] * 2
    fell = [_book(*KALSHI, yes_bid=61.0), books[POLY]]  # the bid moved below the exit's limit
    outs = joint_sell(sig.legs, [10.0, 10.0], fell, FEES)
    assert [o.filled_qty for o in outs] == [0.0, 0.0] and "below the exit's limit" in outs[0].reason
    assert [o.filled_qty for o in joint_sell(sig.legs, [6.0, 6.0], list(books.values()), FEES)] == [6.0, 6.0]


def test_execution_sells_only_what_the_pair_holds_and_frees_its_exposure() -> None:
    books = _books(62.0, 45.0)
    book = PositionBook()
    book.add(_legs())
    sig = exit_signal(mark_pair(book.legs("arb-x"), lambda v, t: books.get((v, t)), FEES), 1.0, time.time_ns())
    assert sig is not None
    held = held_quantities(book, sig)
    assert held == [10.0, 10.0] and exit_rejection(sig, held, 5.0, 5000.0, "", True) is None
    assert exit_rejection(sig, held, 6000.0, 5000.0, "", True).kind == "expired"
    results = exit_results(sig, joint_sell(sig.legs, held, list(books.values()), FEES), "zmq", 0, 1)
    sold = book.sell_legs("arb-x", sales(results), 2)
    assert all(leg.close_reason == "exit" for leg in sold) and book.exposure_usd == 0.0
    assert book.realised_pnl_cents == pytest.approx(sig.exit_value_cents - COST)
    assert exit_rejection(sig, held_quantities(book, sig), 5.0, 5000.0, "", True).kind == "unknown_pair"


def _exit_of(pair_id: str, kalshi_bid: float = 62.0, poly_bid: float = 45.0):
    books = _books(kalshi_bid, poly_bid)
    sig = exit_signal(mark_pair(_legs(pair_id), lambda v, t: books.get((v, t)), FEES), 1.0, time.time_ns())
    assert sig is not None
    results = exit_results(sig, joint_sell(sig.legs, [10.0, 10.0], list(books.values()), FEES), "zmq", 0,
                           time.time_ns())
    return sig, exit_record(sig, results, "zmq", time.time_ns())


def _rows(conn: psycopg.Connection, pair_id: str) -> list[tuple]:
    return conn.execute("SELECT leg, qty, exited_qty, close_reason, round(realised_pnl_cents::numeric, 4) "
                        "FROM positions WHERE pair_id = %s ORDER BY leg", (pair_id,)).fetchall()


def test_a_stored_exit_closes_both_legs_once(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    insert_records(pg_conn, [make_record("arb-x")])
    sig, record = _exit_of("arb-x")
    insert_records(pg_conn, [record])
    insert_records(pg_conn, [record])  # a replayed spool record
    rows = _rows(pg_conn, "arb-x")
    assert [(r[1], r[2], r[3]) for r in rows] == [(0.0, 10.0, "exit"), (0.0, 10.0, "exit")]
    assert float(sum(r[4] for r in rows)) == pytest.approx(sig.exit_value_cents - COST, abs=1e-3)
    assert load_open(pg_conn) == []
    sells = pg_conn.execute("SELECT count(*) FROM paper_trades WHERE signal_id = %s AND action = 'sell'",
                            (sig.exit_id,)).fetchone()
    assert sells == (2,)


def test_an_exit_stored_after_its_market_settled_is_applied_before_the_settlement(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    insert_records(pg_conn, [make_record("arb-y")])
    sig, record = _exit_of("arb-y")
    record_resolutions(pg_conn, [_resolution(*KALSHI, "yes")])  # the tracker stored the result first
    insert_records(pg_conn, [record])
    rows = _rows(pg_conn, "arb-y")
    assert [(r[1], r[2], r[3]) for r in rows] == [(0.0, 10.0, "exit"), (0.0, 10.0, "exit")]
    assert float(sum(r[4] for r in rows)) == pytest.approx(sig.exit_value_cents - COST, abs=1e-3)  # no payout too


def test_a_restart_applies_an_exit_not_stored_yet_to_the_open_positions(database_url: str, state_dir: Path) -> None:
    spool = TradeSpool(state_dir / "spool" / "exec.jsonl")
    entry = make_record("arb-z")
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrate(conn)
        insert_records(conn, [entry])
    _, record = _exit_of("arb-z")
    spool.append(record)  # sold, then killed before the writer stored the sale
    state = prepare_store(TradeWriter(database_url, spool), logging.getLogger("test.exits"))
    book = PositionBook()
    book.add(state.positions or [])
    assert book.exposure_usd == 0.0 and "arb-z" not in book
