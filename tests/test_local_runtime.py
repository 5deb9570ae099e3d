"""The local runtime with real processes: `arbees up / status / logs / env / restart / down` as an operator uses them.

Success criteria from the runtime issue: the stack survives the command that started it (a later command finds it),
a crashed service is restarted and counted, a changed `.env` takes effect on restart, a second `up` finds the
running stack, `down` leaves nothing running, and the usual mistakes give a clear error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from arbees_core.runtime.base import RuntimeError_
from arbees_core.runtime.local import LocalRuntime
from arbees_core.runtime.preflight import SettingsError
from tests.conftest import eventually

pytestmark = pytest.mark.e2e






def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARBEES_HOME": str(root), "COLUMNS": "200"}
    env.pop("ARBEES_STATE_DIR", None)
    return subprocess.run([sys.executable, "-m", "arbees_cli.main", *args], env=env, cwd=root, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def project(local_project: Callable[[str], Path]) -> Path:
    return local_project("ZMQ_ENABLED=true\nSIM_RATE=100\nSIM_GAMES=2\nHEARTBEAT_INTERVAL_SECS=0.2\n"
                         "DISCOVERY_INTERVAL_S=30\n")


def _pids(rt: LocalRuntime) -> dict[str, int | None]:
    return {s.name: s.pid for s in rt.status()}


def test_up_survives_the_cli_and_status_logs_env_find_it(project: Path) -> None:
    started = _cli(project, "up", "--runtime", "local", "--json")
    assert started.returncode == 0, started.stderr + started.stdout
    services = json.loads(started.stdout)["services"]
    assert {s["name"]: s["state"] for s in services} == dict.fromkeys(
        ["market_discovery", "zmq_listener", "kalshi_monitor", "polymarket_monitor", "game_shard", "execution_service"],
        "running")
    base = int(os.environ["ARBEES_PORT_BASE"])
    assert {s["name"]: s["ports"] for s in services}["kalshi_monitor"] == [base]
    sessions = {os.getsid(s["pid"]) for s in services}  # the supervisor's: detached from the CLI, one for all
    assert len(sessions) == 1 and os.getsid(0) not in sessions
    assert all(os.getpgid(s["pid"]) == s["pid"] for s in services)

    status = _cli(project, "status", "--runtime", "local", "--json")  # a new process finds the stack
    assert status.returncode == 0 and json.loads(status.stdout)["up"] is True
    eventually(lambda: "ZMQ subscriber connected to tcp://127.0.0.1:" in
               _cli(project, "logs", "game_shard", "--runtime", "local").stdout, 30, what="game_shard connected")
    logs = _cli(project, "logs", "kalshi_monitor", "--since", "5m", "--runtime", "local")
    assert f"ZMQ publisher initialized on port {base}" in logs.stdout
    assert _cli(project, "logs", "kalshi_monitor", "--tail", "1", "--runtime", "local").stdout.count("\n") == 1
    env = json.loads(_cli(project, "env", "game_shard", "--json", "--runtime", "local").stdout)["env"]
    assert env["ZMQ_ENABLED"] == "true" and env["ZMQ_SUB_ENDPOINTS"].startswith(f"tcp://127.0.0.1:{base},")

    again = _cli(project, "up", "--runtime", "local", "--json")  # a second up finds the running stack
    assert again.returncode == 0
    assert {s["name"]: s["pid"] for s in json.loads(again.stdout)["services"]} == \
        {s["name"]: s["pid"] for s in services}

    down = _cli(project, "down", "--runtime", "local")
    assert down.returncode == 0
    assert not any(psutil.pid_exists(s["pid"]) and psutil.Process(s["pid"]).status() != psutil.STATUS_ZOMBIE
                   for s in services)
    assert _cli(project, "status", "--runtime", "local").returncode == 1


def test_a_crashed_service_is_restarted_and_counted(project: Path) -> None:
    rt = LocalRuntime(project)
    rt.up()
    pid = _pids(rt)["game_shard"]
    assert pid
    os.kill(pid, signal.SIGKILL)
    row = eventually(lambda: next((s for s in rt.status() if s.name == "game_shard" and s.state == "running"
                                   and s.pid != pid), None), 20, what="game_shard restarted")
    assert row.restarts == 1 and row.exit_code == -signal.SIGKILL
    assert all(s.restarts == 0 for s in rt.status() if s.name != "game_shard")


def test_restart_applies_a_changed_dotenv(project: Path) -> None:
    rt = LocalRuntime(project)
    rt.up(["market_discovery", "game_shard"])
    assert "ZMQ mode enabled" in rt.logs("game_shard")
    env_file = project / ".env"
    env_file.write_text(env_file.read_text().replace("ZMQ_ENABLED=true", "ZMQ_ENABLED=false"))
    rt.restart(["game_shard"])
    eventually(lambda: "Connected to Redis (Redis mode)" in rt.logs("game_shard"), 20, what="Redis mode after restart")
    assert rt.env("game_shard")["ZMQ_ENABLED"] == "false"
    assert {s.name: s.state for s in rt.status()}["kalshi_monitor"] == "stopped"  # only what was asked for runs


def test_port_in_use_is_named(project: Path) -> None:
    base = int(os.environ["ARBEES_PORT_BASE"])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 2))
        blocker.listen()
        with pytest.raises(RuntimeError_, match=f"port {base + 2} of game_shard is already in use by pid {os.getpid()}"):
            LocalRuntime(project).up()


def test_bad_redis_url_is_a_clear_error(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{dead}/0")
    result = _cli(project, "up", "--runtime", "local")
    assert result.returncode == 1
    assert f"REDIS_URL=redis://:***@127.0.0.1:{dead}/0 does not answer" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_a_bad_setting_stops_up_and_restart_before_anything_starts(project: Path) -> None:
    env_file = project / ".env"
    good = env_file.read_text()
    env_file.write_text(good + "MIN_EDGE_PCT=lots\n")
    with pytest.raises(SettingsError) as err:
        LocalRuntime(project).up(["market_discovery", "game_shard"])
    assert str(err.value) == (f"{env_file}: MIN_EDGE_PCT: expected a number, was 'lots' (read by game_shard); "
                              "nothing was started")
    assert not LocalRuntime(project).is_up() and not (project / ".arbees").exists()

    env_file.write_text(good)
    rt = LocalRuntime(project)
    rt.up(["market_discovery", "game_shard"])
    pid = _pids(rt)["game_shard"]
    env_file.write_text(good + "ZMQ_SUB_ENDPOINTS=tcp//127.0.0.1:1\n")
    with pytest.raises(SettingsError, match=r"ZMQ_SUB_ENDPOINTS: 'tcp//127.0.0.1:1' is not a ZMQ endpoint"):
        rt.restart(["game_shard"])
    assert _pids(rt)["game_shard"] == pid  # still the process that was running


def test_a_service_that_exits_with_a_configuration_error_is_not_restarted(project: Path) -> None:
    """A setting the check before `up` cannot see (here: written into .env behind it, then the service restarted
    by the supervisor alone) still ends in one stopped service with exit code 2, not a restart loop."""
    rt = LocalRuntime(project)
    rt.up(["market_discovery", "game_shard"])
    env_file = project / ".env"
    env_file.write_text(env_file.read_text() + "MIN_EDGE_PCT=lots\n")
    rt.request("restart", ["game_shard"])
    row = eventually(lambda: next((s for s in rt.status() if s.name == "game_shard" and s.exit_code == 2), None),
                     30, what="game_shard exited with code 2")
    assert (row.state, row.restarts) == ("exited", 0)
    assert "MIN_EDGE_PCT" in rt.logs("game_shard", tail=5)


def test_embedded_servers_start_with_the_stack_and_stop_with_it(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.delenv("DATABASE_URL")
    rt = LocalRuntime(project)
    rt.up(["market_discovery"])
    stack = rt.read_stack()
    assert stack["urls"]["REDIS_URL"].startswith("redis://127.0.0.1:") and "host=" in stack["urls"]["DATABASE_URL"]
    redis_pid = stack["embedded"]["redis"]["pid"]
    eventually(lambda: "Discovery: mapped 2 games" in rt.logs("market_discovery"), 60, what="discovery on embedded pg")
    rt.down()
    assert not psutil.pid_exists(redis_pid) or psutil.Process(redis_pid).status() == psutil.STATUS_ZOMBIE
    assert not list((project / ".arbees" / "pg").glob("postmaster.pid"))


def test_the_supervisor_writes_the_new_states_before_it_answers_a_request(tmp_path: Path) -> None:
    """`arbees stop x` returns when the supervisor answers; an `arbees status` right after must read `stopped` with
    the exit code, not the `running` of a state file written after the answer (it then read as `exited`: a process
    gone while its state said running). Found as a flake of the diagnose test that stops execution_service."""
    from arbees_core.registry import spec
    from arbees_core.runtime.supervisor import STACK_FILE, Child, Supervisor

    state = tmp_path / ".arbees"
    sup = Supervisor(root=tmp_path, state=state, services=["execution_service"])
    child = Child(spec("execution_service"), None, wanted=True, state="running")
    child.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    sup.children = {"execution_service": child}
    control = state / "control"
    control.mkdir(parents=True)
    sup.write_state("running")
    (control / "1-a.request.json").write_text(json.dumps({"action": "stop", "services": ["execution_service"]}))

    sup.handle_requests()

    assert json.loads((control / "1-a.done.json").read_text())["ok"] is True
    view = json.loads((state / STACK_FILE).read_text())["services"]["execution_service"]
    assert view["state"] == "stopped" and view["exit_code"] == -signal.SIGTERM and view["pid"] is None
