"""Faults injected into the real running stack (local runtime, real processes, embedded Redis and PostgreSQL that
the test may stop): each chaos scenario must pass, and what an operator sees (CLI, logs) must be clear and safe.

One stack serves the module (starting it is the expensive part); every scenario leaves it healthy for the next.
The embedded servers are used (REDIS_URL / DATABASE_URL unset) so the outage tests never touch shared servers.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from arbees_core.runtime.ports import free_port_block
from arbees_core.runtime.local import LocalRuntime
from arbees_core.validation.chaos import run_chaos
from arbees_core.validation.results import RunResult
from tests.conftest import STACK_PORTS

pytestmark = pytest.mark.e2e

_restarted_postmasters: list[int] = []
FAKE_KALSHI_KEY = "FAKEKALSHIPRIVATEKEY-9f3a1c"
FAKE_POLY_KEY = "FAKEPOLYAPIKEY-77d0e2"
FAST = {"outage_s": 6.0, "flow_timeout_s": 30.0}
PG_OUTAGE = {**FAST, "outage_s": 10.0}  # long enough for the kill -9 and the restart inside it

_DOTENV = f"""ZMQ_ENABLED=true
SIM_RATE=100
SIM_GAMES=2
SIM_MISPRICE_EVERY_S=1
SIM_MISPRICE_DURATION_MS=300
GAME_COOLDOWN_MS=500
MAX_EXPOSURE_USD=1000000
HEARTBEAT_INTERVAL_SECS=0.2
DISCOVERY_INTERVAL_S=30
KALSHI_PRIVATE_KEY={FAKE_KALSHI_KEY}
POLYMARKET_API_KEY={FAKE_POLY_KEY}
"""


def _cli(root: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARBEES_HOME": str(root), "COLUMNS": "200"}
    env.pop("ARBEES_STATE_DIR", None)
    return subprocess.run([sys.executable, "-m", "arbees_cli.main", *args], env=env, cwd=root, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalRuntime]:
    # not under pytest's tmp root: pytest re-chmods that to 0700 at every session start, and the embedded
    # PostgreSQL runs as its own user (when tests run as root), so it could no longer reach its data folder
    root = Path(tempfile.mkdtemp(prefix="arbees-chaos-"))
    root.chmod(0o755)
    (root / ".env").write_text(_DOTENV)
    saved = {k: os.environ.get(k) for k in ("REDIS_URL", "DATABASE_URL", "ARBEES_PORT_BASE", "ARBEES_HOME",
                                            "ARBEES_STATE_DIR")}
    for key in ("REDIS_URL", "DATABASE_URL", "ARBEES_STATE_DIR"):
        os.environ.pop(key, None)
    os.environ["ARBEES_PORT_BASE"] = str(free_port_block(STACK_PORTS))
    os.environ["ARBEES_HOME"] = str(root)
    rt = LocalRuntime(root)
    try:
        rt.up(timeout_s=120)
        yield rt
    finally:
        rt.down()
        leaked = [p for p in _restarted_postmasters if _alive(p)]
        shutil.rmtree(root, ignore_errors=True)
        assert not leaked, f"postmaster {leaked} still running after down"
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _assert_passed(result: RunResult) -> None:
    failed = [f"{c.name}: {c.evidence}" for c in result.checks if c.critical and not c.passed]
    assert result.passed, "\n".join(failed)


def test_embedded_servers_are_the_ones_the_outages_stop(stack: LocalRuntime) -> None:
    embedded = stack.read_stack()["embedded"]
    assert embedded["redis"]["pid"] and embedded["postgres"]["folder"]  # never the shared 6379 / 5432


@pytest.mark.parametrize("service", ["kalshi_monitor", "game_shard", "execution_service"])
def test_kill_9_mid_stream_restarts_counts_and_reconnects(stack: LocalRuntime, service: str) -> None:
    result = run_chaos(stack, stack.root, f"kill-{service}", **FAST)
    _assert_passed(result)
    names = [c.name for c in result.checks]
    assert f"{service} restarted after kill -9 and the restart counted" in names
    if service == "execution_service":
        assert any("no paper trade lost or duplicated" in n for n in names)
    assert next(s for s in stack.status() if s.name == service).restarts >= 1  # visible in `status`


def test_redis_outage_in_zmq_mode_keeps_the_hot_path_trading(stack: LocalRuntime) -> None:
    _assert_passed(run_chaos(stack, stack.root, "redis-outage", **FAST))


def test_postgres_outage_spools_and_flushes_without_loss_or_duplicates(stack: LocalRuntime) -> None:
    _assert_passed(run_chaos(stack, stack.root, "postgres-outage", **PG_OUTAGE))


def test_down_stops_the_postgres_the_outage_restarted(stack: LocalRuntime) -> None:
    pid = int((stack.state / "pg" / "postmaster.pid").read_text().split()[0])  # the pg_ctl-restarted postmaster
    assert _alive(pid)
    stack.stop(["market_discovery"])  # nothing else changes; the check runs at module teardown (below)
    stack.up(["market_discovery"])
    _restarted_postmasters.append(pid)


def test_bad_input_is_rejected_per_reason_and_the_next_message_processed(stack: LocalRuntime) -> None:
    result = run_chaos(stack, stack.root, "bad-input", **FAST)
    _assert_passed(result)
    reasons = " ".join(c.evidence for c in result.checks)
    for reason in ("malformed", "frame_count", "unknown_version", "bad_value", "oversized"):
        assert reason in reasons


def test_overflowed_subscriber_reports_its_loss_as_lost(stack: LocalRuntime) -> None:
    _assert_passed(run_chaos(stack, stack.root, "slow-joiner", **FAST))


def test_a_venue_sequence_gap_withdraws_quotes_and_resubscribes(stack: LocalRuntime) -> None:
    env_before = (stack.root / ".env").read_text()
    result = run_chaos(stack, stack.root, "feed-gap", **FAST)
    _assert_passed(result)
    assert (stack.root / ".env").read_text() == env_before  # the operator's settings are restored
    assert "SIM_FAULT_GAP_AT_S" not in stack.env("kalshi_monitor")


def test_a_book_moving_under_a_signal_leaves_no_naked_leg_and_trading_resumes(stack: LocalRuntime) -> None:
    env_before = (stack.root / ".env").read_text()
    result = run_chaos(stack, stack.root, "leg-miss", **FAST)
    _assert_passed(result)
    names = [c.name for c in result.checks]
    assert names == ["a leg miss was provoked: the book moved between a signal and its fill",
                     "no naked leg remains: both legs of every pair hold the same quantity",
                     "each miss counted and logged once", "no paper trade lost or duplicated",
                     "the next signals trade normally: both legs filled at the same size"]
    assert (stack.root / ".env").read_text() == env_before
    assert "SIM_LEG_MISS_AT_S" not in stack.env("kalshi_monitor")


def test_cli_chaos_json_stores_the_run_and_never_shows_secrets(stack: LocalRuntime) -> None:
    done = _cli(stack.root, "chaos", "kill-zmq_listener", "--runtime", "local", "--json", "--flow-timeout", "30s")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["command"] == "chaos kill-zmq_listener" and data["passed"] is True
    assert Path(data["data"]["run_dir"]).name.endswith("-chaos-kill-zmq_listener")
    assert (Path(data["data"]["run_dir"]) / "result.json").exists()
    unknown = _cli(stack.root, "chaos", "no-such-fault", "--runtime", "local", "--json")
    assert unknown.returncode == 3 and "unknown scenario" in json.loads(unknown.stdout)["error"]
    outputs = [done.stdout, done.stderr]
    for args in (("env", "kalshi_monitor", "--json"), ("env", "execution_service"), ("status", "--json")):
        shown = _cli(stack.root, *args, "--runtime", "local")
        outputs += [shown.stdout, shown.stderr]
    assert '"KALSHI_PRIVATE_KEY": "***"' in outputs[2]
    logs = [p.read_text(errors="replace") for p in (stack.state / "logs").glob("*.log")]
    runs = [p.read_text() for p in (stack.state / "runs").rglob("*.json")]
    for text in outputs + logs + runs + [json.dumps(stack.read_stack())]:
        assert FAKE_KALSHI_KEY not in text and FAKE_POLY_KEY not in text


def test_chaos_without_a_running_stack_could_not_run(tmp_path: Path) -> None:
    """Nothing to inject into: exit 3 with the line that says what to do."""
    out = _cli(tmp_path, "chaos", "redis-outage", "--runtime", "local")
    assert out.returncode == 3 and "not running" in out.stderr


# -- configuration mistakes: one actionable line, no traceback --------------------------------------------------


def _run_service(module: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    full = {**os.environ, "ARBEES_HOME": str(tmp_path), "ARBEES_STATE_DIR": str(tmp_path / ".arbees"), **env}
    return subprocess.run([sys.executable, "-m", module], env=full, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)


def test_bad_endpoint_is_one_configuration_error(tmp_path: Path, redis_url: str, database_url: str) -> None:
    done = _run_service("arbees_core.services.game_shard", {"ZMQ_ENABLED": "true", "REDIS_URL": redis_url,
                        "DATABASE_URL": database_url, "ZMQ_SUB_ENDPOINTS": "tcp//127.0.0.1:5555"}, tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "configuration error: ZMQ_SUB_ENDPOINTS: 'tcp//127.0.0.1:5555' is not a ZMQ endpoint" in out
    assert "Traceback" not in out


def test_port_clash_is_one_line_naming_the_port(tmp_path: Path, redis_url: str, database_url: str) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        done = _run_service("arbees_core.services.game_shard", {
            "ZMQ_ENABLED": "true", "REDIS_URL": redis_url, "DATABASE_URL": database_url, "ZMQ_PUB_PORT": str(port)},
            tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert f"Cannot bind ZMQ publisher to tcp://127.0.0.1:{port}: Address already in use" in out
    assert "Traceback" not in out


def test_timescaledb_absent_is_one_clear_line(tmp_path: Path, database_url: str, caplog) -> None:
    import psycopg

    from arbees_core.store import schema

    caplog.set_level("INFO")
    schema._timescale_absent_logged = False
    with psycopg.connect(database_url, autocommit=True) as conn:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
        if available:
            pytest.skip("this PostgreSQL has TimescaleDB")
        schema.migrate(conn)
        schema.migrate(conn)
    lines = [r.getMessage() for r in caplog.records if "TimescaleDB" in r.getMessage()]
    assert len(lines) == 1 and "plain table" in lines[0]


def test_live_venue_without_credentials_is_one_configuration_error(tmp_path: Path) -> None:
    done = _run_service("arbees_core.services.kalshi_monitor", {"KALSHI_SOURCE": "live", "ZMQ_ENABLED": "true",
                                                                "KALSHI_API_KEY_ID": ""}, tmp_path)
    out = done.stdout + done.stderr
    if "sim' only" in out or "simulated venue only" in out:
        pytest.skip("this build has no live Kalshi source yet")
    assert done.returncode == 2, out
    assert "configuration error: KALSHI_API_KEY_ID" in out and out.strip().count("\n") <= 1
    assert "Traceback" not in out


def test_redis_mode_waits_out_a_redis_outage_without_a_crash_loop(stack: LocalRuntime) -> None:
    """Last in the module: it switches the shared stack to Redis mode, where Redis *is* the hot path."""
    env_file = stack.root / ".env"
    env_file.write_text(env_file.read_text().replace("ZMQ_ENABLED=true", "ZMQ_ENABLED=false"))
    stack.restart()
    assert stack.env("game_shard")["ZMQ_ENABLED"] == "false"
    result = run_chaos(stack, stack.root, "redis-outage", **FAST)
    _assert_passed(result)
    names = [c.name for c in result.checks]
    assert "services wait for Redis and reconnect with backoff" in names
    assert "no crash loop: no service restarted during the outage" in names


def test_chaos_all_runs_every_scenario_in_order_and_never_passes_a_scenario_that_did_not_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`chaos all` composes the scenarios tested one by one above: every check prefixed with its scenario, a
    scenario that cannot run here is an inconclusive `not run` line with the reason (the run is inconclusive,
    exit 2; with nothing run at all, exit 3), and one failed check fails the whole run (exit 1)."""
    from arbees_core.validation import chaos

    ran: list[str] = []

    def ok(runtime: object, root: Path, result: RunResult, **opts: object) -> None:
        ran.append("ok")
        result.add("flow resumed", True, f"opts {sorted(opts)}")

    def unavailable(runtime: object, root: Path, result: RunResult, **opts: object) -> None:
        ran.append("unavailable")
        raise chaos.ChaosUnavailable("needs the embedded Redis")

    def broken(runtime: object, root: Path, result: RunResult, **opts: object) -> None:
        ran.append("broken")
        result.add("no trade lost", False, "2 signals without their legs")

    monkeypatch.setattr(chaos, "SCENARIOS", {"kill-a": ok, "redis-outage": unavailable})
    result = run_chaos(None, tmp_path, "all", outage_s=1.0)
    assert ran == ["ok", "unavailable"] and not result.passed
    assert result.verdict == "inconclusive" and result.exit_code == 2
    assert [(c.name, c.passed, c.inconclusive) for c in result.checks] == [
        ("kill-a: flow resumed", True, False), ("redis-outage: not run", False, True)]
    assert result.checks[1].evidence == "needs the embedded Redis"
    assert result.data["scenarios"] == {"kill-a": True}

    monkeypatch.setattr(chaos, "SCENARIOS", {"redis-outage": unavailable})
    nothing = run_chaos(None, tmp_path, "all")
    assert nothing.verdict == "inconclusive" and nothing.exit_code == 3

    monkeypatch.setattr(chaos, "SCENARIOS", {"kill-a": ok, "bad-input": broken})
    failed = run_chaos(None, tmp_path, "all")
    assert not failed.passed and failed.data["scenarios"] == {"kill-a": True, "bad-input": False}
    assert failed.exit_code == 1
