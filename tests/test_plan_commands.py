"""The operators' plan, verbatim: every shell command of zmq-testing-plan.md's phases, rollback and troubleshooting
run against the compose stack on a real engine, each checked for the output the plan expects.

Commands are copied from the plan character for character. Only what a shell needs to end is added around them:
`-f` and `ping` run under `timeout` (they never end on their own) and `docker exec -it` gets a terminal of its own
(`in_terminal`). `docker-compose` is Compose v2's standalone spelling (a `docker compose` shim on PATH, as Docker Desktop
installs). Each section brings the stack into the state that section of the plan starts from, so sections run in
any order.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shlex
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from arbees_core.polling import NotReached
from tests.docker_support import ComposeProject, build_vpn_standin

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

Check = Callable[[str], bool]


@dataclass(frozen=True)
class PlanCommand:
    """One command of the plan and what the plan says it shows (a regex over stdout, or a predicate)."""

    command: str
    expect: str | Check
    note: str = ""
    wrap: str = ""  # `timeout N` for commands that never end, `tty` for `docker exec -it`
    #: The expectation is read on the terminal (stdout and stderr, e.g. `nc -zv` reports on stderr). Off for
    #: pipelines: what `docker logs` writes on stderr never reaches the `grep` after it.
    terminal: bool = False

    def shell_line(self) -> str:
        if self.wrap.startswith("timeout"):
            return f"{self.wrap} sh -c {shlex.quote(self.command)} || true"
        return self.command

    def holds(self, out: str) -> bool:
        return bool(re.search(self.expect, out)) if isinstance(self.expect, str) else self.expect(out)


def positive_int(out: str) -> bool:
    return out.strip().isdigit() and int(out.strip()) > 0


def zero(out: str) -> bool:
    return out.strip() == "0"


def latencies_below(limit_ms: float) -> Check:
    """psql rows `order_id | status | filled_qty | latency_ms`: some rows, every latency under the plan's limit."""
    def check(out: str) -> bool:
        rows = [ln.split("|") for ln in out.splitlines() if ln.count("|") == 3 and "order_id" not in ln]
        values = [float(r[3]) for r in rows if r[3].strip()]
        return bool(values) and max(values) < limit_ms
    return check


def only_header(out: str) -> bool:
    """`docker-compose ps | grep -v "Up"`: every service is Up, so only the header line is left."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("NAME")


def stats_below_half_a_core(out: str) -> bool:
    """`docker stats --no-stream`: the plan expects game_shard and execution_service below 50 % CPU."""
    cpu = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\S+\s+(\S+)\s+([\d.]+)%", out, re.M)}
    return {"game_shard", "execution_service"} <= set(cpu) and cpu["game_shard"] < 50 and cpu["execution_service"] < 50


PHASE_1 = [
    PlanCommand("docker-compose up -d timescaledb redis", r"", "infrastructure"),
    PlanCommand("docker-compose up -d zmq_listener", r"", "zmq_listener only"),
    PlanCommand("docker-compose up -d kalshi_monitor polymarket_monitor vpn", r"", "publishers (vpn: stand-in)"),
    PlanCommand("docker logs kalshi_monitor | grep -i zmq", r"ZMQ publisher initialized on port 5555"),
    PlanCommand("docker logs polymarket_monitor | grep -i zmq", r"ZMQ publisher initialized on port 5556"),
    PlanCommand('docker logs zmq_listener -f | grep -i "mirrored"',
                lambda out: bool(re.search(r"Mirrored prices\.kalshi\.\S+ to prices:kalshi", out)
                                 and re.search(r"Mirrored prices\.poly\.\S+ to prices:poly", out)), wrap="timeout 8"),
    PlanCommand("docker exec arbees-redis redis-cli XLEN prices:kalshi", positive_int),
    PlanCommand("docker exec arbees-redis redis-cli XLEN prices:poly", positive_int),
    PlanCommand("docker exec arbees-redis redis-cli XREVRANGE prices:kalshi + - COUNT 1",
                r'"ticker":"[^"]+".*"yes_bid":[\d.]+.*"yes_ask":[\d.]+'),
]

PHASE_2 = [
    PlanCommand("docker-compose up -d orchestrator market-discovery-rust game_shard", r""),
    PlanCommand("docker logs game_shard | grep -i zmq",
                lambda out: "ZMQ subscriber connected to tcp://kalshi_monitor:5555" in out
                and "ZMQ subscriber connected to tcp://polymarket_monitor:5556" in out),
    PlanCommand('docker logs game_shard | grep -i "price update"', r"(?i)price update .*\n.*price update"),
    PlanCommand('docker logs game_shard | grep -i "signal.*zmq"', r"Published signal to ZMQ: signals\.trade\.arb"),
    PlanCommand('docker logs zmq_listener | grep "signals.trade"', r"Mirrored signals\.trade\.arb\S* to signals:trades"),
    PlanCommand("docker exec arbees-redis redis-cli XLEN signals:trades", positive_int),
]

PHASE_3 = [
    PlanCommand("docker-compose up -d execution_service", r""),
    PlanCommand("docker logs execution_service | grep -i zmq", r"ZMQ subscriber connected to tcp://game_shard:5558"),
    PlanCommand('docker logs execution_service | grep -i "received signal"', r"Received signal via ZMQ: arb"),
    PlanCommand('docker logs execution_service | grep -i "IOC order"',
                lambda out: bool(re.search(r"Placing IOC order \(arb\S+\): buy (yes|no) x\d+ @ \d+c on \S+", out)
                                 and re.search(r"IOC order arb\S+ placed: .*\(filled: [\d.]+/[\d.]+\)", out))),
    PlanCommand('docker exec -it arbees-timescaledb psql -U arbees -c \\\n'
                '  "SELECT order_id, status, filled_qty, latency_ms\n'
                '   FROM paper_trades\n'
                '   ORDER BY created_at DESC\n'
                '   LIMIT 10;"', latencies_below(120), "latency_ms < 120ms", wrap="tty"),
]

_AVG = r"Avg: [\d.]+ ms  Stddev: [\d.]+ ms"
PHASE_4 = [
    PlanCommand('docker logs game_shard | grep "Price latency" | \\\n'
                "  awk '{print $NF}' | sed 's/ms//' | \\\n"
                "  awk '{sum+=$1; sumsq+=$1*$1; count++}\n"
                '       END {print "Avg:", sum/count, "ms  Stddev:", sqrt(sumsq/count - (sum/count)^2), "ms"}\'', _AVG),
    PlanCommand('docker logs execution_service | grep "Signal latency" | \\\n'
                "  awk '{print $NF}' | sed 's/ms//' | \\\n"
                "  awk '{sum+=$1; sumsq+=$1*$1; count++}\n"
                '       END {print "Avg:", sum/count, "ms  Stddev:", sqrt(sumsq/count - (sum/count)^2), "ms"}\'', _AVG),
    PlanCommand('docker logs execution_service | grep "End-to-end latency" | \\\n'
                "  awk '{print $NF}' | sed 's/ms//' | \\\n"
                "  awk '{sum+=$1; sumsq+=$1*$1; count++}\n"
                '       END {print "Avg:", sum/count, "ms  Stddev:", sqrt(sumsq/count - (sum/count)^2), "ms"}\'', _AVG),
    PlanCommand("ZMQ_ENABLED=true docker-compose --profile full up -d", r""),
]

ROLLBACK = [
    PlanCommand('echo "ZMQ_ENABLED=false" >> .env', r""),
    # The plan restarts; a restarted container keeps the environment it was created with, so the plan's
    # "brought up again" is what recreates the services with the edited .env (README: Runtimes).
    PlanCommand("docker-compose --profile full restart", r""),
    PlanCommand("docker-compose --profile full up -d", r""),
    PlanCommand('docker logs game_shard | grep -i "redis"', r"Connected to Redis"),
]

PHASE_5 = [
    PlanCommand('echo "ZMQ_ENABLED=true" >> .env', r""),
    PlanCommand("docker-compose --profile full up -d", r""),
    # the body of the plan's monitor.sh, once
    PlanCommand('docker-compose ps | grep -v "Up"', only_header),
    PlanCommand('docker-compose logs --since 5m | grep -i "zmq.*error" | wc -l', zero),
    PlanCommand('docker logs zmq_listener --since 5m | grep "Mirrored" | wc -l', positive_int),
    PlanCommand('docker logs execution_service --since 5m | grep "End-to-end latency" | \\\n'
                "    awk '{print $NF}' | sed 's/ms//' | \\\n"
                '    awk \'{sum+=$1; count++} END {if (count>0) print "Avg latency:", sum/count, "ms"}\'',
                r"Avg latency: [\d.]+ ms"),
]

TROUBLESHOOTING = [
    # Issue 1: zmq_listener not receiving messages
    PlanCommand("docker logs zmq_listener", r"Mirrored"),
    PlanCommand('docker ps | grep -E "kalshi_monitor|polymarket_monitor|game_shard"',
                lambda out: all(n in out for n in ("kalshi_monitor", "polymarket_monitor", "game_shard"))),
    PlanCommand("docker exec zmq_listener nc -zv kalshi_monitor 5555", r"succeeded", terminal=True),
    PlanCommand("docker exec kalshi_monitor env | grep ZMQ_ENABLED", r"^ZMQ_ENABLED=true$"),
    PlanCommand("docker-compose restart kalshi_monitor polymarket_monitor", r""),
    # Issue 2: game_shard not receiving prices
    PlanCommand('docker logs game_shard | grep "price update"', r"price update"),
    PlanCommand('docker logs game_shard | grep -i "zmq.*connect"', r"ZMQ subscriber connected to"),
    PlanCommand('docker logs kalshi_monitor | grep -i "publish"', r"Published prices\.kalshi\."),
    PlanCommand("docker run --rm --network arbees-network \\\n  zmqtools zmq-sub tcp://kalshi_monitor:5555",
                r"prices\.kalshi\.\S+ \{.*\n.*prices\.kalshi\.", wrap="timeout 10"),
    PlanCommand("docker-compose restart game_shard", r""),
    # Issue 3: execution_service not receiving signals
    PlanCommand('docker logs execution_service | grep "signal"', r"Received signal via ZMQ"),
    PlanCommand('docker logs game_shard | grep "Published signal"', r"Published signal to ZMQ: signals\.trade\."),
    PlanCommand('docker logs execution_service | grep -i "zmq.*connect"', r"ZMQ subscriber connected to tcp://game_shard:5558"),
    PlanCommand('docker logs game_shard | grep "arbitrage"', r"Detected arbitrage in "),
    PlanCommand("docker ps | grep game_shard", r"game_shard"),
    PlanCommand("docker-compose restart execution_service", r""),
    # Issue 4: high latency
    PlanCommand('docker logs game_shard | grep -i "mode"', r"ZMQ mode enabled"),
    PlanCommand('docker logs kalshi_monitor | grep "payload.*bytes"', r"payload \d+ bytes"),
    PlanCommand("docker stats --no-stream", stats_below_half_a_core),
    PlanCommand("docker exec game_shard ping kalshi_monitor", r"bytes from .*kalshi_monitor", wrap="timeout 4"),
]


def run_section(project: ComposeProject, commands: list[PlanCommand], attempts_s: float = 90) -> None:
    """Each command in order; a check on logs or streams is retried until the stack has produced the line."""
    for cmd in commands:
        last: list[str] = [""]

        def holds(c: PlanCommand = cmd) -> bool:
            done = in_terminal(project, c.command) if c.wrap == "tty" else project.sh(c.shell_line(), timeout=300)
            last[0] = f"exit {done.returncode}\nstdout: {done.stdout[-1500:]}\nstderr: {done.stderr[-1500:]}"
            seen = done.stdout + done.stderr if c.terminal else done.stdout
            return (done.returncode == 0 or c.wrap) and c.holds(seen)  # type: ignore[return-value]

        try:
            project.wait(cmd.command, holds, timeout=attempts_s)
        except NotReached:
            pytest.fail(f"the plan's command did not give the plan's output:\n$ {cmd.command}\n{last[0]}")


def in_terminal(project: ComposeProject, line: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """A command that wants a terminal (`docker exec -it`), run on a pseudo-terminal 200 x 300 as an operator's
    window; a pager's prompt (psql pages when the container's terminal size arrives late) is answered with `q`."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 200, 300, 0, 0))
    proc = subprocess.Popen(["bash", "-c", line], cwd=project.root, env=project.env, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            out += chunk
            if b"--More--" in chunk or b"(END)" in chunk:
                os.write(master, b"q")
        elif proc.poll() is not None:
            break
    if proc.poll() is None:
        proc.kill()
    code = proc.wait()
    os.close(master)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    return subprocess.CompletedProcess(line, code, text, "")


FULL = ""  # no service named: the whole `--profile full` stack


def start_from(project: ComposeProject, services: str, zmq: bool = True) -> None:
    """The stack as a section of the plan finds it: `.env` in the mode, these services up (vpn: the stand-in;
    `FULL`: every service)."""
    project.set_env(ZMQ_ENABLED="true" if zmq else "false", ARBEES_VPN_IMAGE=build_vpn_standin())
    profile = "--profile full " if services == FULL else ""
    done = project.sh(f"docker-compose {profile}up -d --wait {services}", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_phase_1_commands(compose_project: ComposeProject) -> None:
    start_from(compose_project, "timescaledb redis")
    compose_project.sh("docker-compose stop zmq_listener kalshi_monitor polymarket_monitor")
    run_section(compose_project, PHASE_1)


def test_phase_2_commands(compose_project: ComposeProject) -> None:
    start_from(compose_project, "zmq_listener kalshi_monitor polymarket_monitor")
    run_section(compose_project, PHASE_2)


def test_phase_3_commands(compose_project: ComposeProject) -> None:
    start_from(compose_project, "zmq_listener kalshi_monitor polymarket_monitor game_shard")
    run_section(compose_project, PHASE_3)


def test_phase_4_commands(compose_project: ComposeProject) -> None:
    start_from(compose_project, FULL)
    run_section(compose_project, PHASE_4)


def test_rollback_commands(compose_project: ComposeProject) -> None:
    start_from(compose_project, FULL)
    run_section(compose_project, ROLLBACK)


def test_phase_5_monitoring_commands(compose_project: ComposeProject) -> None:
    start_from(compose_project, FULL, zmq=False)
    run_section(compose_project, PHASE_5)


def test_troubleshooting_commands(compose_project: ComposeProject) -> None:
    start_from(compose_project, FULL)
    run_section(compose_project, TROUBLESHOOTING)


def test_every_command_of_the_plan_is_covered() -> None:
    """The tables above hold every `docker`/`docker-compose` command line of the plan (none forgotten)."""
    from pathlib import Path

    plan = (Path(__file__).resolve().parents[2] / "shared" / "zmq-testing-plan.md")
    if not plan.exists():
        pytest.skip(f"{plan} is not beside the checkout")
    text = plan.read_text()
    ours = " ".join(c.command for c in PHASE_1 + PHASE_2 + PHASE_3 + PHASE_4 + ROLLBACK + PHASE_5 + TROUBLESHOOTING)
    in_plan = {m.group(0).strip() for m in re.finditer(r"^\s*(docker(-compose)? [^\n\\#]+)", text, re.M)}
    missing = sorted(c for c in in_plan if c.split(" |")[0].strip() not in ours)
    assert not missing, missing
