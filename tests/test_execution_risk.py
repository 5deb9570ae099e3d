"""execution_service never leaves a leg naked, and frees exposure when a market resolves: in both transport modes.

execution_service runs as a process, under either leg policy; the test stands in for the monitors (prices, market resolutions) and for
game_shard (signals), over real ZMQ sockets or real Redis streams, and reads `paper_trades`, `positions` and the
service's metrics. The book moves under a signal (the cheap leg's ask rises past its limit after the signal was
made): both legs are cancelled and the miss is counted and logged once. A later signal fills both legs; the
exposure limit then refuses the next one (a risk rejection, not an error) until both markets resolve, which frees
the exposure, and trading goes on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from arbees_core.messages import Leg, MarketResolution, Message, PriceUpdate, TradingSignal, encode
from arbees_core.harness import ProcessStack, pipeline_env
from arbees_core.polling import eventually
from arbees_core.store.positions import open_exposure_usd, unequal_pairs
from arbees_core.topics import price_topic, resolution_topic, signal_topic, stream_for_topic
from arbees_core.transport import Outbox, TransportSettings
from arbees_core.transport.zmq import ZmqPublisher

pytestmark = pytest.mark.e2e

GAMES = {"BOS": ("KXNBAGAME-26NOV25LALBOS-BOS", "71321045679252212594626385532706912750332728571942532289631379312455583992563"),
         "NYR": ("KXNHLGAME-26NOV25VANNYR-NYR", "52114319501245915516055106046884209969926127482827954674443846427813813222426")}


def _kalshi(team: str, yes_ask: float) -> PriceUpdate:
    return PriceUpdate(src="", seq=0, ts_origin_ns=time.time_ns(), venue="kalshi", ticker=GAMES[team][0], game_id=team,
                       outcome=team, yes_bid=yes_ask - 2, yes_bid_size=500.0, yes_ask=yes_ask, yes_ask_size=500.0)


def _poly(team: str) -> PriceUpdate:
    return PriceUpdate(src="", seq=0, ts_origin_ns=time.time_ns(), venue="polymarket", ticker=GAMES[team][1],
                       game_id=team, outcome=team, no_ask=55.0, no_ask_size=500.0)


def _signal(signal_id: str, team: str) -> TradingSignal:
    """Buy 50 YES on Kalshi at up to 40c and 50 NO on Polymarket at up to 55c: $48.xx with fees."""
    now = time.time_ns()
    kalshi, token = GAMES[team]
    return TradingSignal(src="", seq=0, ts_origin_ns=now, ts_detect_ns=now, signal_id=signal_id, game_id=team,
                         legs=[Leg(venue="kalshi", ticker=kalshi, side="yes", limit_price=40.0, qty=50.0),
                               Leg(venue="polymarket", ticker=token, side="no", limit_price=55.0, qty=50.0)],
                         qty=50.0, gross_edge_cents=5.0, edge_cents=3.2, edge_pct=3.3, cost_cents=96.8)


def _resolution(venue: str, ticker: str, result: str) -> MarketResolution:
    return MarketResolution(src="", seq=0, ts_origin_ns=time.time_ns(), venue=venue, ticker=ticker,  # type: ignore[arg-type]
                            result=result)  # type: ignore[arg-type]


class Desk:
    """execution_service alone, with the test as both monitors and game_shard, in one transport mode."""

    def __init__(self, tmp_path: Path, redis_url: str, database_url: str, zmq_mode: bool,
                 policy: str = "joint") -> None:
        self.zmq_mode, self.database_url, self.policy = zmq_mode, database_url, policy
        self.env = pipeline_env(zmq_mode, redis_url, database_url, tmp_path)
        self.env.update({"MAX_EXPOSURE_USD": "60", "HEARTBEAT_INTERVAL_SECS": "0.1", "LEG_POLICY": policy})
        self.stack = ProcessStack(tmp_path, self.env)
        self.redis = redis.Redis.from_url(redis_url)
        self.outboxes: dict[str, Outbox] = {}
        if zmq_mode:
            settings = TransportSettings(zmq_enabled=True)
            for name in ("kalshi_monitor", "polymarket_monitor", "game_shard"):
                pub = ZmqPublisher(settings, f"tcp://127.0.0.1:{self.env[f'_PORT_{name}']}")
                self.outboxes[name] = Outbox(pub, f"test.{name}", "json")
        self.seq: dict[str, int] = {}

    def start(self) -> None:
        self.stack.start("execution_service", ZMQ_PUB_PORT=self.env["_PORT_execution_service"])
        eventually(lambda: "Idempotency:" in self.stack.log("execution_service"), 60, "execution_service ready",
                   details=self.stack.dump)
        for outbox in self.outboxes.values():
            eventually(lambda o=outbox: o.publisher.new_subscriptions(), 30, "execution_service subscribed",
                       details=self.stack.dump)

    def start_again(self) -> None:
        """Start the stopped execution_service again: a log of its own, its state from the store alone."""
        self.stack.log_path("execution_service").rename(self.stack.log_path("execution_service").with_suffix(".1"))
        self.stack.start("execution_service", ZMQ_PUB_PORT=self.env["_PORT_execution_service"])
        eventually(lambda: "Idempotency:" in self.stack.log("execution_service"), 60, "execution_service ready",
                   details=self.stack.dump)

    def replay_to_late_joiners(self) -> bool:
        """What a monitor does in its housekeeping (ZMQ mode): last values to a subscriber that (re)joined."""
        for outbox in self.outboxes.values():
            outbox.serve_late_joiners()
        return True

    def send(self, publisher: str, topic: str, msg: Message) -> None:
        """Publish as `publisher` would: its ZMQ socket, or its Redis stream (stamped the same way)."""
        if self.zmq_mode:
            self.outboxes[publisher].publish(topic, msg)
            return
        self.seq[publisher] = self.seq.get(publisher, 0) + 1
        msg.src, msg.seq, msg.ts_pub_ns = f"test.{publisher}", self.seq[publisher], time.time_ns()
        self.redis.xadd(stream_for_topic(topic), {"topic": topic, "data": encode(msg)})  # type: ignore[arg-type]

    def metric(self, key: str) -> float:
        return float(self.stack.metrics("execution_service").get("counters", {}).get(key, 0))

    def price(self, upd: PriceUpdate) -> None:
        """A price, and then wait until execution_service has taken it (its `rx` counter moved)."""
        before = self.metric("rx")
        self.send(f"{upd.venue}_monitor", price_topic(upd.venue, upd.ticker), upd)
        eventually(lambda: self.metric("rx") > before, 20, f"{upd.ticker} at execution_service",
                   details=self.stack.dump)

    def signal(self, sig: TradingSignal) -> list[tuple]:
        """Send a signal; its legs as stored: (leg, status, filled_qty, reason)."""
        self.send("game_shard", signal_topic(sig.signal_id), sig)
        return eventually(lambda: self.legs(sig.signal_id), 30, f"the fills of {sig.signal_id}",
                          details=self.stack.dump)

    def legs(self, signal_id: str) -> list[tuple]:
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute("SELECT leg, status, filled_qty, reason FROM paper_trades WHERE signal_id = %s "
                                "ORDER BY leg", (signal_id,)).fetchall()
        return rows if len(rows) == 2 else []

    def resolve(self, venue: str, ticker: str, result: str) -> None:
        self.send(f"{venue}_monitor", resolution_topic(venue, ticker), _resolution(venue, ticker, result))

    def positions(self) -> dict:
        return self.stack.metrics("execution_service").get("positions", {})

    def close(self) -> None:
        self.stack.stop_all()
        for outbox in self.outboxes.values():
            outbox.publisher.close()
        self.redis.close()


@pytest.fixture(params=["zmq/joint", "redis/joint", "zmq/sequential", "redis/sequential"])
def desk(request, tmp_path: Path, redis_url: str, database_url: str) -> Iterator[Desk]:
    mode, policy = request.param.split("/")
    running = Desk(tmp_path, redis_url, database_url, mode == "zmq", policy)
    try:
        running.start()
        yield running
    finally:
        running.close()


def test_the_book_moving_under_a_signal_leaves_no_leg_and_settlement_frees_the_exposure(desk: Desk) -> None:
    kalshi, token = GAMES["BOS"]
    desk.price(_poly("BOS"))
    desk.price(_kalshi("BOS", 40.0))
    desk.price(_kalshi("BOS", 46.0))  # the book moves after the signal was made on the 40c ask

    # the signal meets the moved book: both legs cancelled, the miss counted and logged once
    missed = desk.signal(_signal("arb-moved", "BOS"))
    assert [(r[1], r[2]) for r in missed] == [("cancelled", 0.0), ("cancelled", 0.0)]
    assert missed[0][3] == "yes ask 46c above limit 40c" and missed[1][3].startswith("not sent (")
    eventually(lambda: desk.metric("leg_misses") == 1, 10, "the leg miss counted", details=desk.stack.dump)
    log = desk.stack.log("execution_service")
    assert log.count(f"Leg miss on arb-moved ({desk.policy}): leg 0 kalshi") == 1 and "both legs cancelled" in log

    # the book comes back: both legs fill at the same size, and their cost is the exposure
    desk.price(_kalshi("BOS", 40.0))
    filled = desk.signal(_signal("arb-filled", "BOS"))
    assert [(r[1], r[2]) for r in filled] == [("filled", 50.0), ("filled", 50.0)]
    exposure = eventually(lambda: desk.positions().get("exposure_usd"), 10, "exposure reported",
                          details=desk.stack.dump)
    assert 48.0 < exposure < 49.0 and desk.positions()["open_pairs"] == 1

    # the next signal would exceed MAX_EXPOSURE_USD=60: refused, and counted as a risk rejection
    refused = desk.signal(_signal("arb-refused", "BOS"))
    assert refused[0][1] == "rejected" and "MAX_EXPOSURE_USD=$60.00" in refused[0][3]
    eventually(lambda: desk.metric("signals_rejected.exposure") == 1, 10, "risk rejection counted",
               details=desk.stack.dump)
    assert desk.metric("rx_rejected") == 0  # not an error

    # both markets resolve (BOS won: YES pays, the NO held on Polymarket does not): the exposure is freed
    desk.resolve("kalshi", kalshi, "yes")
    desk.resolve("polymarket", token, "yes")
    eventually(lambda: desk.positions().get("open_pairs") == 0 and desk.positions().get("exposure_usd") == 0, 20,
               "positions settled", details=desk.stack.dump)
    assert "Settled kalshi " + kalshi + ": yes" in desk.stack.log("execution_service")
    with psycopg.connect(desk.database_url) as conn:
        eventually(lambda: open_exposure_usd(conn) == 0 and conn.execute(
            "SELECT count(*) FROM positions WHERE close_reason = 'settled'").fetchone()[0] == 2, 20,
            "positions settled in PostgreSQL", details=desk.stack.dump)
        assert unequal_pairs(conn) == []

    # with the exposure freed, a signal on another game trades again
    desk.price(_poly("NYR"))
    desk.price(_kalshi("NYR", 40.0))
    again = desk.signal(_signal("arb-again", "NYR"))
    assert [(r[1], r[2]) for r in again] == [("filled", 50.0), ("filled", 50.0)]


def test_a_restart_rebuilds_the_positions_once_and_settles_markets_that_resolved_while_it_was_down(desk: Desk) -> None:
    kalshi, token = GAMES["BOS"]
    desk.price(_poly("BOS"))
    desk.price(_kalshi("BOS", 40.0))
    assert [r[2] for r in desk.signal(_signal("arb-held", "BOS"))] == [50.0, 50.0]
    held = eventually(lambda: desk.positions().get("exposure_usd"), 10, "exposure reported", details=desk.stack.dump)
    eventually(lambda: desk.stack.metrics("execution_service").get("writer", {}).get("pending") == 0, 20,
               "the trades stored", details=desk.stack.dump)
    assert desk.stack.stop("execution_service") == 0

    desk.resolve("kalshi", kalshi, "no")  # published while execution_service is down
    desk.resolve("polymarket", token, "no")
    desk.start_again()
    log = desk.stack.log("execution_service")
    assert f"Open positions: 1 pairs, exposure ${held:.2f}" in log  # rebuilt from PostgreSQL, once
    eventually(lambda: desk.replay_to_late_joiners() and desk.positions().get("open_pairs") == 0, 30,
               "the positions settled from the resolutions heard again", details=desk.stack.dump)
    assert desk.positions()["exposure_usd"] == 0 and desk.metric("positions_settled") == 2
    with psycopg.connect(desk.database_url) as conn:
        eventually(lambda: conn.execute("SELECT count(*) FROM positions WHERE close_reason = 'settled'").fetchone()[0]
                   == 2, 20, "positions settled in PostgreSQL", details=desk.stack.dump)
        payout = conn.execute("SELECT sum(payout_cents) FROM positions").fetchone()[0]
        assert payout == 5000.0  # BOS lost: the 50 NO held on Polymarket pay 100c each, the YES nothing
        assert conn.execute("SELECT count(*) FROM paper_trades").fetchone()[0] == 2
