"""`arbees diagnose <target>`: the plan's "Troubleshooting Common Issues" debug steps, run as code.

Targets follow the plan's issues: `zmq-listener` (Issue 1: zmq_listener not receiving), `game-shard` (Issue 2:
game_shard not receiving prices, plus why it publishes no signals), `execution-service` (Issue 3: execution_service
not receiving signals), `latency` (Issue 4: high latency). `_` is accepted for `-`.

Which probes a target runs, their names and the plan's fix for each live in `playbooks/diagnose/<target>.yaml`;
this module implements every probe id. A probe reads the stack only through the runtime (status, logs, the running
process's real environment, metrics snapshots, resources) plus a TCP connect, the plan's `nc -zv`. Each probe
becomes one `Check`; each fault it finds becomes a finding `{"probe", "fault", "fix"}` in `result.data["findings"]`,
worded with the real values ("game_shard ZMQ_SUB_ENDPOINTS has tcp://127.0.0.1:5557 but kalshi_monitor binds 5555").

Log lines are only counted from the service's current instance (a restarted service's log file still holds the
previous instance's lines), and within `since_s`. A probe that needs a service which is not running says so and is
skipped (advisory): `services_running` names the stopped service once, as the fault.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from arbees_core.registry import spec
from arbees_core.runtime.base import ServiceStatus
from arbees_core.topics import (
    EXECUTION_SERVICE,
    GAME_SHARD,
    KALSHI_MONITOR,
    POLYMARKET_MONITOR,
    ZMQ_LISTENER,
    tcp_endpoint,
)
from arbees_core.validation.results import RunResult

#: Targets, in the plan's order of issues.
TARGETS: tuple[str, ...] = ("zmq-listener", "game-shard", "execution-service", "latency")
#: Where the playbooks live: `<project>/playbooks/diagnose/<target>.yaml`.
PLAYBOOK_DIR = Path(__file__).resolve().parents[2] / "playbooks" / "diagnose"

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
#: The venue a monitor serves, as game_shard's `Price update <venue> ...` lines spell it.
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


class PlaybookError(ValueError):
    """A playbook that cannot be used; the message names the file and what is wrong."""


# -- playbooks -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeSpec:
    """One probe of a playbook: the implemented probe `id`, the check's `name`, the plan's `fix`, and `params`."""

    id: str
    name: str
    fix: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Playbook:
    target: str
    issue: str
    symptom: str
    path: Path
    probes: list[ProbeSpec]


def normalize_target(target: str) -> str:
    """`game_shard` / `Game-Shard` -> `game-shard`; an unknown target is a ValueError listing the known ones."""
    key = target.strip().lower().replace("_", "-")
    if key not in TARGETS:
        raise ValueError(f"unknown diagnose target {target!r}: expected one of {', '.join(TARGETS)}")
    return key


def load_playbook(target: str, folder: Path | None = None) -> Playbook:
    """Read and check `<folder>/<target>.yaml`: every probe id must be implemented here and carry a fix."""
    key = normalize_target(target)
    path = (folder or PLAYBOOK_DIR) / f"{key}.yaml"
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PlaybookError(f"{path}: playbook not found") from None
    except yaml.YAMLError as e:
        raise PlaybookError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("probes"), list) or not doc["probes"]:
        raise PlaybookError(f"{path}: expected a mapping with a non-empty `probes` list")
    probes = []
    for i, raw in enumerate(doc["probes"]):
        if not isinstance(raw, dict) or not raw.get("id"):
            raise PlaybookError(f"{path}: probe #{i + 1} has no `id`")
        pid = str(raw["id"])
        if pid not in PROBES:
            raise PlaybookError(f"{path}: unknown probe id {pid!r} (implemented: {', '.join(sorted(PROBES))})")
        fix = str(raw.get("fix") or "").strip()
        if not fix:
            raise PlaybookError(f"{path}: probe {pid!r} has no `fix`")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise PlaybookError(f"{path}: probe {pid!r}: `params` must be a mapping")
        probes.append(ProbeSpec(pid, str(raw.get("name") or pid), fix, dict(params)))
    return Playbook(key, str(doc.get("issue", "")), str(doc.get("symptom", "")).strip(), path, probes)


def load_all_playbooks(folder: Path | None = None) -> dict[str, Playbook]:
    return {t: load_playbook(t, folder) for t in TARGETS}


# -- reading the stack ---------------------------------------------------------------------------------------------


def _parse_ts(text: str) -> datetime | None:
    """An ISO timestamp (log line or status), as aware UTC; fractions beyond microseconds are dropped."""
    if not text:
        return None
    s = text.strip().replace("Z", "+00:00")
    m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(.*)$", s)
    if not m:
        return None
    frac = (m.group(2) or "")[:7]
    try:
        dt = datetime.fromisoformat(m.group(1) + frac + (m.group(3) or ""))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


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
        return self._status.get(spec(name).name)

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
        return _parse_ts(st.started_at) if st and st.state == "running" else None

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
        name = spec(name).name
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
        return self._env_error.get(spec(name).name, "")

    # logs
    def lines(self, name: str) -> list[tuple[datetime | None, str]]:
        """Log lines of the service's current instance (or of the window when its start is unknown), timestamped."""
        name = spec(name).name
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
                    last = _parse_ts(m.group(1))
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
        name = spec(name).name
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
        raw = env.get("ZMQ_ENABLED")
        if raw is None:
            return False, "<unset: default false>"
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True, raw
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

    def reach_host(self, pub: str) -> str:
        """Host to test a publisher's port from here: loopback for the local runtime, else the service name."""
        if getattr(self.rt, "kind", "") == "local":
            return "127.0.0.1"
        return spec(pub).compose_key


def _endpoint_port(endpoint: str) -> int | None:
    m = re.match(r"^tcp://(.+):(\d+)$", endpoint.strip())
    return int(m.group(2)) if m else None


def _endpoint_host(endpoint: str) -> str:
    m = re.match(r"^tcp://(.+):(\d+)$", endpoint.strip())
    return m.group(1) if m else ""


# -- probes --------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one probe found. `faults` become findings; `skipped` makes the check advisory (nothing to test)."""

    passed: bool
    evidence: str
    faults: list[str] = field(default_factory=list)
    skipped: bool = False
    details: dict[str, Any] = field(default_factory=dict)


ProbeFn = Callable[[Context, dict[str, Any]], Outcome]
PROBES: dict[str, ProbeFn] = {}


def probe(pid: str) -> Callable[[ProbeFn], ProbeFn]:
    def register(fn: ProbeFn) -> ProbeFn:
        PROBES[pid] = fn
        return fn

    return register


def _names(params: dict[str, Any], key: str = "services", default: list[str] | None = None) -> list[str]:
    return [spec(n).name for n in (params.get(key) or default or [])]


def _skip(text: str) -> Outcome:
    return Outcome(False, f"skipped: {text}", skipped=True)


def _finish(evidence: list[str], faults: list[str], details: dict[str, Any] | None = None,
            skipped_all: bool = False) -> Outcome:
    if skipped_all and not faults:
        return Outcome(False, "skipped: " + "; ".join(evidence), skipped=True, details=details or {})
    return Outcome(not faults, "; ".join(evidence), faults, details=details or {})


@probe("services_running")
def p_services_running(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker ps | grep -E "kalshi_monitor|..."`: each named service is running."""
    evidence, faults = [], []
    for name in _names(params):
        st = ctx.status(name)
        if st is not None and st.state == "running":
            evidence.append(f"{name} running (pid {st.pid}, since {_fmt_ts(ctx.started(name))}"
                            + (f", {st.restarts} restarts" if st.restarts else "") + ")")
        else:
            text = ctx.state_text(name)
            evidence.append(f"{name} {text}")
            faults.append(f"{name} is {text}: it is not running")
    return _finish(evidence, faults)


@probe("zmq_enabled")
def p_zmq_enabled(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker exec kalshi_monitor env | grep ZMQ_ENABLED`, on every named service's real environment."""
    evidence, faults, skipped = [], [], 0
    names = _names(params)
    for name in names:
        enabled, raw = ctx.zmq_enabled(name)
        if enabled is None:
            evidence.append(f"{name}: env not read ({ctx.env_error(name)})")
            skipped += 1
        elif enabled:
            evidence.append(f"{name} ZMQ_ENABLED={raw}")
        else:
            evidence.append(f"{name} ZMQ_ENABLED={raw}")
            faults.append(f"{name} has ZMQ_ENABLED={raw}: {REDIS_MODE_MEANS.get(name, 'it runs in Redis mode')}")
    return _finish(evidence, faults, skipped_all=skipped == len(names))


@probe("port_reachable")
def p_port_reachable(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `nc -zv kalshi_monitor 5555`: a TCP connect to each running publisher's port, timed."""
    timeout = float(params.get("timeout_s", 1.0))
    evidence, faults, skipped, details = [], [], 0, {}
    names = _names(params, "publishers")
    for pub in names:
        if not ctx.running(pub):
            evidence.append(f"{pub} not running ({ctx.state_text(pub)})")
            skipped += 1
            continue
        b = ctx.bind(pub)
        if b.port is None:
            evidence.append(f"{pub} binds {b.endpoint or 'no TCP port'} ({b.source}): no TCP port to test")
            continue
        host = ctx.reach_host(pub)
        t0 = time.perf_counter()
        try:
            with socket.create_connection((host, b.port), timeout=timeout):
                ms = (time.perf_counter() - t0) * 1000
            details[pub] = {"host": host, "port": b.port, "connect_ms": round(ms, 3)}
            evidence.append(f"{host}:{b.port} ({pub}) connection succeeded in {ms:.2f}ms")
        except OSError as e:
            details[pub] = {"host": host, "port": b.port, "error": str(e)}
            evidence.append(f"{host}:{b.port} ({pub}) failed: {e}")
            enabled, raw = ctx.zmq_enabled(pub)
            why = (f": {pub} has ZMQ_ENABLED={raw} and binds no ZMQ port" if enabled is False
                   else f" ({e.strerror or e})")
            faults.append(f"{pub} port {b.port} is not reachable at {host}:{b.port}{why}")
    return _finish(evidence, faults, details, skipped_all=skipped == len(names))


def _subscriber_endpoints(ctx: Context, sub: str) -> list[tuple[str, list[str], list[str], bool]]:
    """(variable, endpoints, expected publishers, from_default) of each endpoint variable of `sub`'s env."""
    env = ctx.env(sub) or {}
    out = []
    if sub == ZMQ_LISTENER and (env.get(LISTENER_LIST_VAR) or "").strip():
        eps = [e.strip() for e in env[LISTENER_LIST_VAR].split(",") if e.strip()]
        return [(LISTENER_LIST_VAR, eps, [p for _, ps in SUBSCRIPTIONS[ZMQ_LISTENER] for p in ps], False)]
    for var, pubs in SUBSCRIPTIONS[sub]:
        raw = (env.get(var) or "").strip()
        if raw:
            out.append((var, [e.strip() for e in raw.split(",") if e.strip()], pubs, False))
        else:  # the service's own default: the plan's ports on 127.0.0.1
            out.append((var, [tcp_endpoint("127.0.0.1", int(spec(p).port)) for p in pubs], pubs, True))
    return out


def _matches(ctx: Context, endpoint: str, pub: str, b: Bind) -> bool:
    if b.endpoint and not b.endpoint.startswith("tcp://"):
        return endpoint.strip() == b.endpoint
    port = _endpoint_port(endpoint)
    if port is None or port != b.port:
        return False
    host = _endpoint_host(endpoint)
    if getattr(ctx.rt, "kind", "") == "local":
        return host in _LOOPBACK or host == (ctx.env(pub) or {}).get("ZMQ_BIND_HOST", "")
    st = ctx.status(pub)
    return host in {pub, spec(pub).compose_key, st.container if st else "", "127.0.0.1", "localhost"}


def _binds_text(b: Bind) -> str:
    return str(b.port) if b.port is not None and (not b.endpoint or b.endpoint.startswith("tcp://")) else b.endpoint


@probe("endpoints_match")
def p_endpoints_match(ctx: Context, params: dict[str, Any]) -> Outcome:
    """Every endpoint in the subscriber's env points at the port its publisher actually binds."""
    sub = spec(params["subscriber"]).name
    if ctx.env(sub) is None:
        return _skip(f"{sub} env not read ({ctx.env_error(sub)})")
    evidence, faults, details = [], [], {}
    for var, endpoints, pubs, from_default in _subscriber_endpoints(ctx, sub):
        binds = {p: ctx.bind(p) for p in pubs}
        shown = ",".join(endpoints) + (" (unset: the default)" if from_default else "")
        evidence.append(f"{sub} {var}={shown}")
        details[var] = {"endpoints": endpoints, "binds": {p: _binds_text(b) for p, b in binds.items()}}
        matched: dict[str, str] = {}
        unmatched: list[str] = []
        for ep in endpoints:
            pub = next((p for p in pubs if p not in matched and _matches(ctx, ep, p, binds[p])), None)
            if pub is None:
                unmatched.append(ep)
            else:
                matched[pub] = ep
        missing = [p for p in pubs if p not in matched]
        for pub, ep in matched.items():
            evidence.append(f"{ep} -> {pub} binds {_binds_text(binds[pub])} ({binds[pub].source})")
        for ep, pub in zip(unmatched, missing):
            faults.append(f"{sub} {var} has {ep} but {pub} binds {_binds_text(binds[pub])}")
        for ep in unmatched[len(missing):]:
            faults.append(f"{sub} {var} has {ep}, which no publisher it needs binds")
        for pub in missing[len(unmatched):]:
            faults.append(f"{sub} {var} has no endpoint for {pub}, which binds {_binds_text(binds[pub])}")
    return _finish(evidence, faults, details)


@probe("subscriber_connected")
def p_subscriber_connected(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs game_shard | grep -i "zmq.*connect"`: a "ZMQ subscriber connected to <endpoint>"
    line for each endpoint in the subscriber's env, since it started, not followed by a lost connection."""
    sub = spec(params["subscriber"]).name
    if ctx.env(sub) is None:
        return _skip(f"{sub} env not read ({ctx.env_error(sub)})")
    enabled, raw = ctx.zmq_enabled(sub)
    if not enabled:
        return Outcome(False, f"{sub} ZMQ_ENABLED={raw}: no ZMQ subscriber",
                       [f"{sub} has ZMQ_ENABLED={raw}: it opens no ZMQ subscriber "
                        f"({REDIS_MODE_MEANS.get(sub, 'Redis mode')})"])
    evidence, faults = [], []
    since = ctx.started(sub)
    for var, endpoints, _pubs, _default in _subscriber_endpoints(ctx, sub):
        for ep in endpoints:
            events = ctx.grep(sub, re.compile(r"(connected to|lost connection to) " + re.escape(ep) + r"(?:\s|;|$)"))
            connects = [e for e in events if e[1].group(1) == "connected to"]
            if events and events[-1][1].group(1) == "connected to":
                evidence.append(f"'ZMQ subscriber connected to {ep}' at {_fmt_ts(events[-1][0])}")
            elif connects:
                evidence.append(f"{ep}: connected at {_fmt_ts(connects[-1][0])}, lost at {_fmt_ts(events[-1][0])}")
                faults.append(f"{sub} lost its connection to {ep} ({var}) at {_fmt_ts(events[-1][0])} "
                              "and has not reconnected")
            else:
                evidence.append(f"{ep}: no 'connected' line")
                faults.append(f"{sub} has no 'ZMQ subscriber connected to {ep}' line since it started at "
                              f"{_fmt_ts(since)} ({var}): nothing accepts connections there")
    return _finish(evidence, faults)


@probe("publishing")
def p_publishing(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs kalshi_monitor | grep -i publish` (and "is its venue feed connected"): each monitor
    logged `Published prices...` lines in the window and its venue feed delivers messages."""
    evidence, faults, skipped = [], [], 0
    names = _names(params, "publishers")
    for pub in names:
        if not ctx.running(pub):
            evidence.append(f"{pub} not running ({ctx.state_text(pub)})")
            skipped += 1
            continue
        start = ctx.window_start(pub)
        lines = ctx.grep(pub, r"Published (prices\.\S+) ", since=start)
        published, venue_rx = ctx.counter(pub, "prices_published"), ctx.counter(pub, "venue_rx")
        evidence.append(f"{pub}: {len(lines)} 'Published prices...' lines in the {ctx.window_text(start)}, "
                        f"counters prices_published={published} venue_rx={venue_rx}")
        if not lines:
            if ctx.metrics(pub) and venue_rx == 0:
                faults.append(f"{pub} received nothing from its venue feed since it started (venue_rx=0), "
                              "so it publishes nothing")
            else:
                faults.append(f"{pub} published no prices in the {ctx.window_text(start)} "
                              f"(prices_published={published}, venue_rx={venue_rx})")
    return _finish(evidence, faults, skipped_all=skipped == len(names))


@probe("mirrored")
def p_mirrored(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs zmq_listener | grep -i "mirrored"`, per publisher: `Mirrored <topic> to <stream>`
    lines naming its topics since both it and zmq_listener (re)started, within the window."""
    listener = ZMQ_LISTENER
    if not ctx.running(listener):
        return _skip(f"{listener} is not running ({ctx.state_text(listener)})")
    evidence = [f"{listener} counter mirrored={ctx.counter(listener, 'mirrored')}"]
    faults, details = [], {}
    rx = re.compile(r"Mirrored (\S+) to (\S+)")
    for pub in _names(params, "publishers"):
        if not ctx.running(pub):
            evidence.append(f"{pub} not running ({ctx.state_text(pub)})")
            continue
        start = ctx.window_start(listener, pub)
        hits = [h for h in ctx.grep(listener, rx, since=start) if h[1].group(1).startswith(MIRROR_TOPICS[pub])]
        streams = sorted({h[1].group(2) for h in hits})
        details[pub] = {"lines": len(hits), "streams": streams}
        evidence.append(f"{pub}: {len(hits)} 'Mirrored' lines ({', '.join(streams) or 'none'}) "
                        f"in the {ctx.window_text(start)}")
        if not hits:
            enabled, raw = ctx.zmq_enabled(pub)
            why = f": {pub} has ZMQ_ENABLED={raw}" if enabled is False else ""
            faults.append(f"{listener} mirrored nothing from {pub} in the {ctx.window_text(start)}{why}")
    return _finish(evidence, faults, details)


@probe("prices_received")
def p_prices_received(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs game_shard | grep "price update"`, per venue, plus its `prices_rx` counter."""
    sub = spec(params.get("subscriber", GAME_SHARD)).name
    if not ctx.running(sub):
        return _skip(f"{sub} is not running ({ctx.state_text(sub)})")
    start = ctx.window_start(sub)
    lines = ctx.grep(sub, r"Price update (\S+) (\S+)", since=start)
    by_venue: dict[str, int] = {}
    for _, m, _ in lines:
        by_venue[m.group(1)] = by_venue.get(m.group(1), 0) + 1
    evidence = [f"{sub}: prices_rx={ctx.counter(sub, 'prices_rx')}, 'Price update' lines in the "
                f"{ctx.window_text(start)}: " + (", ".join(f"{v} {n}" for v, n in sorted(by_venue.items())) or "none")]
    faults = []
    for pub in _names(params, "publishers"):
        venue = MONITOR_VENUE[pub]
        if by_venue.get(venue):
            continue
        others = ", ".join(f"{v}: {n}" for v, n in sorted(by_venue.items())) or "no venue"
        faults.append(f"{sub} received no {venue} price updates from {pub} in the {ctx.window_text(start)} "
                      f"({others} price update lines)")
    return _finish(evidence, faults, {"by_venue": by_venue})


def _edge_pct_text(env: dict[str, str] | None, snap: dict[str, Any]) -> str:
    raw = (env or {}).get("MIN_EDGE_PCT")
    if raw is not None and raw.strip():
        return f"MIN_EDGE_PCT={raw.strip()}"
    value = snap.get("min_edge_pct")
    return f"MIN_EDGE_PCT={value:g} (default)" if isinstance(value, (int, float)) else "MIN_EDGE_PCT (default)"


def why_no_signals(ctx: Context) -> str:
    """Why game_shard published no signal, from its data: not running, no prices, no mapping, edges below
    MIN_EDGE_PCT (with the best edge seen), no positive edge at all, or cooldown."""
    gs = GAME_SHARD
    if not ctx.running(gs):
        return f"{gs} is {ctx.state_text(gs)}"
    snap = ctx.metrics(gs)
    if not snap:
        return f"{gs} has written no metrics snapshot since it started"
    c = snap.get("counters", {})
    prices, mapped = int(c.get("prices_rx", 0)), snap.get("games_mapped")
    max_edge, min_edge = snap.get("max_edge_pct_10min"), snap.get("min_edge_pct")
    threshold = _edge_pct_text(ctx.env(gs), snap)
    if prices == 0:
        return f"{gs} received no prices since it started (prices_rx=0)"
    if mapped == 0:
        return (f"{gs} has no game mapping (games_mapped=0; {c.get('prices_unmapped', 0)} prices unmapped): "
                "is market_discovery running?")
    if max_edge is None:
        return (f"no pair had a positive edge after fees in the last 10 min ({prices} prices received, "
                f"{mapped} games mapped, {threshold})")
    if isinstance(min_edge, (int, float)) and max_edge < min_edge:
        return f"{threshold} is above every edge seen in the last 10 min (max {max_edge:g}%)"
    if c.get("arbs_in_cooldown"):
        return (f"every opportunity (max edge {max_edge:g}%) came during the game cooldown "
                f"({c['arbs_in_cooldown']} in cooldown; GAME_COOLDOWN_MS={(ctx.env(gs) or {}).get('GAME_COOLDOWN_MS', 'default')})")
    return f"edges up to {max_edge:g}% were seen ({threshold}) but none was published; see the game_shard log"


@probe("signals_published")
def p_signals_published(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs game_shard | grep "Published signal"` / `grep "arbitrage"`; when there is none,
    the reason from data (MIN_EDGE_PCT vs the best edge of the last 10 minutes, prices, mapping, cooldown)."""
    gs = GAME_SHARD
    if not ctx.running(gs):
        return _skip(f"{gs} is not running ({ctx.state_text(gs)})")
    start = ctx.window_start(gs)
    published = ctx.grep(gs, r"Published signal to (\S+): (\S+)", since=start)
    arbs = ctx.grep(gs, r"Arbitrage detected in ", since=start)
    snap = ctx.metrics(gs)
    c = snap.get("counters", {})
    via = sorted({m.group(1) for _, m, _ in published})
    evidence = [f"{len(published)} 'Published signal to {'/'.join(via) or 'ZMQ'}' and {len(arbs)} 'Arbitrage "
                f"detected' lines in the {ctx.window_text(start)}",
                f"signals_published={c.get('signals_published', 0)}, max_edge_pct_10min="
                f"{snap.get('max_edge_pct_10min')}, {_edge_pct_text(ctx.env(gs), snap)}"]
    details = {"published_lines": len(published), "max_edge_pct_10min": snap.get("max_edge_pct_10min"),
               "min_edge_pct": snap.get("min_edge_pct")}
    if published:
        return Outcome(True, "; ".join(evidence), details=details)
    reason = why_no_signals(ctx)
    details["reason"] = reason
    return Outcome(False, "; ".join(evidence), [f"{gs} published no signals: no signals because {reason}"],
                   details=details)


@probe("signals_received")
def p_signals_received(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs execution_service | grep -i "received signal"`, against game_shard's
    `Published signal` lines over the same window (both services' current instances)."""
    ex, gs = EXECUTION_SERVICE, GAME_SHARD
    if not ctx.running(ex):
        return _skip(f"{ex} is not running ({ctx.state_text(ex)})")
    start = ctx.window_start(ex, gs)
    received = ctx.grep(ex, r"Received signal via (\S+): (\S+)", since=start)
    published = ctx.grep(gs, r"Published signal to (\S+): (\S+)", since=start) if ctx.running(gs) else []
    evidence = [f"{len(received)} 'Received signal' lines ({ex}) vs {len(published)} 'Published signal' lines "
                f"({gs}) in the {ctx.window_text(start)}",
                f"counters: {ex} signals_rx={ctx.counter(ex, 'signals_rx')} "
                f"signals_executed={ctx.counter(ex, 'signals_executed')}, "
                f"{gs} signals_published={ctx.counter(gs, 'signals_published')}"]
    details = {"received_lines": len(received), "published_lines": len(published)}
    if received:
        return Outcome(True, "; ".join(evidence), details=details)
    if not ctx.running(gs):
        fault = f"{ex} received no signals: {gs} is {ctx.state_text(gs)}"
    elif not published:
        fault = f"{ex} received no signals because {gs} published none: no signals because {why_no_signals(ctx)}"
    else:
        ex_on, ex_raw = ctx.zmq_enabled(ex)
        gs_on, gs_raw = ctx.zmq_enabled(gs)
        if ex_on is not None and gs_on is not None and ex_on != gs_on:
            cause = f": {gs} has ZMQ_ENABLED={gs_raw} but {ex} has ZMQ_ENABLED={ex_raw}"
        else:
            cause = " (check its signal endpoint and connection)"
        fault = f"{ex} received none of the {len(published)} signals {gs} published in the " \
                f"{ctx.window_text(start)}{cause}"
    return Outcome(False, "; ".join(evidence), [fault], details=details)


@probe("mode")
def p_mode(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs game_shard | grep -i "mode"`: "ZMQ mode enabled" vs "Connected to Redis (Redis
    mode)" in each service's current log, confirmed by its metrics snapshot's `mode`."""
    expect = str(params.get("expect", "zmq"))
    evidence, faults, skipped, details = [], [], 0, {}
    names = _names(params)
    for name in names:
        if not ctx.running(name):
            evidence.append(f"{name} not running ({ctx.state_text(name)})")
            skipped += 1
            continue
        zmq_line = ctx.grep(name, r"ZMQ mode enabled")
        redis_line = ctx.grep(name, r"\(Redis mode\)")
        snap_mode = ctx.metrics(name).get("mode")
        mode = "zmq" if zmq_line else "redis" if redis_line else snap_mode
        details[name] = mode
        said = ("'ZMQ mode enabled'" if zmq_line else "'Connected to Redis (Redis mode)'" if redis_line
                else "no mode line")
        evidence.append(f"{name}: {mode or 'unknown'} ({said}; snapshot mode={snap_mode})")
        if mode is None:
            faults.append(f"{name} logged no mode line since it started and wrote no snapshot: mode unknown")
        elif mode != expect:
            _, raw = ctx.zmq_enabled(name)
            faults.append(f"{name} runs in {mode.upper() if mode == 'zmq' else 'Redis'} mode, not {expect.upper()}: "
                          f"its log says {said} (ZMQ_ENABLED={raw or '?'})")
    return _finish(evidence, faults, details, skipped_all=skipped == len(names))


@probe("payload_size")
def p_payload_size(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs kalshi_monitor | grep "payload.*bytes"`: every payload below `max_bytes` (10 KB)."""
    limit = int(params.get("max_bytes", 10240))
    evidence, faults, skipped, details = [], [], 0, {}
    names = _names(params, "publishers")
    for pub in names:
        if not ctx.running(pub):
            evidence.append(f"{pub} not running ({ctx.state_text(pub)})")
            skipped += 1
            continue
        start = ctx.window_start(pub)
        sizes = [int(m.group(1)) for _, m, _ in ctx.grep(pub, r"payload (\d+) bytes", since=start)]
        if not sizes:
            evidence.append(f"{pub}: no 'payload N bytes' lines in the {ctx.window_text(start)}")
            faults.append(f"{pub} logged no 'payload N bytes' line in the {ctx.window_text(start)}: "
                          "payload size unknown (is it publishing?)")
            continue
        details[pub] = {"count": len(sizes), "max_bytes": max(sizes), "mean_bytes": round(sum(sizes) / len(sizes), 1)}
        evidence.append(f"{pub}: {len(sizes)} payloads, max {max(sizes)} bytes, mean {sum(sizes) / len(sizes):.0f} "
                        f"bytes (limit {limit})")
        if max(sizes) >= limit:
            faults.append(f"{pub} publishes payloads up to {max(sizes)} bytes, above the plan's {limit} bytes")
    return _finish(evidence, faults, details, skipped_all=skipped == len(names))


@probe("cpu")
def p_cpu(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker stats --no-stream`: CPU % of each named service over `sample_s`, below `max_pct` (50)."""
    limit = float(params.get("max_pct", 50.0))
    sample_s = float(params.get("sample_s", 1.0))
    names = [n for n in _names(params) if ctx.running(n)]
    stopped = [n for n in _names(params) if n not in names]
    evidence = [f"{n} not running ({ctx.state_text(n)})" for n in stopped]
    if not names:
        return _skip("; ".join(evidence))
    for n in names:
        ctx.rt.resources(n)  # the first reading starts the CPU measurement interval
    time.sleep(sample_s)
    faults, details = [], {}
    for n in names:
        res = ctx.rt.resources(n) or {}
        cpu = res.get("cpu_pct")
        details[n] = res
        if cpu is None:
            evidence.append(f"{n}: no resource reading")
            continue
        evidence.append(f"{n} {cpu:.1f}% CPU over {sample_s:g}s, RSS {res.get('rss_mb', 0):.0f} MB (limit {limit:g}%)")
        if cpu >= limit:
            faults.append(f"{n} uses {cpu:.0f}% CPU, above the plan's {limit:g}%")
    return _finish(evidence, faults, details)


@probe("hop_latency")
def p_hop_latency(ctx: Context, params: dict[str, Any]) -> Outcome:
    """Per-hop p50/p99 from the services' metrics snapshots (HDR histograms since each started); a hop whose p50
    is above its limit in `max_p50_ms` (the plan: end-to-end above 200 ms is worse than Redis) is a fault."""
    limits = {str(k): float(v) for k, v in (params.get("max_p50_ms") or {}).items()}
    hops = params.get("hops") or list(HOP_SOURCES)
    evidence, faults, details, missing = [], [], {}, []
    for hop in hops:
        svc = HOP_SOURCES[hop]
        h = ctx.metrics(svc).get("latency", {}).get(hop) if ctx.running(svc) else None
        if not h or not h.get("count"):
            missing.append(f"{hop} ({svc})")
            continue
        p50, p99 = h["p50_us"] / 1000, h["p99_us"] / 1000
        details[hop] = {"service": svc, "count": h["count"], "p50_ms": p50, "p99_ms": p99, "max_ms": h["max_us"] / 1000}
        evidence.append(f"{hop}: p50 {p50:.3f}ms p99 {p99:.3f}ms (n={h['count']}, {svc})")
        if hop in limits and p50 > limits[hop]:
            faults.append(f"{hop} latency p50 is {p50:.1f}ms (p99 {p99:.1f}ms), above {limits[hop]:g}ms")
    if missing:
        evidence.append("no samples yet: " + ", ".join(missing))
    if not details:
        return _skip("; ".join(evidence))
    return _finish(evidence, faults, details)


# -- running a diagnosis -------------------------------------------------------------------------------------------


def diagnose(runtime: Any, target: str, since_s: float = 600, playbook_dir: Path | None = None) -> RunResult:
    """Run the target's playbook against a running stack: one Check per probe, one finding per fault.

    `result.data`: {"target", "issue", "playbook", "since_s", "findings": [{"probe", "fault", "fix"}],
    "probes": {<id>: details}}. Raises ValueError for an unknown target and PlaybookError for a bad playbook.
    """
    book = load_playbook(target, playbook_dir)
    result = RunResult(command=f"diagnose {book.target}")
    ctx = Context(runtime, since_s)
    findings: list[dict[str, str]] = []
    probes: dict[str, Any] = {}
    for p in book.probes:
        try:
            out = PROBES[p.id](ctx, p.params)
        except Exception as e:  # noqa: BLE001 - a probe that breaks is reported, the others still run
            out = Outcome(False, f"probe failed: {type(e).__name__}: {e}", [f"probe {p.id} could not run: {e}"])
        evidence = out.evidence
        if out.faults:
            evidence = "FAULT: " + " | ".join(out.faults) + " -- " + evidence
        result.add(p.name, out.passed, evidence, critical=not out.skipped)
        findings += [{"probe": p.id, "fault": f, "fix": p.fix} for f in out.faults]
        if out.details:
            probes[p.id] = out.details
    result.data = {"target": book.target, "issue": book.issue, "playbook": str(book.path), "since_s": since_s,
                   "findings": findings, "probes": probes}
    return result.finish()
