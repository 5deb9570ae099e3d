"""position_tracker end to end, per transport mode: execution_service and position_tracker as real processes on real
Redis and PostgreSQL; the test plays the monitors and game_shard through the same transport (ZMQ publishers on their
ports, or the streams), so it sets the books exactly.

One stack per mode, its tests in order: a traded signal opens a pair the tracker marks at the bids and publishes; bids
that pay more than settlement make the tracker signal an exit, which execution_service carries out on both legs,
recorded once; a market's result settles a pair; a restarted tracker rebuilds its pairs and totals from PostgreSQL
without counting anything twice.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from arbees_core.messages import ExitSignal, Leg, MarketResolution, PositionUpdate, PriceUpdate, TradingSignal
from arbees_core.harness import ProcessStack, pipeline_env
from arbees_core.polling import eventually
from arbees_core.telemetry.metrics import Metrics
from arbees_core.topics import Family, price_topic, resolution_topic, signal_topic
from arbees_core.transport import Inbox, Outbox, Subscriber, TransportSettings, make_publisher, make_subscriber

pytestmark = pytest.mark.e2e

KALSHI, POLY = "KXNBAGAME-26DEC04MIABOS-BOS", "99887766"
GAME = "NBA-2026-12-04-MIA-BOS"
_dbs = itertools.count(11)


@dataclass
class Stack:
    procs: ProcessStack
    settings: TransportSettings
    database_url: str
    venues: Outbox
    shard: Outbox
    watch: Subscriber
    seen: list = field(default_factory=list)

    def books(self, kalshi_bid: float, poly_bid: float) -> None:
        """Kalshi YES and Polymarket NO, 2c wide, 100 contracts each side."""
        now = time.time_ns()
        self.venues.publish_many([
            (price_topic("kalshi", KALSHI), PriceUpdate(src="", seq=0, ts_origin_ns=now, venue="kalshi", ticker=KALSHI,
                                                        game_id=GAME, outcome="BOS", yes_bid=kalshi_bid,
                                                        yes_bid_size=100, yes_ask=kalshi_bid + 2, yes_ask_size=100)),
            (price_topic("polymarket", POLY), PriceUpdate(src="", seq=0, ts_origin_ns=now, venue="polymarket",
                                                          ticker=POLY, game_id=GAME, outcome="BOS", no_bid=poly_bid,
                                                          no_bid_size=100, no_ask=poly_bid + 2, no_ask_size=100))])

    def trade(self, prefix: str, kalshi_ask: float, poly_ask: float) -> str:
        """A signal buying 10 of each leg at these asks, sent until execution_service has received it; sent again
        under a new id while it filled nothing (execution may not have read the new books yet). Its id."""
        for attempt in range(5):
            signal_id = f"{prefix}-{attempt}"
            self.send_signal(signal_id, kalshi_ask, poly_ask)
            filled = eventually(lambda: self.rows("SELECT coalesce(sum(filled_qty), -1) FROM paper_trades WHERE "
                                                  "signal_id = %s", signal_id)[0][0] >= 0 and self.rows(
                "SELECT sum(filled_qty) FROM paper_trades WHERE signal_id = %s", signal_id), 20,
                f"{signal_id} stored", details=self.procs.dump)
            if filled[0][0] > 0:
                return signal_id
        raise AssertionError(f"no signal of {prefix} filled\n{self.procs.dump()}")

    def send_signal(self, signal_id: str, kalshi_ask: float, poly_ask: float) -> None:
        before = self.procs.counter("execution_service", "signals_rx")
        legs = [Leg(venue="kalshi", ticker=KALSHI, side="yes", limit_price=kalshi_ask, qty=10),
                Leg(venue="polymarket", ticker=POLY, side="no", limit_price=poly_ask, qty=10)]

        def sent() -> bool:
            now = time.time_ns()
            self.shard.publish(signal_topic(signal_id), TradingSignal(
                src="", seq=0, ts_origin_ns=now, ts_detect_ns=now, signal_id=signal_id, game_id=GAME, legs=legs,
                qty=10, gross_edge_cents=100 - kalshi_ask - poly_ask, edge_cents=1.0, edge_pct=1.0,
                cost_cents=kalshi_ask + poly_ask + 1))
            return self.procs.counter("execution_service", "signals_rx") > before

        eventually(sent, 20, f"execution_service received {signal_id}", details=self.procs.dump, interval=0.3)

    def updates(self) -> list:
        self.seen += [i.msg for i in Inbox(self.watch, Metrics("t", "t")).receive(50)]
        return self.seen

    def rows(self, sql: str, *args: object) -> list[tuple]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, args).fetchall()

    def tracker(self, key: str) -> object:
        return self.procs.metrics("position_tracker").get("positions", {}).get(key)


@pytest.fixture(scope="module", params=["zmq", "redis"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_server_url: str,
          postgres_server_url: str) -> Iterator[Stack]:
    zmq_mode = request.param == "zmq"
    folder = tmp_path_factory.mktemp(f"tracker-{request.param}")
    name = f"arbees_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(postgres_server_url)
    database_url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    redis_parts = urlsplit(redis_server_url)
    redis_url = urlunsplit((redis_parts.scheme, redis_parts.netloc, f"/{next(_dbs) % 16}", "", ""))
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    env = {**pipeline_env(zmq_mode, redis_url, database_url, folder), "EXIT_COOLDOWN_MS": "300",
           "POSITION_MARK_MS": "100", "POSITION_RELOAD_S": "0.5", "TRANSPORT_BLOCK_MS": "50"}
    procs = ProcessStack(folder, env)
    settings = TransportSettings(zmq_enabled=zmq_mode, redis_url=redis_url)
    venues = Outbox(make_publisher(settings, int(env["_PORT_kalshi_monitor"])), "sim-venues", "json")
    shard = Outbox(make_publisher(settings, int(env["_PORT_game_shard"])), "sim-shard", "json")
    watch = make_subscriber(settings, [Family.POSITIONS, Family.EXITS], [env["ZMQ_POSITION_TRACKER_ENDPOINT"]])
    watch.receive(0)  # Redis mode: read from here on
    try:
        procs.start("execution_service", ZMQ_PUB_PORT=env["_PORT_execution_service"])
        procs.start("position_tracker", ZMQ_PUB_PORT=env["_PORT_position_tracker"])
        eventually(lambda: "Idempotency:" in procs.log("execution_service") and
                   "Tracking 0 open pairs" in procs.log("position_tracker"), 30, "both services ready",
                   details=procs.dump)
        ready = Stack(procs, settings, database_url, venues, shard, watch)
        if zmq_mode:  # the tracker publishes a pair's update when it changes: be subscribed before anything trades
            eventually(lambda: ready.updates() is not None and env["ZMQ_POSITION_TRACKER_ENDPOINT"] in watch.connected,
                       20, "the test subscribed to position_tracker", details=procs.dump)
        yield ready
    finally:
        procs.stop_all()
        for outbox in (venues, shard):
            outbox.publisher.close()
        watch.close()
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _books_seen(stack: Stack, kalshi_bid: float, poly_bid: float) -> None:
    """Publish the books until both services hold them (a ZMQ subscriber may join after the first send)."""
    def seen() -> bool:
        stack.books(kalshi_bid, poly_bid)
        return (stack.procs.metrics("execution_service").get("books", 0) >= 2 and
                stack.procs.metrics("position_tracker").get("books", 0) >= 2)

    eventually(seen, 20, "books at execution_service and position_tracker", details=stack.procs.dump, interval=0.2)


def test_a_traded_signal_opens_a_pair_the_tracker_marks_and_publishes(stack: Stack) -> None:
    _books_seen(stack, 37.0, 49.0)
    pair = stack.trade("arb-open", 39.0, 51.0)
    eventually(lambda: stack.rows("SELECT count(*) FROM position_marks WHERE pair_id = %s", pair) == [(2,)], 20,
               "both legs marked in position_marks", details=stack.procs.dump)
    update = eventually(lambda: next((u for u in stack.updates() if isinstance(u, PositionUpdate)
                                      and u.pair_id == pair and u.mark_cents is not None), None), 20,
                        "positions.pair.<pair> published with a mark", details=stack.procs.dump)
    cost = stack.rows("SELECT sum(cost_cents) FROM positions WHERE pair_id = %s", pair)[0][0]
    assert (update.status, update.qty, update.open_legs, update.hold_cents) == ("open", 10.0, 2, 1000.0)
    assert update.cost_cents == pytest.approx(cost) and update.mark_cents < 370 + 490  # the bids, less the fees
    assert update.unrealised_pnl_cents == pytest.approx(update.mark_cents - cost)
    [(legs, qty)] = stack.rows("SELECT open_legs, qty FROM market_positions WHERE venue = 'kalshi'")
    assert (legs, qty) == (1, 10.0)
    assert not any(isinstance(u, ExitSignal) for u in stack.updates())  # bids below settlement: hold


def test_bids_above_settlement_make_an_exit_that_sells_both_legs_once(stack: Stack) -> None:
    stack.books(62.0, 45.0)  # 107c of bids per contract against 100c at settlement
    exit_sig = eventually(lambda: next((u for u in stack.updates() if isinstance(u, ExitSignal)), None), 20,
                          "an exit signal", details=stack.procs.dump)
    pair = exit_sig.pair_id
    assert pair.startswith("arb-open-") and exit_sig.gain_cents >= 10.0
    eventually(lambda: stack.rows("SELECT count(*) FROM positions WHERE pair_id = %s AND close_reason = 'exit'", pair
                                  ) == [(2,)], 20, "both legs closed by the exit", details=stack.procs.dump)
    closed = eventually(lambda: next((u for u in stack.updates() if isinstance(u, PositionUpdate)
                                      and u.pair_id == pair and u.status == "closed"), None), 20,
                        "positions.pair.<pair> closed", details=stack.procs.dump)
    [(pnl, proceeds)] = stack.rows("SELECT sum(realised_pnl_cents), sum(exit_proceeds_cents) FROM positions "
                                   "WHERE pair_id = %s", pair)
    [(paid,)] = stack.rows("SELECT sum(filled_qty * avg_price + fees_cents) FROM paper_trades WHERE signal_id = %s",
                           pair)
    assert pnl == pytest.approx(proceeds - paid) and pnl > 0 and closed.realised_pnl_cents == pytest.approx(pnl)
    sells = stack.rows("SELECT signal_id, count(*), sum(filled_qty) FROM paper_trades WHERE action = 'sell' "
                       "AND filled_qty > 0 GROUP BY signal_id")
    assert len(sells) == 1 and sells[0][1:] == (2, 20.0)  # one exit filled: both legs, 10 each
    eventually(lambda: stack.procs.metrics("execution_service").get("exposure_usd") == 0.0, 10, "exposure freed",
               details=stack.procs.dump)


def test_a_markets_result_settles_the_pair(stack: Stack) -> None:
    _books_seen(stack, 37.0, 49.0)
    pair = stack.trade("arb-held", 39.0, 51.0)
    eventually(lambda: stack.tracker("open_pairs") == 1, 20, "the pair tracked", details=stack.procs.dump)
    now = time.time_ns()
    stack.venues.publish_many([
        (resolution_topic(venue, ticker), MarketResolution(src="", seq=0, ts_origin_ns=now, venue=venue, ticker=ticker,
                                                           game_id=GAME, outcome="BOS", result="yes"))
        for venue, ticker in (("kalshi", KALSHI), ("polymarket", POLY))])
    eventually(lambda: stack.rows("SELECT count(*) FROM positions WHERE pair_id = %s AND close_reason = 'settled'",
                                  pair) == [(2,)], 20, "both legs settled", details=stack.procs.dump)
    [(pnl, cost)] = stack.rows("SELECT sum(realised_pnl_cents), sum(cost_cents) FROM positions WHERE pair_id = %s",
                               pair)
    assert pnl == pytest.approx(1000.0 - cost)  # YES won on Kalshi: 100c x 10; the Polymarket NO paid nothing
    eventually(lambda: any(isinstance(u, PositionUpdate) and u.pair_id == pair and u.status == "closed"
                           and u.close_reason == "settled" for u in stack.updates()), 20,
               "closed update", details=stack.procs.dump)


def test_a_restarted_tracker_rebuilds_from_postgresql_and_counts_nothing_twice(stack: Stack) -> None:
    [(closed_legs, realised)] = stack.rows("SELECT count(*), sum(realised_pnl_cents) FROM positions")
    eventually(lambda: stack.tracker("closed_legs") == closed_legs == 4, 10, "totals before", details=stack.procs.dump)
    before = stack.procs.metrics("position_tracker")["instance"]
    assert stack.procs.stop("position_tracker") == 0
    stack.procs.start("position_tracker", ZMQ_PUB_PORT=stack.procs.env["_PORT_position_tracker"])
    eventually(lambda: stack.procs.log("position_tracker").count("Tracking 0 open pairs") == 2, 20, "restarted",
               details=stack.procs.dump)
    eventually(lambda: stack.procs.metrics("position_tracker").get("instance") not in (None, before) and
               stack.tracker("known"), 20, "the new instance's figures", details=stack.procs.dump)
    assert stack.tracker("closed_legs") == 4
    assert stack.tracker("realised_pnl_usd") == pytest.approx(realised / 100, abs=1e-4)
    assert stack.procs.counter("position_tracker", "pairs_closed") == 0  # nothing closed again
    assert stack.rows("SELECT count(*), sum(realised_pnl_cents) FROM positions") == [(4, pytest.approx(realised))]
