"""`arbees phase 1..3` and `arbees rollback [--undo]` against a real local stack, as an operator runs them.

Each command acts, checks the plan's success criteria, prints one JSON object with the common shape
(command, passed, started_at, duration_s, checks[name, passed, evidence]) and stores it under .arbees/runs/.
"""

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


def arbees(root: Path, *args: str) -> tuple[int, dict]:
    env = {**os.environ, "ARBEES_HOME": str(root)}
    env.pop("ARBEES_STATE_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "arbees_cli.main", *args, "--json"], env=env, cwd=root,
                          capture_output=True, text=True, timeout=240)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"not JSON (exit {proc.returncode}): {proc.stdout}\n{proc.stderr}") from None


@pytest.fixture
def project(local_project: Callable[[str], Path]) -> Path:
    return local_project("SIM_RATE=100\nSIM_GAMES=2\nSIM_MISPRICE_EVERY_S=3\nGAME_COOLDOWN_MS=1000\n"
                         "HEARTBEAT_INTERVAL_SECS=0.2\n")


def _failed(result: dict) -> list[dict]:
    return [c for c in result["checks"] if not c["passed"] and c.get("critical", True)]


def test_phases_1_to_3_then_rollback_and_undo(project: Path) -> None:
    for n in (1, 2, 3):
        code, result = arbees(project, "phase", str(n), "--runtime", "local")
        assert code == 0 and result["passed"], _failed(result)
        assert result["command"] == f"phase {n}" and result["duration_s"] > 0 and result["started_at"]
        assert all({"name", "passed", "evidence"} <= set(c) for c in result["checks"])
        assert Path(result["data"]["run_dir"], "result.json").exists()

    names = {c["name"]: c for c in result["checks"]}
    assert "filled_qty=" in names["trades in paper_trades (the plan's query), latency_ms filled"]["evidence"]

    code, rolled = arbees(project, "rollback", "--runtime", "local")
    assert code == 0 and rolled["passed"], _failed(rolled)
    assert rolled["data"]["timings"]["restart_s"] > 0
    assert "ZMQ_ENABLED=false" in (project / ".env").read_text()
    assert LocalRuntime(project).env("game_shard")["ZMQ_ENABLED"] == "false"

    code, undone = arbees(project, "rollback", "--undo", "--runtime", "local")
    assert code == 0 and undone["passed"], _failed(undone)
    assert LocalRuntime(project).env("game_shard")["ZMQ_ENABLED"] == "true"
    assert (project / ".env").read_text().count("ZMQ_ENABLED=") == 1  # one definition, never appended twice


def test_rollback_without_a_stack_is_a_clear_error(project: Path) -> None:
    code, result = arbees(project, "rollback", "--runtime", "local")
    assert code == 3 and "not running" in result["error"]


def test_validate_runs_every_phase_then_decides(project: Path) -> None:
    """`validate --quick` runs the plan's phases and zmq-only, then decides; its quick settings reach the stack it
    starts for that run only (a value the operator set in `.env` wins) and never reach `.env`, where the only change is
    the plan's own (phase 1's `ZMQ_ENABLED=true`)."""
    dotenv = (project / ".env").read_text()
    code, out = arbees(project, "validate", "--quick", "--windows", "2", "--window-seconds", "4", "--warmup", "2",
                       "--duration", "6s", "--interval", "2s", "--keep", "--runtime", "local")
    rt = LocalRuntime(project)
    try:
        assert [c["name"] for c in out["checks"]] == ["phase 1", "phase 2", "phase 3", "phase 4", "phase 5",
                                                      "phase zmq-only", "decision"]
        assert all(c["passed"] for c in out["checks"][:6]), out["checks"]
        assert any(r["metric"].startswith("ZMQ only") and r["verdict"] == "GO" for r in out["rows"]), out["rows"]
        assert out["decision"] in ("GO", "DEBUG", "NO-GO") and out["rows"]
        assert code == {"GO": 0, "DEBUG": 2, "NO-GO": 1}[out["decision"]]
        env = rt.env("game_shard")
        assert env["SIM_GAME_LENGTH_S"] == "60" and env["SIM_MISPRICE_EVERY_S"] == "3"  # quick, and the operator's
    finally:
        rt.down()
    assert (project / ".env").read_text() == dotenv + "ZMQ_ENABLED=true\n"
