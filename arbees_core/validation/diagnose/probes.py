"""Probe registry and the wiring probes: services running, ZMQ mode, ports, endpoints, subscriptions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


from arbees_core.registry import spec
from arbees_core.topics import (
    ZMQ_LISTENER,
    tcp_endpoint,
)
from arbees_core.validation.diagnose.context import Bind, Context, LISTENER_LIST_VAR, REDIS_MODE_MEANS, SUBSCRIPTIONS, _LOOPBACK, _endpoint_host, _endpoint_port, _fmt_ts


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


def _each_running(ctx: Context, names: list[str], evidence: list[str]) -> Iterator[str]:
    """The named services that run, in order; each stopped one gets its evidence line instead (the probe has
    nothing to test there: `services_running` is the probe that blames it)."""
    for name in names:
        if ctx.running(name):
            yield name
        else:
            evidence.append(f"{name} not running ({ctx.state_text(name)})")


def _none_running(ctx: Context, names: list[str]) -> bool:
    return not any(ctx.running(n) for n in names)


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
    """The plan's `nc -zv kalshi_monitor 5555`: each running publisher's port, probed where its subscribers
    connect from (the runtime's `probe_port`: loopback locally, inside arbees-network under compose)."""
    timeout = float(params.get("timeout_s", 1.0))
    evidence, faults, details = [], [], {}
    names = _names(params, "publishers")
    for pub in _each_running(ctx, names, evidence):
        b = ctx.bind(pub)
        if b.port is None:
            evidence.append(f"{pub} binds {b.endpoint or 'no TCP port'} ({b.source}): no TCP port to test")
            continue
        found = ctx.rt.probe_port(pub, b.port, timeout)
        details[pub] = {"port": b.port, "ok": found.ok, "evidence": found.evidence,
                        **({"connect_ms": found.connect_ms} if found.connect_ms is not None else {})}
        evidence.append(f"{pub} port {b.port}: {found.evidence}")
        if not found.ok:
            enabled, raw = ctx.zmq_enabled(pub)
            why = f": {pub} has ZMQ_ENABLED={raw} and binds no ZMQ port" if enabled is False else ""
            faults.append(f"{pub} port {b.port} is not reachable ({found.evidence}){why}")
    return _finish(evidence, faults, details, skipped_all=_none_running(ctx, names))


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


