"""End to end, per transport mode: every service a separate process, real Redis, real PostgreSQL.

The simulated venues inject one known cross-venue mispricing. The plan's success criteria, phase by phase:
prices mirrored into the streams (1), game_shard turns the mispricing into exactly one signal (2),
execution_service trades it on both legs into `paper_trades` with the latency columns filled (3), and a
redelivered signal does not trade twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import psycopg
import pytest
import redis

from arbees_core.messages import TradingSignal, decode, encode
from arbees_core.topics import signal_topic
from arbees_core.transport import TransportSettings
from arbees_core.transport.zmq import ZmqPublisher
from arbees_core.runtime.ports import free_port
from arbees_core.harness import ProcessStack, pipeline_env, start_pipeline
from arbees_core.polling import eventually

pytestmark = pytest.mark.e2e

PLAN_PHASE3_SQL = """SELECT order_id, status, filled_qty, latency_ms
   FROM paper_trades
   ORDER BY created_at DESC
   LIMIT 10;"""


@pytest.fixture(params=["zmq", "redis"])
def running(request, tmp_path: Path, redis_url: str, database_url: str) -> Iterator[tuple[ProcessStack, bool]]:
    zmq_mode = request.param == "zmq"
    env = pipeline_env(zmq_mode, redis_url, database_url, tmp_path)
    # the mispricing outlasts a busy machine's signal-to-fill time, so the fill sees the book that signalled
    env["SIM_MISPRICE_DURATION_MS"] = "2500"
    if zmq_mode:  # a second signal source the test controls, to redeliver a signal over ZMQ
        env["_REPLAY_PORT"] = str(free_port())
        env["ZMQ_SUB_ENDPOINT"] += f",tcp://127.0.0.1:{env['_REPLAY_PORT']}"
    stack = ProcessStack(tmp_path, env)
    try:
        start_pipeline(stack, zmq_mode)
        yield stack, zmq_mode
    finally:
        stack.stop_all()


def _signals(client: redis.Redis) -> list[TradingSignal]:
    return [decode(f[b"topic"].decode(), f[b"data"]) for _, f in client.xrange("signals:trades")]  # type: ignore[misc]


def test_injected_mispricing_becomes_one_signal_and_two_paper_trades(running, redis_url: str, database_url: str) -> None:
    stack, zmq_mode = running
    client = redis.Redis.from_url(redis_url)
    mode = "ZMQ" if zmq_mode else "Redis"

    # Phase 1: prices flow into the plan's streams, with the fields the plan reads
    eventually(lambda: client.xlen("prices:kalshi") > 0 and client.xlen("prices:poly") > 0, 30, "price streams",
               details=stack.dump)
    latest = msgspec.json.decode(client.xrevrange("prices:kalshi", "+", "-", count=1)[0][1][b"data"])
    assert {"ticker", "yes_ask", "yes_bid"} <= set(latest)

    # Phase 2: the injected mispricing becomes exactly one signal
    eventually(lambda: client.xlen("signals:trades") >= 1, 45, "a signal", details=stack.dump)
    time.sleep(3.0)  # the mispricing has ended; nothing else may signal
    signals = _signals(client)
    assert len(signals) == 1, [s.signal_id for s in signals]
    sig = signals[0]
    assert {leg.venue for leg in sig.legs} == {"kalshi", "polymarket"} and sig.edge_pct >= 0.5

    # Phase 3: both legs in paper_trades, latency columns filled, the plan's SQL unchanged
    def trades() -> list[tuple]:
        with psycopg.connect(database_url) as conn:
            return conn.execute("SELECT leg, status, filled_qty, latency_ms, price_latency_ms, signal_latency_ms, "
                                "execution_latency_ms, transport, reason FROM paper_trades WHERE signal_id = %s ORDER BY leg",
                                (sig.signal_id,)).fetchall()

    rows = eventually(lambda: len(trades()) == 2 and trades(), 30, "two paper trades", details=stack.dump)
    assert all(r[3] is not None and r[3] > 0 for r in rows), rows
    assert all(None not in r[4:7] for r in rows), rows
    assert {r[7] for r in rows} == {"zmq" if zmq_mode else "redis"}
    assert any(r[1] in ("filled", "partial") and r[2] > 0 for r in rows), [(r[0], r[1], r[8]) for r in rows]
    with psycopg.connect(database_url) as conn:
        plan_rows = conn.execute(PLAN_PHASE3_SQL).fetchall()
    assert {r[0] for r in plan_rows} == {f"{sig.signal_id}-0", f"{sig.signal_id}-1"}
    with psycopg.connect(database_url) as conn:
        edges = conn.execute("SELECT DISTINCT edge_pct, edge_cents FROM paper_trades").fetchall()
    assert edges == [(pytest.approx(sig.edge_pct), pytest.approx(sig.edge_cents))]
    eventually(lambda: client.xlen("trades:results") >= 2, 15, "results stream", details=stack.dump)

    # the log lines the plan greps for, with its wording
    shard, execution = stack.log("game_shard"), stack.log("execution_service")
    assert "Price latency: " in shard and "ms\n" in shard
    assert f"Published signal to {mode}: signals.trade.{sig.signal_id}" in shard
    assert f"Received signal via {mode}: {sig.signal_id}" in execution
    for line in ("Placing IOC order (", "Signal latency: ", "Execution latency: ", "End-to-end latency: "):
        assert line in execution, line
    if zmq_mode:
        assert "ZMQ mode enabled" in shard
        kport = stack.env["_PORT_kalshi_monitor"]
        assert f"ZMQ subscriber connected to tcp://127.0.0.1:{kport}" in shard
        assert f"ZMQ publisher initialized on port {kport}" in stack.log("kalshi_monitor")
        assert "Mirrored prices.kalshi." in stack.log("zmq_listener") and " to prices:kalshi" in stack.log("zmq_listener")
        assert f"Mirrored signals.trade.{sig.signal_id} to signals:trades" in stack.log("zmq_listener")
    else:
        assert "Connected to Redis (Redis mode)" in shard
    assert stack.counter("game_shard", "lost") == 0

    # a redelivered signal does not trade twice
    _redeliver(stack, client, sig, zmq_mode)
    eventually(lambda: stack.counter("execution_service", "signals_duplicate") >= 1, 30, "duplicate seen",
               details=stack.dump)
    assert len(trades()) == 2
    for name in stack.procs:
        assert stack.alive(name), stack.dump()

    # every service stops on SIGTERM (`arbees down`, the plan's rollback), downstream last, with exit code 0
    for name in reversed(list(stack.procs)):
        assert stack.stop(name) == 0, f"{name}:\n{stack.log(name)[-3000:]}"
        assert f"Stopped {name} after " in stack.log(name)


def _redeliver(stack: ProcessStack, client: redis.Redis, sig: TradingSignal, zmq_mode: bool) -> None:
    if not zmq_mode:
        client.xadd("signals:trades", {"topic": signal_topic(sig.signal_id), "data": encode(sig)})
        return
    pub = ZmqPublisher(TransportSettings(zmq_enabled=True), f"tcp://127.0.0.1:{stack.env['_REPLAY_PORT']}")
    try:
        deadline = time.monotonic() + 20
        while stack.counter("execution_service", "signals_duplicate") < 1 and time.monotonic() < deadline:
            sig.seq += 1
            pub.send(signal_topic(sig.signal_id), encode(sig))  # slow joiner: repeat until it is seen
            time.sleep(0.2)
    finally:
        pub.close()
