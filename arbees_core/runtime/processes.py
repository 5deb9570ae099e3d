"""Pipeline services as plain child processes: start, read logs and metrics, stop.

Used by the end-to-end tests and the demo; the supervised local runtime (restarts, pid files, `arbees up`)
builds on the same pieces.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from arbees_core.registry import spec
from arbees_core.runtime.ports import free_port_block


#: How a service process is started: a process group of its own (a terminal's Ctrl-C does not reach it, and
#: `killpg` stops it with anything it started), but the session of whoever starts the stack, never one per
#: service. Linux schedules each session as one group (autogroup, on by default): with a session per service the
#: scheduler first shares the cores between the services' groups, and a hot-path thread woken by a price waited
#: behind another service's time slice, whatever the threads' niceness. One session for the stack measured price
#: hop p50 190-253 us (median 210) against 206-264 us (median 240), p99 1.0-1.3 ms against 1.2-1.6 ms in 8
#: alternating rounds (2 vCPUs, 2 000 prices/s; benchmarks/RESULTS.md). It is also how the raw hops are measured.
SERVICE_SESSION: dict[str, int] = {"process_group": 0}


@dataclass
class ProcessStack:
    """Services of one test, each `python -m <module>` with its own env and log file under `folder`."""

    folder: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: A command every service runs under (e.g. `setpriv ...` or `taskset -c 1`); empty = run directly.
    wrapper: tuple[str, ...] = ()

    def start(self, name: str, **overrides: str) -> subprocess.Popen:
        """Start one service in a process group of its own, in this process's session (`SERVICE_SESSION`)."""
        env = {**os.environ, **self.env, **overrides}
        with open(self.log_path(name), "ab") as log:  # the service writes to its own copy of the descriptor
            proc = subprocess.Popen([*self.wrapper, sys.executable, "-m", spec(name).module], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.folder,
                                    **SERVICE_SESSION)
        self.procs[name] = proc
        return proc

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def log(self, name: str) -> str:
        try:
            return self.log_path(name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def metrics(self, name: str) -> dict:
        try:
            return json.loads((Path(self.env["ARBEES_STATE_DIR"]) / "metrics" / f"{name}.json").read_text())
        except (OSError, ValueError):
            return {}

    def counter(self, name: str, key: str) -> int:
        return int(self.metrics(name).get("counters", {}).get(key, 0))

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def stop(self, name: str, timeout: float = 10.0) -> int | None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(5)

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def dump(self) -> str:
        """Every service's log tail, for failure messages."""
        return "\n".join(f"--- {n} (exit {p.poll()}) ---\n" + "\n".join(self.log(n).splitlines()[-25:])
                         for n, p in self.procs.items())


def pipeline_env(mode_zmq: bool, redis_url: str, database_url: str, folder: Path) -> dict[str, str]:
    """Env for a whole pipeline on free ports, with one known mispricing injected 4 s after the Kalshi stream
    starts (and no other), so a run has exactly one arbitrage to find."""
    base = free_port_block(5)
    ports = {n: base + i for i, n in enumerate(("kalshi", "poly", "shard", "exec", "tracker"))}
    ep = {k: f"tcp://127.0.0.1:{p}" for k, p in ports.items()}
    state = folder / ".arbees"
    state.mkdir(parents=True, exist_ok=True)
    return {
        "ZMQ_ENABLED": "true" if mode_zmq else "false",
        "REDIS_URL": redis_url, "DATABASE_URL": database_url,
        "ARBEES_HOME": str(folder), "ARBEES_STATE_DIR": str(state),
        "SIM_SEED": "11", "SIM_GAMES": "3", "SIM_RATE": "200", "SIM_MISPRICE_EVERY_S": "0",
        "SIM_MISPRICE_AT_S": "4", "SIM_MISPRICE_CENTS": "12", "SIM_MISPRICE_DURATION_MS": "800",
        "SIM_MISPRICE_VENUE": "kalshi",
        "GAME_COOLDOWN_MS": "60000", "MIN_EDGE_PCT": "0.5", "HEARTBEAT_INTERVAL_SECS": "0.2",
        "LOG_SAMPLE_PER_SEC": "50", "DISCOVERY_INTERVAL_S": "30",
        "ZMQ_SUB_ENDPOINTS": f"{ep['kalshi']},{ep['poly']}",
        "ZMQ_PRICE_ENDPOINTS": f"{ep['kalshi']},{ep['poly']}",
        "ZMQ_SUB_ENDPOINT": ep["shard"],
        "ZMQ_KALSHI_ENDPOINT": ep["kalshi"], "ZMQ_POLYMARKET_ENDPOINT": ep["poly"],
        "ZMQ_GAME_SHARD_ENDPOINT": ep["shard"], "ZMQ_EXECUTION_ENDPOINT": ep["exec"],
        "ZMQ_EXIT_ENDPOINT": ep["tracker"], "ZMQ_POSITION_TRACKER_ENDPOINT": ep["tracker"],
        "_PORT_kalshi_monitor": str(ports["kalshi"]), "_PORT_polymarket_monitor": str(ports["poly"]),
        "_PORT_game_shard": str(ports["shard"]), "_PORT_execution_service": str(ports["exec"]),
        "_PORT_position_tracker": str(ports["tracker"]),
        "PYTHONUNBUFFERED": "1",
        # Normal scheduling unless a caller asks: many test and benchmark stacks share a small machine, and a test
        # about scheduling sets ARBEES_RT_PRIORITY itself (the product default is real-time where permitted).
        "ARBEES_RT_PRIORITY": "0",
    }


def wait_for(condition, timeout: float, what: str, stack: ProcessStack | None = None, interval: float = 0.1):
    """Poll until truthy; on timeout fail with `what` and the services' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not reached within {timeout}s: {what}\n{stack.dump() if stack else ''}")


def start_pipeline(stack: ProcessStack, zmq_mode: bool, timeout: float = 60.0) -> None:
    """Start every service in dependency order and wait until each is ready to take traffic."""
    port = lambda name: stack.env[f"_PORT_{name}"]  # noqa: E731
    stack.start("market_discovery")
    wait_for(lambda: "Discovery: mapped" in stack.log("market_discovery"), timeout, "discovery mapped games", stack)
    stack.start("execution_service", ZMQ_PUB_PORT=port("execution_service"))
    stack.start("game_shard", ZMQ_PUB_PORT=port("game_shard"))
    stack.start("zmq_listener")
    wait_for(lambda: "Loaded market mapping" in stack.log("game_shard"), timeout, "game_shard mapping", stack)
    wait_for(lambda: "Idempotency:" in stack.log("execution_service"), timeout, "execution_service ready", stack)
    if zmq_mode:
        wait_for(lambda: "ZMQ publisher initialized" in stack.log("game_shard"), timeout, "game_shard publisher", stack)
    stack.start("polymarket_monitor", ZMQ_PUB_PORT=port("polymarket_monitor"))
    stack.start("kalshi_monitor", ZMQ_PUB_PORT=port("kalshi_monitor"))
