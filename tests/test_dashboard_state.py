"""The api's view of the pipeline without the HTTP server: books and edges per game (as game_shard computes them),
signals and trades with their hops, windows, the bounded per-browser queues, and positions read from PostgreSQL.
The mapping and the positions come from a real PostgreSQL; the messages are the contract's own structs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import psycopg
import pytest

from arbees_core.dashboard.hub import Hub
from arbees_core.dashboard.models import ApiStatus
from arbees_core.dashboard.pg import NOT_RUNNING, read_positions, recent_results
from arbees_core.dashboard.state import LiveState
from arbees_core.dashboard.windows import LatencyWindow, RateMeter, percentile
from arbees_core.messages import Leg, PriceUpdate, TradeResult, TradingSignal
from arbees_core.store.db import connect
from arbees_core.store.mapping_cache import MappingCache
from arbees_core.store.mappings import save_mappings
from arbees_core.store.schema import migrate
from arbees_core.strategy.arb import ArbConfig, direction_edges
from arbees_core.telemetry.metrics import Metrics
from arbees_core.venues.listing import GameMapping, OutcomePair

GAME = GameMapping("NBA-2026-12-04-MIA-BOS", "NBA", "2026-12-04", "MIA", "BOS",
                   (OutcomePair("BOS", "KX-BOS", "tok-bos"), OutcomePair("MIA", "KX-MIA", "tok-mia")))


@pytest.fixture
def state(database_url: str) -> LiveState:
    with connect(database_url) as conn:
        migrate(conn)
        save_mappings(conn, [GAME], [])
    mapping = MappingCache(database_url, logging.getLogger("test"))
    assert mapping.refresh()
    return LiveState("zmq", ArbConfig(), mapping, window_s=300)


def price(venue: str, ticker: str, yes_bid: float, yes_ask: float, src: str = "m1") -> PriceUpdate:
    now = time.time_ns()
    return PriceUpdate(src=src, seq=1, ts_origin_ns=now, ts_pub_ns=now, venue=venue, ticker=ticker,  # type: ignore[arg-type]
                       game_id=GAME.game_id, outcome="BOS", yes_bid=yes_bid, yes_bid_size=50, yes_ask=yes_ask,
                       yes_ask_size=50, no_bid=100 - yes_ask, no_bid_size=50, no_ask=100 - yes_bid, no_ask_size=50)


def result(signal_id: str, leg: int, end_to_end_ms: float, transport: str = "zmq") -> TradeResult:
    return TradeResult(src="ex", seq=leg + 1, order_id=f"{signal_id}-{leg}", signal_id=signal_id, game_id=GAME.game_id,
                       leg=leg, venue="kalshi" if leg == 0 else "polymarket",
                       ticker="KX-BOS" if leg == 0 else "tok-bos",
                       side="yes" if leg == 0 else "no", status="filled", limit_price=40.0, qty=10, filled_qty=10,
                       avg_price=40.0, transport=transport, ts_fill_ns=time.time_ns(), price_latency_ms=0.2,
                       signal_latency_ms=0.3, execution_latency_ms=0.4, latency_ms=end_to_end_ms)


def test_a_game_shows_both_venues_books_and_the_edge_game_shard_would_compute(state: LiveState) -> None:
    kalshi, poly = price("kalshi", "KX-BOS", 38, 40), price("polymarket", "tok-bos", 47, 49)
    state.on_price(kalshi, time.time_ns())
    state.on_price(poly, time.time_ns())
    [game] = state.games()
    bos = next(o for o in game.outcomes if o.outcome == "BOS")
    assert bos.kalshi.yes_ask == 40 and bos.polymarket.no_ask == 53 and not bos.kalshi.stale
    expected = max(direction_edges(GAME.game_id, "BOS", kalshi, poly, ArbConfig()), key=lambda o: o.edge_pct)
    assert bos.edge.edge_pct == pytest.approx(expected.edge_pct, abs=1e-4)
    assert (bos.edge.kalshi_side, bos.edge.poly_side) == ("yes", "no")  # 40 + 53 = 93 cents before fees
    assert bos.edge.tradeable and game.best_edge_pct == bos.edge.edge_pct
    mia = next(o for o in game.outcomes if o.outcome == "MIA")
    assert mia.kalshi is None and mia.edge is None  # no book yet: nothing shown, nothing made up
    games, _, _ = state.changes()
    assert [g.game_id for g in games] == [GAME.game_id]
    assert state.changes() == ([], [], [])  # drained


def test_signals_and_trades_keep_both_legs_and_the_hop_latencies(state: LiveState) -> None:
    sig = TradingSignal(src="gs", seq=1, ts_origin_ns=1, ts_detect_ns=time.time_ns(), signal_id="arb-1",
                        game_id=GAME.game_id,
                        legs=[Leg(venue="kalshi", ticker="KX-BOS", side="yes", limit_price=40, qty=10),
                              Leg(venue="polymarket", ticker="tok-bos", side="no", limit_price=53, qty=10)],
                        qty=10, gross_edge_cents=7, edge_cents=5, edge_pct=5.3, cost_cents=95, price_latency_ms=0.2)
    state.on_signal(sig)
    state.on_result(result("arb-1", 1, 1.5))
    state.on_result(result("arb-1", 0, 1.5))
    [trade] = state.trades(10)
    assert [leg.venue for leg in trade.legs] == ["kalshi", "polymarket"] and trade.edge_pct == 5.3
    assert trade.latency.end_to_end_ms == 1.5 and trade.latency.execution_ms == 0.4
    latency, _ = state.windows()
    assert latency.modes["zmq"]["end_to_end"].count == 1  # one entry per signal, not per leg
    _, signals, trades = state.changes()
    assert [s.signal_id for s in signals] == ["arb-1"] and [t.signal_id for t in trades] == ["arb-1"]


def test_latency_window_percentiles_per_mode_and_rates_per_second() -> None:
    window = LatencyWindow(window_s=60)
    for i, ms in enumerate([1.0, 2.0, 3.0, 4.0, 100.0]):
        window.add("zmq", 1000.0 + i, {"end_to_end": ms})
    window.add("redis", 1000.0, {"end_to_end": 9.0})
    window.add("zmq", 900.0, {"end_to_end": 500.0})  # older than the window at t=1010: dropped
    view = window.view(now_s=1010.0)
    stats = view.modes["zmq"]["end_to_end"]
    assert (stats.count, stats.p50_ms, stats.p99_ms) == (5, 3.0, 100.0)
    assert sum(view.histogram["zmq"]) == 5
    assert view.histogram["redis"] == [0] * 9 + [1] + [0] * 6  # 9 ms: in the "<= 10 ms" bucket
    assert percentile([], 50) is None
    rates = RateMeter(window_s=60)
    for second in range(100, 112):
        rates.count("prices.kalshi", 5, now_s=second + 0.5)
    out = rates.view(now_s=112.2)
    assert out.per_s == {"prices.kalshi": 5.0} and out.series["prices.kalshi"][-1] == [111.0, 5.0]


def test_a_browser_that_stops_reading_loses_only_its_own_updates_then_gets_a_snapshot(state: LiveState) -> None:
    metrics = Metrics("api", "api.1")
    status = ApiStatus(source="zmq", endpoints=[], connected=[], clients=0, updates_dropped=0, messages=0,
                       feed_lost=0, feed_rejected=0)
    hub = Hub(state, metrics, lambda: status, push_ms=10, queue_size=3)

    async def scenario() -> None:
        slow, fast = hub.subscribe(), hub.subscribe()
        assert (await fast.queue.get())[0] == "snapshot"  # a late joiner gets the current state first
        for i in range(5):
            hub.offer(("update", json.dumps({"n": i})))
            assert (await fast.queue.get())[1] == json.dumps({"n": i})  # the reading browser misses nothing
        assert slow.queue.qsize() == 3 and slow.dropped == 3 and slow.resync
        assert metrics.counters["updates_dropped"] == 3
        while not slow.queue.empty():
            slow.queue.get_nowait()  # it reads again
        hub.offer(("update", "{}"))
        assert (await slow.queue.get())[0] == "snapshot" and not slow.resync
        hub.unsubscribe(slow)
        assert metrics.gauges["clients"] == 1

    asyncio.run(scenario())


def test_positions_panel_says_the_tracker_is_not_running_without_its_table(pg_conn: psycopg.Connection) -> None:
    view = read_positions(pg_conn, lambda venue, ticker, side: None)
    assert not view.available and view.status == NOT_RUNNING and view.legs == []


def test_positions_are_read_from_the_position_store_and_marked_to_the_live_bid(pg_conn: psycopg.Connection) -> None:
    pg_conn.execute("""CREATE TABLE positions (pair_id text, leg integer, game_id text, venue text, ticker text,
        side text, qty double precision, cost_cents double precision, exited_qty double precision DEFAULT 0,
        realised_pnl_cents double precision DEFAULT 0, opened_at timestamptz, closed_at timestamptz,
        close_reason text, PRIMARY KEY (pair_id, leg))""")
    pg_conn.execute("""INSERT INTO positions VALUES
        ('arb-1', 0, 'G', 'kalshi', 'KX-BOS', 'yes', 10, 400, 0, 0, now(), NULL, NULL),
        ('arb-1', 1, 'G', 'polymarket', 'tok-bos', 'no', 10, 530, 0, 0, now(), NULL, NULL),
        ('arb-0', 0, 'G', 'kalshi', 'KX-MIA', 'yes', 10, 300, 0, 700, now() - interval '1 hour', now(), 'settled')""")
    bids = {("kalshi", "KX-BOS", "yes"): 42.0, ("polymarket", "tok-bos", "no"): 51.0}
    view = read_positions(pg_conn, lambda venue, ticker, side: bids.get((venue, ticker, side)))
    assert view.available and view.open_legs == 2 and view.open_cost_cents == 930.0
    assert view.realised_pnl_cents == 700.0
    legs = {(leg.pair_id, leg.leg): leg for leg in view.legs}
    assert legs[("arb-1", 0)].mark_cents == 420.0 and legs[("arb-1", 0)].unrealised_pnl_cents == 20.0
    assert legs[("arb-1", 1)].unrealised_pnl_cents == -20.0 and view.unrealised_pnl_cents == 0.0
    assert legs[("arb-0", 0)].closed and legs[("arb-0", 0)].mark_cents is None
    pg_conn.execute("ALTER TABLE positions DROP COLUMN cost_cents")
    broken = read_positions(pg_conn, lambda venue, ticker, side: None)
    assert not broken.available and "lacks cost_cents" in broken.status


def test_open_legs_show_the_trackers_fresh_mark_and_else_the_live_bid(pg_conn: psycopg.Connection) -> None:
    from arbees_core.store.schema import migrate

    migrate(pg_conn)
    pg_conn.execute("""INSERT INTO positions (pair_id, leg, game_id, venue, ticker, side, qty, cost_cents, opened_at)
        VALUES ('arb-1', 0, 'G', 'kalshi', 'KX-BOS', 'yes', 10, 400, now()),
               ('arb-1', 1, 'G', 'polymarket', 'tok-bos', 'no', 10, 530, now())""")
    pg_conn.execute("""INSERT INTO position_marks VALUES ('arb-1', 0, 42, 405.5, 5.5, now()),
                                                         ('arb-1', 1, 50, 492.5, -37.5, now() - interval '1 hour')""")
    bids = {("kalshi", "KX-BOS", "yes"): 43.0, ("polymarket", "tok-bos", "no"): 51.0}
    view = read_positions(pg_conn, lambda venue, ticker, side: bids.get((venue, ticker, side)))
    legs = {leg.leg: leg for leg in view.legs}
    assert (legs[0].mark_source, legs[0].mark_cents, legs[0].unrealised_pnl_cents) == ("tracker", 405.5, 5.5)
    assert (legs[1].mark_source, legs[1].mark_cents, legs[1].unrealised_pnl_cents) == ("api", 510.0, -20.0)  # stale
    [(mark,)] = pg_conn.execute("SELECT mark_cents FROM market_positions WHERE venue = 'kalshi'").fetchall()
    assert mark == 405.5


def test_trade_history_comes_from_paper_trades(database_url: str, state: LiveState, tmp_path: Path) -> None:
    from arbees_core.store.spool import SpoolRecord, TradeSpool
    from arbees_core.store.trades import TradeWriter

    record = SpoolRecord(signal_id="arb-7", game_id=GAME.game_id, transport="redis", executed_ns=time.time_ns(),
                         results=[result("arb-7", 0, 2.5, "redis"), result("arb-7", 1, 2.5, "redis")])
    writer = TradeWriter(database_url, TradeSpool(tmp_path / "spool.jsonl"))
    writer.spool.append(record)
    writer.start()
    writer.close(timeout_s=10)
    with connect(database_url) as conn:
        results = recent_results(conn, 10)
    assert [(r.signal_id, r.leg, r.transport) for r in results] == [("arb-7", 0, "redis"), ("arb-7", 1, "redis")]
    for r in results:
        state.on_result(r, from_history=True)
    [trade] = state.trades(5)
    assert trade.from_history and trade.latency.end_to_end_ms == 2.5
