"""`arbees up --shards 3`: the local stack trades with its games spread over three shards, and `kill-game_shard`
fails the dead shard's games over to the live shards (real processes). ZMQ mode, where each shard is a publisher
of its own that execution_service and zmq_listener must find; in Redis mode every shard writes the one stream
(`ARBEES_SHARD_TEST_MODES=zmq,redis` runs both)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import redis

from arbees_core.polling import eventually
from arbees_core.runtime.local import LocalRuntime
from arbees_core.validation.chaos import run_chaos

pytestmark = pytest.mark.e2e

_DOTENV = """SIM_RATE=100
SIM_GAMES=6
SIM_MISPRICE_EVERY_S=1
SIM_MISPRICE_DURATION_MS=300
GAME_COOLDOWN_MS=500
MAX_EXPOSURE_USD=1000000
HEARTBEAT_INTERVAL_SECS=0.2
SHARD_DEAD_S=2
ASSIGNMENT_POLL_MS=100
ORCHESTRATOR_INTERVAL_MS=100
"""


@pytest.fixture(params=os.environ.get("ARBEES_SHARD_TEST_MODES", "zmq").split(","))
def three_shards(request, local_project) -> Iterator[tuple[LocalRuntime, str]]:
    root: Path = local_project(_DOTENV + f"ZMQ_ENABLED={'true' if request.param == 'zmq' else 'false'}\n")
    out = subprocess.run([sys.executable, "-m", "arbees_cli.main", "up", "--shards", "3", "--json"], cwd=root,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    yield LocalRuntime(root), request.param


def _signal_shards(rt: LocalRuntime) -> set[str]:
    client = redis.Redis.from_url(rt.urls()["REDIS_URL"])
    try:
        entries = client.xrange("signals:trades")
    finally:
        client.close()
    return {str(msgspec.json.decode(f[b"data"]).get("shard_id")) for _, f in entries}


def test_three_shards_trade_and_a_killed_one_fails_over(three_shards) -> None:
    rt, mode = three_shards
    names = [s.name for s in rt.status() if s.name.startswith("game_shard")]
    assert names == ["game_shard", "game_shard_2", "game_shard_3"]
    eventually(lambda: all(rt.metrics(n).get("games_held") for n in names), 30, what="every shard holds games")
    eventually(lambda: _signal_shards(rt) >= {"1", "2", "3"}, 40, what="signals from all three shards")
    eventually(lambda: rt.metrics("execution_service").get("counters", {}).get("signals_executed", 0) >= 3, 20,
               what="execution_service traded")
    if mode != "zmq":
        return  # the failover scenario is the same in both modes; it runs once, on ZMQ
    result = run_chaos(rt, rt.root, "kill-game_shard", flow_timeout_s=30)
    failed = [f"{c.name}: {c.evidence}" for c in result.checks if c.critical and not c.passed]
    assert result.passed, "\n".join(failed)
    assert result.data["failover_gap_s"] is not None


def test_with_held_feeds_faults_on_the_wire_still_reach_a_shard_and_its_loss_is_counted(local_project) -> None:
    """SHARD_FEED=held: a shard subscribes to its games' markets only. `chaos bad-input` and `hwm` send on a market
    it holds, and the loss at its high-water mark is counted per market (topic_seq)."""
    root: Path = local_project(_DOTENV + "ZMQ_ENABLED=true\nSHARD_FEED=held\n")
    out = subprocess.run([sys.executable, "-m", "arbees_cli.main", "up", "--shards", "2", "--json"], cwd=root,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    rt = LocalRuntime(root)
    eventually(lambda: rt.metrics("game_shard").get("markets_followed"), 30, what="game_shard follows its markets")
    for scenario in ("bad-input", "hwm"):
        result = run_chaos(rt, rt.root, scenario, flow_timeout_s=30)
        failed = [f"{c.name}: {c.evidence}" for c in result.checks if c.critical and not c.passed]
        assert result.passed, f"{scenario}: " + "\n".join(failed)
