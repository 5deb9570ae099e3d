"""The compose stack on a real Docker engine: it trades, and every arbees command works with `--runtime compose`.

One stack for the module (`docker_support.compose_project`), ZMQ mode, a mispricing every second. Each test puts
the stack into the state it checks (mode, services) itself, so the tests hold in any order.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.docker_support import ComposeProject

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

PIPELINE = ("market_discovery", "zmq_listener", "kalshi_monitor", "polymarket_monitor", "game_shard",
            "execution_service")


def as_json(done) -> dict:  # noqa: ANN001 - a CompletedProcess
    assert done.stdout.strip(), f"no JSON on stdout (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def failed_checks(result: dict) -> list[str]:
    return [f"{c['name']}: {c['evidence'][:300]}" for c in result.get("checks", []) if not c["passed"]]


def ensure_mode(project: ComposeProject, zmq: bool) -> None:
    """The stack in one mode, through arbees itself (`.env`, then recreate what runs in the other mode)."""
    want = "true" if zmq else "false"
    rows = as_json(project.arbees("status", "--runtime", "compose", "--json"))["services"]
    if any(r["state"] != "running" for r in rows if r["name"] in PIPELINE):  # a test before left one down
        assert project.arbees("up", "--runtime", "compose").returncode == 0
    modes = {name: project.arbees("env", name, "--runtime", "compose").stdout for name in ("game_shard",)}
    if all(f"ZMQ_ENABLED={want}" in text for text in modes.values()):
        return
    project.set_env(ZMQ_ENABLED=want)
    done = project.arbees("restart", "--runtime", "compose")
    assert done.returncode == 0, done.stderr[-2000:]


def trades_of(project: ComposeProject, transport: str) -> int:
    rows = project.psql(f"SELECT count(*) FROM paper_trades WHERE transport = '{transport}'")
    return int(rows[0][0]) if rows else 0


@pytest.mark.parametrize("zmq", [True, False], ids=["zmq", "redis"])
def test_the_compose_stack_trades_an_injected_mispricing(compose_project: ComposeProject, zmq: bool) -> None:
    """A mispricing becomes one signal and its two paper_trades rows, in both transport modes."""
    ensure_mode(compose_project, zmq)
    transport = "zmq" if zmq else "redis"
    before = trades_of(compose_project, transport)
    compose_project.wait(f"paper_trades rows in {transport} mode",
                         lambda: trades_of(compose_project, transport) >= before + 2, timeout=120)
    rows = compose_project.psql(
        "SELECT signal_id, count(*), count(DISTINCT leg) FROM paper_trades "
        f"WHERE transport = '{transport}' GROUP BY signal_id")
    assert rows and all(n == legs == "2" for _, n, legs in rows), rows  # each signal exactly its two legs
    assert int(compose_project.redis("XLEN", "signals:trades")) > 0


def test_stack_commands_work_with_the_compose_runtime(compose_project: ComposeProject) -> None:
    """status, logs, env and restart read and change the containers; restart recreates, so .env takes effect."""
    ensure_mode(compose_project, True)
    status = as_json(compose_project.arbees("status", "--runtime", "compose", "--json"))
    assert status["runtime"] == "compose"
    states = {s["name"]: s for s in status["services"]}
    assert all(states[name]["state"] == "running" for name in PIPELINE), states
    assert states["kalshi_monitor"]["container"] == "kalshi_monitor" and states["kalshi_monitor"]["ports"] == [5555]
    assert status["urls"]["REDIS_URL"].startswith("redis://127.0.0.1:")

    logs = compose_project.arbees("logs", "game_shard", "--runtime", "compose", "--since", "10m")
    assert "ZMQ subscriber connected to tcp://kalshi_monitor:5555" in logs.stdout

    compose_project.set_env(MIN_EDGE_PCT="0.75")
    try:
        done = compose_project.arbees("restart", "game_shard", "--runtime", "compose")
        assert done.returncode == 0, done.stderr[-2000:]
        env = compose_project.arbees("env", "game_shard", "--runtime", "compose").stdout
        assert "MIN_EDGE_PCT=0.75" in env
        assert "GLIBC_TUNABLES=glibc.malloc.tcache_count=0" in env  # the image's allocator default (Dockerfile)
        compose_project.wait("game_shard logs the new MIN_EDGE_PCT", lambda: "MIN_EDGE_PCT=0.75%" in compose_project.arbees(
            "logs", "game_shard", "--runtime", "compose", "-n", "200").stdout, timeout=60)
    finally:
        compose_project.set_env(MIN_EDGE_PCT="0.5")
        compose_project.arbees("restart", "game_shard", "--runtime", "compose")


@pytest.mark.parametrize("phase", ["1", "2", "3"])
def test_phases_1_to_3_pass_on_compose(compose_project: ComposeProject, phase: str) -> None:
    """The plan's phases against the running compose stack, with the network's point of view for `nc -zv`."""
    done = compose_project.arbees("phase", phase, "--runtime", "compose", "--json")
    result = as_json(done)
    assert done.returncode == 0 and result["passed"], failed_checks(result)
    if phase == "1":
        nc = next(c for c in result["checks"] if "nc -zv kalshi_monitor 5555" in c["name"])
        assert "docker exec" in nc["evidence"] and "succeeded" in nc["evidence"]


@pytest.mark.timeout(900)
def test_phases_4_and_5_then_decide_and_report_on_compose(compose_project: ComposeProject) -> None:
    """Quick durations: both modes measured through container networking, a short soak, the decision matrix."""
    p4 = compose_project.arbees("phase", "4", "--runtime", "compose", "--windows", "2", "--window-seconds", "8",
                                "--warmup", "2", "--json")
    r4 = as_json(p4)
    assert p4.returncode == 0 and r4["passed"], failed_checks(r4)
    p5 = compose_project.arbees("phase", "5", "--runtime", "compose", "--duration", "30s", "--interval", "6s",
                                "--json")
    r5 = as_json(p5)
    assert p5.returncode == 0 and r5["passed"], failed_checks(r5)
    decide = compose_project.arbees("decide", "--json")
    verdict = as_json(decide)
    # a 30 s soak cannot prove memory stability: never GO, and never a crash or loss
    assert decide.returncode == 2 and verdict["decision"] == "DEBUG", verdict
    report = compose_project.arbees("report")
    assert report.returncode == 0, report.stderr[-2000:]
    assert list((compose_project.root / ".arbees").rglob("report*.html"))


def test_rollback_and_undo_on_compose(compose_project: ComposeProject) -> None:
    """`arbees rollback` recreates every service in Redis mode; `--undo` brings ZMQ back."""
    ensure_mode(compose_project, True)
    back = compose_project.arbees("rollback", "--runtime", "compose", "--json")
    result = as_json(back)
    assert back.returncode == 0 and result["passed"], failed_checks(result)
    assert "ZMQ_ENABLED=false" in compose_project.arbees("env", "kalshi_monitor", "--runtime", "compose").stdout
    undo = compose_project.arbees("rollback", "--undo", "--runtime", "compose", "--json")
    result = as_json(undo)
    assert undo.returncode == 0 and result["passed"], failed_checks(result)


@pytest.mark.parametrize("target", ["zmq-listener", "game-shard", "execution-service", "latency"])
def test_diagnose_finds_no_fault_in_a_healthy_compose_stack(compose_project: ComposeProject, target: str) -> None:
    ensure_mode(compose_project, True)
    compose_project.wait("signals flowing", lambda: trades_of(compose_project, "zmq") > 0)
    done = compose_project.arbees("diagnose", target, "--runtime", "compose", "--json")
    result = as_json(done)
    assert done.returncode == 0 and result["passed"], result["data"].get("findings")
    if target == "zmq-listener":
        probes = result["data"]["probes"]["port_reachable"]
        assert all(p["ok"] and "docker exec" in p["evidence"] for p in probes.values()), probes


def test_a_stopped_publisher_is_found_by_diagnose(compose_project: ComposeProject) -> None:
    """The plan's Issue 1 on compose: kalshi_monitor stopped, its port unreachable from inside the network."""
    ensure_mode(compose_project, True)
    assert compose_project.sh("docker stop kalshi_monitor").returncode == 0
    try:
        done = compose_project.arbees("diagnose", "zmq-listener", "--runtime", "compose", "--json")
        result = as_json(done)
        assert done.returncode == 1
        assert any("kalshi_monitor" in f["fault"] for f in result["data"]["findings"]), result["data"]["findings"]
    finally:
        compose_project.sh("docker start kalshi_monitor")
        compose_project.wait("kalshi_monitor healthy", lambda: "healthy" in compose_project.sh(
            "docker inspect -f '{{.State.Health.Status}}' kalshi_monitor").stdout)


def test_the_vpn_override_keeps_polymarket_monitor_reachable_by_name(compose_project: ComposeProject) -> None:
    """docker-compose.vpn.yml: polymarket_monitor shares the vpn container's network (a stand-in for gluetun),
    and tcp://polymarket_monitor:5556 still resolves from game_shard and zmq_listener."""
    from tests.docker_support import build_vpn_standin

    ensure_mode(compose_project, True)
    compose_project.set_env(ARBEES_VPN_IMAGE=build_vpn_standin())
    files = ["-f", "docker-compose.yml", "-f", "docker-compose.vpn.yml"]
    try:
        up = compose_project.compose(*files, "--profile", "full", "--profile", "vpn", "up", "-d", "--wait")
        assert up.returncode == 0, up.stderr[-3000:]
        mode = compose_project.sh("docker inspect -f '{{.HostConfig.NetworkMode}}' polymarket_monitor").stdout
        assert mode.strip().startswith("container:"), mode  # inside the vpn container's network stack
        for sub in ("zmq_listener", "game_shard"):
            nc = compose_project.sh(f"docker exec {sub} nc -zv polymarket_monitor 5556")
            assert nc.returncode == 0 and "succeeded" in nc.stderr + nc.stdout, nc.stderr
        compose_project.arbees("restart", "game_shard", "zmq_listener", "--runtime", "compose")
        compose_project.wait("poly prices mirrored through the vpn's network", lambda: re.search(
            r"Mirrored prices\.poly\.\S+ to prices:poly",
            compose_project.sh("docker logs --since 20s zmq_listener").stdout))
    finally:
        compose_project.compose("--profile", "full", "up", "-d", "--wait", "--force-recreate", "polymarket_monitor")
        compose_project.compose("--profile", "vpn", "rm", "-sf", "vpn")


def test_a_setting_that_cannot_heal_is_one_line_and_a_failed_service_not_a_crash_loop(
        compose_project: ComposeProject) -> None:
    """A bad value in `.env` reaches game_shard (recreated by compose directly, as an operator would): one log
    line, no traceback, no restart loop (the container holds), and `arbees status` shows it failed with the line."""
    compose_project.set_env(MIN_EDGE_PCT="abc")
    try:
        up = compose_project.compose("--profile", "full", "up", "-d", "--force-recreate", "--no-deps", "game_shard")
        assert up.returncode == 0, up.stderr[-2000:]

        def failed() -> dict | None:
            rows = as_json(compose_project.arbees("status", "--runtime", "compose", "--json"))["services"]
            row = next(r for r in rows if r["name"] == "game_shard")
            return row if row["state"] == "failed" else None

        row = compose_project.wait("game_shard shown as failed", failed, timeout=120)
        assert "MIN_EDGE_PCT" in row["detail"] and row["restarts"] == 0, row
        log = compose_project.sh("docker logs game_shard 2>&1").stdout
        assert log.count("configuration error") == 1 and "Traceback" not in log, log[-2000:]
    finally:
        compose_project.set_env(MIN_EDGE_PCT="0.5")
        compose_project.compose("--profile", "full", "up", "-d", "--wait", "--force-recreate", "game_shard")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("scenario", ["kill-game_shard", "kill-execution_service", "redis-outage", "postgres-outage",
                                      "bad-input", "hwm"])
def test_chaos_scenarios_run_on_the_compose_stack(compose_project: ComposeProject, scenario: str) -> None:
    """The same scenarios as on the local runtime, with the engine's own faults: `docker kill` (the restart
    policy restarts), `docker pause` of arbees-redis, `docker stop` of arbees-timescaledb, and bad frames or a
    burst from a container on arbees-network answering to kalshi_monitor's name. (`feed-gap` and `leg-miss` act
    inside the simulated venue through `.env` and a restart, the same on both runtimes: tested locally.)"""
    ensure_mode(compose_project, True)
    done = compose_project.arbees("chaos", scenario, "--runtime", "compose", "--outage", "8s", "--flow-timeout",
                                  "45s", "--json", timeout=900)
    result = as_json(done)
    assert done.returncode == 0 and result["passed"], failed_checks(result)


def test_down_stops_every_container_and_up_brings_the_stack_back(compose_project: ComposeProject) -> None:
    """`arbees down` removes the stack's containers (its volumes stay: nothing recorded is lost); `arbees up`
    starts every service again, and the paper trades from before are still there."""
    ensure_mode(compose_project, True)
    trades = trades_of(compose_project, "zmq")
    down = compose_project.arbees("down", "--runtime", "compose", "--json")
    assert down.returncode == 0, down.stderr[-2000:]
    assert compose_project.sh("docker ps -aq --filter label=com.docker.compose.project=arbees").stdout.strip() == ""
    status = compose_project.arbees("status", "--runtime", "compose", "--json")
    assert status.returncode == 1 and not as_json(status)["up"]
    up = compose_project.arbees("up", "--runtime", "compose", "--json")
    assert up.returncode == 0, up.stderr[-2000:]
    states = {s["name"]: s["state"] for s in as_json(up)["services"]}
    assert all(states[name] == "running" for name in PIPELINE), states
    assert trades_of(compose_project, "zmq") >= trades  # the database volume survived


def test_the_plans_redis_cli_and_psql_checks_run_inside_the_containers(compose_project: ComposeProject) -> None:
    """`arbees redis-cli` / `arbees psql` under compose are the plan's `docker exec arbees-redis redis-cli ...` and
    `docker exec arbees-timescaledb psql -U arbees ...`: same answers, the client's exit code."""
    ensure_mode(compose_project, True)
    compose_project.wait("prices in prices:kalshi", lambda: int(compose_project.redis("XLEN", "prices:kalshi")) > 0)
    xlen = compose_project.arbees("redis-cli", "XLEN", "prices:kalshi", "--runtime", "compose")
    assert xlen.returncode == 0 and int(xlen.stdout.strip()) > 0, xlen.stderr
    compose_project.wait("paper trades", lambda: trades_of(compose_project, "zmq") > 0)
    query = "SELECT order_id, status, filled_qty, latency_ms FROM paper_trades ORDER BY created_at DESC LIMIT 10;"
    rows = compose_project.arbees("psql", "--runtime", "compose", "-c", query)
    assert rows.returncode == 0 and re.search(r"order_id\s+\|\s+status\s+\|\s+filled_qty\s+\|\s+latency_ms", rows.stdout)
    assert compose_project.arbees("psql", "--runtime", "compose", "-c", "SELECT nope").returncode != 0
