"""What diagnose probes read from a running stack: services, logs of the current instance, real env, binds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any


from arbees_core import settings as S
from arbees_core.config import ConfigError, Env
from arbees_core.registry import instance_name, spec
from arbees_core.runtime.base import ServiceStatus, parse_utc
from arbees_core.topics import (
    EXECUTION_SERVICE,
    GAME_SHARD,
    KALSHI_MONITOR,
    POLYMARKET_MONITOR,
    ZMQ_LISTENER,
)
from arbees_core.validation.playbook import PLAYBOOK_DIR as PHASE_PLAYBOOKS

#: Targets, in the plan's order of issues.
TARGETS: tuple[str, ...] = ("zmq-listener", "game-shard", "execution-service", "latency")
#: Where the playbooks live: `<project>/playbooks/diagnose/<target>.yaml`.
PLAYBOOK_DIR = PHASE_PLAYBOOKS / "diagnose"

_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z? ")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0", "*"})

#: Which publishers each subscriber's endpoint variables must point at (the services' own defaults when unset).
SUBSCRIPTIONS: dict[str, list[tuple[str, list[str]]]] = {
    ZMQ_LISTENER: [("ZMQ_KALSHI_ENDPOINT", [KALSHI_MONITOR]), ("ZMQ_POLYMARKET_ENDPOINT", [POLYMARKET_MONITOR]),
                   ("ZMQ_GAME_SHARD_ENDPOINT", [GAME_SHARD]), ("ZMQ_EXECUTION_ENDPOINT", [EXECUTION_SERVICE])],
    GAME_SHARD: [("ZMQ_SUB_ENDPOINTS", [KALSHI_MONITOR, POLYMARKET_MONITOR])],
    EXECUTION_SERVICE: [("ZMQ_SUB_ENDPOINT", [GAME_SHARD]), ("ZMQ_PRICE_ENDPOINTS", [KALSHI_MONITOR, POLYMARKET_MONITOR])],
}
#: zmq_listener's one-variable alternative to its four endpoint variables.
LISTENER_LIST_VAR = "ZMQ_LISTENER_ENDPOINTS"

#: Topics by which zmq_listener's `Mirrored <topic> to <stream>` lines name their publisher.
MIRROR_TOPICS: dict[str, tuple[str, ...]] = {
    KALSHI_MONITOR: ("prices.kalshi.", "heartbeat.kalshi_monitor"),
    POLYMARKET_MONITOR: ("prices.poly.", "heartbeat.polymarket_monitor"),
    GAME_SHARD: ("signals.trade.", "heartbeat.game_shard"),
    EXECUTION_SERVICE: ("trades.result.", "heartbeat.execution_service"),
}
#: The venue a monitor serves, as game_shard's `Received price update <venue> ...` lines spell it.
MONITOR_VENUE = {KALSHI_MONITOR: "kalshi", POLYMARKET_MONITOR: "polymarket"}

#: What ZMQ_ENABLED=false means for each service (the fault's second half).
REDIS_MODE_MEANS = {
    KALSHI_MONITOR: "it publishes to Redis streams, not ZMQ",
    POLYMARKET_MONITOR: "it publishes to Redis streams, not ZMQ",
    GAME_SHARD: "it reads prices from and publishes signals to Redis streams, not ZMQ",
    EXECUTION_SERVICE: "it reads signals from the Redis stream signals:trades, not ZMQ",
    ZMQ_LISTENER: "it idles and mirrors nothing",
}

#: Per-hop latency: which service's snapshot holds the hop.
HOP_SOURCES: dict[str, str] = {"price": GAME_SHARD, "signal": EXECUTION_SERVICE, "execution": EXECUTION_SERVICE,
                               "end_to_end": EXECUTION_SERVICE, "mirror": ZMQ_LISTENER}



# -- reading the stack ---------------------------------------------------------------------------------------------


def _fmt_ts(dt: datetime | None) -> str:
    return dt.astimezone(timezone.utc).strftime("%H:%M:%S") + "Z" if dt else "?"


@dataclass
class Bind:
    """Where a publisher binds: its port (tcp) or endpoint (ipc), and what says so."""

    port: int | None
    endpoint: str
    source: str


class Context:
    """One diagnosis's view of the stack, read once per service and shared by the probes."""

    def __init__(self, runtime: Any, since_s: float) -> None:
        self.rt = runtime
        self.since_s = float(since_s)
        self.now = datetime.now(timezone.utc)
        self._status: dict[str, ServiceStatus] = {s.name: s for s in runtime.status()}
        self._env: dict[str, dict[str, str] | None] = {}
        self._env_error: dict[str, str] = {}
        self._lines: dict[str, list[tuple[datetime | None, str]]] = {}
        self._metrics: dict[str, dict[str, Any]] = {}

    # status
    def status(self, name: str) -> ServiceStatus | None:
        return self._status.get(instance_name(name))

    def running(self, name: str) -> bool:
        st = self.status(name)
        return st is not None and st.state == "running"

    def state_text(self, name: str) -> str:
        st = self.status(name)
        if st is None:
            return "missing"
        bits = [st.state]
        if st.exit_code is not None:
            bits.append(f"exit code {st.exit_code}")
        if st.restarts:
            bits.append(f"{st.restarts} restarts")
        return ", ".join(bits)

    def started(self, name: str) -> datetime | None:
        st = self.status(name)
        return st.started if st else None

    def window_start(self, *names: str) -> datetime:
        """The later of `now - since_s` and the current start of each named service."""
        start = self.now - timedelta(seconds=self.since_s)
        for n in names:
            s = self.started(n)
            if s and s > start:
                start = s
        return start

    def window_text(self, start: datetime) -> str:
        secs = (self.now - start).total_seconds()
        return f"last {secs:.0f}s (since {_fmt_ts(start)})"

    # environment
    def env(self, name: str) -> dict[str, str] | None:
        """The running process's real environment; None (with `env_error`) when it cannot be read."""
        name = instance_name(name)
        if name not in self._env:
            if not self.running(name):
                self._env[name] = None
                self._env_error[name] = f"{name} is not running ({self.state_text(name)})"
            else:
                try:
                    self._env[name] = dict(self.rt.env(name))
                except Exception as e:  # noqa: BLE001 - any failure: the probe reports it
                    self._env[name] = None
                    self._env_error[name] = str(e)
        return self._env[name]

    def env_error(self, name: str) -> str:
        return self._env_error.get(instance_name(name), "")

    # logs
    def lines(self, name: str) -> list[tuple[datetime | None, str]]:
        """Log lines of the service's current instance (or of the window when its start is unknown), timestamped."""
        name = instance_name(name)
        if name not in self._lines:
            start = self.started(name)
            span = self.since_s
            if start is not None:
                span = max(span, (self.now - start).total_seconds() + 5.0)
            try:
                text = self.rt.logs(name, since_s=span)
            except Exception:  # noqa: BLE001 - no logs reads as no lines
                text = ""
            out: list[tuple[datetime | None, str]] = []
            last: datetime | None = None
            for line in text.splitlines():
                m = _TS.match(line)
                if m:
                    last = parse_utc(m.group(1))
                out.append((last, line))
            if start is not None:
                out = [(ts, ln) for ts, ln in out if ts is None or ts >= start - timedelta(milliseconds=5)]
            self._lines[name] = out
        return self._lines[name]

    def grep(self, name: str, pattern: str | re.Pattern[str], since: datetime | None = None,
             flags: int = 0) -> list[tuple[datetime | None, re.Match[str], str]]:
        rx = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
        found = []
        for ts, line in self.lines(name):
            if since is not None and (ts is None or ts < since):
                continue
            m = rx.search(line)
            if m:
                found.append((ts, m, line))
        return found

    # metrics
    def metrics(self, name: str) -> dict[str, Any]:
        """The latest snapshot of the *current* instance ({} when the file is from an earlier process)."""
        name = instance_name(name)
        if name not in self._metrics:
            try:
                snap = dict(self.rt.metrics(name) or {})
            except Exception:  # noqa: BLE001
                snap = {}
            st = self.status(name)
            if snap and st is not None and st.pid and snap.get("pid") not in (None, st.pid):
                snap = {}
            self._metrics[name] = snap
        return self._metrics[name]

    def counter(self, name: str, key: str) -> int:
        return int(self.metrics(name).get("counters", {}).get(key, 0))

    # wiring
    def zmq_enabled(self, name: str) -> tuple[bool | None, str]:
        """(enabled, the raw value as the process has it); enabled None when the env cannot be read."""
        env = self.env(name)
        if env is None:
            return None, ""
        raw = S.ZMQ_ENABLED.raw(env)
        if raw is None:
            return False, "<unset: default false>"
        try:
            return Env(env).get(S.ZMQ_ENABLED), raw
        except ConfigError:
            return False, raw

    def bind(self, pub: str) -> Bind:
        """Where `pub` binds: its log line of this instance, else its env, else the runtime's ports, else the
        registry default."""
        found = self.grep(pub, r"ZMQ publisher initialized on port (\S+) \(([^)]*)\)")
        if found:
            _, m, _ = found[-1]
            port = int(m.group(1)) if m.group(1).isdigit() else None
            return Bind(port, m.group(2), "its log line 'ZMQ publisher initialized on port ...'")
        env = self.env(pub) or {}
        if env.get("ZMQ_PUB_ENDPOINT"):
            ep = env["ZMQ_PUB_ENDPOINT"]
            return Bind(_endpoint_port(ep), ep, "its env ZMQ_PUB_ENDPOINT")
        if (env.get("ZMQ_PUB_PORT") or "").strip().isdigit():
            return Bind(int(env["ZMQ_PUB_PORT"]), "", "its env ZMQ_PUB_PORT")
        st = self.status(pub)
        if st is not None and st.ports:
            return Bind(int(st.ports[0]), "", "the runtime's status")
        return Bind(spec(pub).port, "", "the registry default")


def _endpoint_port(endpoint: str) -> int | None:
    m = re.match(r"^tcp://(.+):(\d+)$", endpoint.strip())
    return int(m.group(2)) if m else None


def _endpoint_host(endpoint: str) -> str:
    m = re.match(r"^tcp://(.+):(\d+)$", endpoint.strip())
    return m.group(1) if m else ""


