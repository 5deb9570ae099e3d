"""The process-stack harness: pipeline services as plain child processes, started, read and stopped by a test, a
benchmark or the demo (`arbees_core.demo`).

It is scaffolding around the product, not part of it: no service, runtime or transport module imports it (a test
checks). The supervised local runtime (`runtime/local.py`, `arbees up`) starts services the same way
(`runtime.processes.SERVICE_SESSION`) but owns restarts, pid files and ports itself. A wait that does not come true
raises `NotReached` with every service's log tail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbees_core.polling import eventually
from arbees_core.registry import spec
from arbees_core.runtime.ports import free_port_block
from arbees_core.runtime.processes import SERVICE_SESSION, service_env


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
        env = service_env({**os.environ, **self.env, **overrides})
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


def start_pipeline(stack: ProcessStack, zmq_mode: bool, timeout: float = 60.0) -> None:
    """Start every service in dependency order and wait until each is ready to take traffic."""
    port = lambda name: stack.env[f"_PORT_{name}"]  # noqa: E731

    def logged(name: str, line: str, what: str) -> None:
        eventually(lambda: line in stack.log(name), timeout, what, details=stack.dump)

    stack.start("market_discovery")
    logged("market_discovery", "Discovery: mapped", "discovery mapped games")
    stack.start("execution_service", ZMQ_PUB_PORT=port("execution_service"))
    stack.start("game_shard", ZMQ_PUB_PORT=port("game_shard"))
    stack.start("zmq_listener")
    logged("game_shard", "Loaded market mapping", "game_shard mapping")
    logged("execution_service", "Idempotency:", "execution_service ready")
    if zmq_mode:
        logged("game_shard", "ZMQ publisher initialized", "game_shard publisher")
    stack.start("polymarket_monitor", ZMQ_PUB_PORT=port("polymarket_monitor"))
    stack.start("kalshi_monitor", ZMQ_PUB_PORT=port("kalshi_monitor"))


def wait_for(condition: Callable[[], Any], timeout: float, what: str, stack: ProcessStack | None = None,
             interval: float = 0.1) -> Any:
    """`eventually` with `stack`'s log tails in the `NotReached` message: the benchmarks' form of the wait."""
    return eventually(condition, timeout, what, interval=interval, details=stack.dump if stack else None)
