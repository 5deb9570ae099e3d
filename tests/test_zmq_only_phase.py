"""`arbees phase zmq-only` (the plan's week 3) on a real local stack: zmq_listener stopped, the hot path trades, the
checks that read streams read ZMQ taps instead and say so, diagnose, the dashboard and decide work; the mirror is
restored at the end; `arbees decide` shows the result as its row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from arbees_core.runtime.local import LocalRuntime

pytestmark = pytest.mark.e2e


def arbees(root: Path, *args: str, timeout: float = 400) -> tuple[int, dict]:
    env = {**os.environ, "ARBEES_HOME": str(root)}
    env.pop("ARBEES_STATE_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "arbees_cli.main", *args, "--json"], env=env, cwd=root,
                          capture_output=True, text=True, timeout=timeout)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"not JSON (exit {proc.returncode}): {proc.stdout}\n{proc.stderr}") from None


def test_zmq_only_phase_passes_without_the_mirror_and_restores_it(local_project: Callable[[str], Path]) -> None:
    project = local_project("ZMQ_ENABLED=true\nSIM_RATE=100\nSIM_GAMES=2\nSIM_MISPRICE_EVERY_S=3\n"
                            "SIM_MISPRICE_DURATION_MS=400\nGAME_COOLDOWN_MS=1000\nHEARTBEAT_INTERVAL_SECS=0.2\n")
    rt = LocalRuntime(project)
    rt.up()
    code, result = arbees(project, "phase", "zmq-only", "--window", "15s", "--runtime", "local")
    failed = [(c["name"], c["evidence"]) for c in result["checks"] if not c["passed"]]
    assert code == 0 and result["verdict"] == "pass", failed
    assert result["command"] == "phase zmq-only"
    checks = {c["name"]: c["evidence"] for c in result["checks"]}
    assert checks["zmq_listener stopped (no Redis mirror from here on)"] == "zmq_listener=stopped"
    for name in ("Kalshi prices flow (prices.kalshi.*)", "game_shard publishes signals (signals.trade.*)",
                 "execution_service publishes trade results (trades.result.*)"):
        assert checks[name].startswith("source: ZMQ tap on tcp://127.0.0.1:"), checks[name]
        assert "zmq_listener is stopped, so no Redis mirror" in checks[name]
    assert "source zmq (4/4 publishers connected)" in checks["dashboard reads the publishers directly (ZMQ)"]
    assert "zmq_listener=stopped" in checks["dashboard health matches the runtime"]
    for target in ("game-shard", "execution-service", "latency"):
        assert f"arbees diagnose {target}" in checks
    window = result["data"]["window"]
    assert window["seconds"] == 15 and window["trades"] >= 1 and window["lost"] == 0 and window["prices"] > 0
    # restored: the last stream check reads Redis again
    assert checks["prices:kalshi grows again (Redis mirror)"].startswith("XLEN prices:kalshi = ")
    assert {s.name: s.state for s in rt.status()}["zmq_listener"] == "running"

    code, decision = arbees(project, "decide")
    row = next(r for r in decision["rows"] if r["metric"].startswith("ZMQ only"))
    assert row["verdict"] == "GO" and f"{window['trades']} trades and 0 lost over a 15.0 s window" in row["reason"]
