"""`kill-<service>`: the service killed mid-stream (SIGKILL locally, `docker kill` under compose) is restarted
and counted, its subscribers reconnect, its flow resumes; for execution_service the paper-trade ledger stays exact
and every signal published around the kill is executed once or counted lost.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from arbees_core.polling import eventually
from arbees_core.validation.chaos.probe import (SUBSCRIBERS, ChaosUnavailable, StackProbe, executed_ids, ledger,
                                                mirrored_signals, new_instance, port_lines, reconnected)
from arbees_core.validation.chaos.failover import check_failover, victim_games
from arbees_core.validation.results import RunResult

#: The counter a restarted instance's work shows up in (zmq_listener and execution_service in Redis mode: none).
FLOW_COUNTER = {"kalshi_monitor": "prices_published", "polymarket_monitor": "prices_published",
                "game_shard": "prices_rx", "execution_service": "rx", "zmq_listener": "mirrored",
                "market_discovery": "discovery_runs", "position_tracker": "rx"}


def flow_resumed(probe: StackProbe, service: str, since_ns: int, timeout_s: float) -> tuple[bool, str]:
    """The restarted instance (started after `since_ns`) does its job: publishes, mirrors, or executes."""
    key = FLOW_COUNTER.get(service, "")
    if service in ("zmq_listener", "execution_service") and not probe.zmq_mode:
        key = ""  # Redis mode: the listener idles; execution reads prices on a thread and signals when there are some
    if not key:
        ok = bool(eventually(lambda: probe.row(service).health == "healthy", timeout_s, raises=False))
        return ok, f"{service} healthy (metrics fresh)" if ok else f"{service} not healthy"
    value = eventually(lambda: probe.counter(service, key, since_ns), timeout_s, raises=False)
    return bool(value), f"new instance {probe.instance(service)}: {key}={value}"


def await_trading(probe: StackProbe, timeout_s: float) -> None:
    """Faults on the trading path are injected mid-stream: wait for execution_service's first executed signal."""
    if "execution_service" not in probe.running():
        raise ChaosUnavailable("execution_service is not running; start it with `arbees up execution_service`")
    if not eventually(lambda: probe.counter("execution_service", "signals_executed"), timeout_s, raises=False):
        raise ChaosUnavailable(f"no signal executed within {timeout_s:.0f}s: nothing is trading to inject a fault "
                               "into (check `arbees phase 3`, or make mispricings more frequent)")


def _describe(row: Any) -> str:
    return f"pid {row.pid}" if row.pid else f"container {row.container} started {row.started_at[11:23]}"


def kill_service(service: str) -> Any:
    def scenario(runtime: Any, root: Path, result: RunResult, **opts: Any) -> None:
        probe = StackProbe(runtime)
        flow_s = float(opts.get("flow_timeout_s", 45))
        row = probe.row(service)
        if row.state != "running":
            raise ChaosUnavailable(f"{service} is not running ({row.state}); start it with `arbees up {service}`")
        if service == "execution_service":
            await_trading(probe, flow_s)
        victim = victim_games(probe, service)  # several shards: the games that must move
        if victim is not None:
            await_trading(probe, flow_s)
        before = probe.restarts()
        t0_wall, t0_ns, since_ms = time.time(), time.time_ns(), int(time.time() * 1000)
        signals_before = probe.counter(service, "signals_executed")
        probe.fault("kill", service)
        if victim is not None:  # first: the moves are watched as they happen, before the restarted shard rejoins
            check_failover(probe, result, victim, t0_ns, flow_s)
        new = new_instance(probe, service, row, 60)
        result.add(f"{service} restarted after kill -9 and the restart counted", bool(new),
                   f"{_describe(row)} -> {_describe(new)}, restarts {row.restarts} -> {new.restarts}, last exit "
                   f"{new.exit_code}" if new else f"not running again within 60s: {probe.row(service).state}")
        if not new:
            return
        ok, evidence = flow_resumed(probe, service, t0_ns, flow_s)
        result.add(f"{service} works again after the restart", ok, evidence)
        _check_reconnects(probe, result, service, new, t0_wall, flow_s)
        others = {n: c - before.get(n, 0) for n, c in probe.restarts().items() if n != service and c != before.get(n, 0)}
        result.add("no other service restarted", not others, ", ".join(f"{n}+{d}" for n, d in others.items()) or "none")
        if service == "execution_service":
            _check_execution_ledger(probe, result, t0_ns, since_ms, signals_before, flow_s)

    scenario.__doc__ = f"kill -9 {service} mid-stream: restarted and counted, subscribers reconnect, flow resumes."
    return scenario


def _check_reconnects(probe: StackProbe, result: RunResult, service: str, new: Any, t0_wall: float,
                      flow_s: float) -> None:
    """In ZMQ mode every running subscriber of a killed publisher logs a new connection to its port."""
    subs = [s for s in SUBSCRIBERS.get(service, ()) if s in probe.running()] if probe.zmq_mode else []
    if probe.rt.kind == "swarm" and service.startswith("game_shard"):
        # The api reaches `game_shard` by the swarm service's DNS round robin: one replica, maybe not this one.
        subs = [s for s in subs if s != "api"]
    port = new.ports[0] if new.ports else None
    for sub in subs:
        ok = bool(eventually(lambda s=sub: reconnected(probe, s, port, t0_wall), flow_s, raises=False))
        said = "" if ok else "; ".join(port_lines(probe, sub, port, t0_wall)) or f"nothing about port {port}"
        result.add(f"{sub} reconnected to {service}", ok,
                   f"`connected to tcp://...:{port}` in {sub}'s log after the kill" if ok else
                   f"no reconnect line in {sub}'s log within {flow_s:.0f}s (its log since the kill: {said})")


def _check_execution_ledger(probe: StackProbe, result: RunResult, since_ns: int, since_ms: int,
                            signals_before: int, flow_s: float) -> None:
    """After an execution_service restart: a new signal is executed, the ledger is exact, and every signal
    game_shard published around the kill is executed once or counted lost by the restarted instance."""
    executed = eventually(lambda: probe.counter("execution_service", "signals_executed", since_ns), flow_s,
                          raises=False)
    result.add("the restarted execution_service executes new signals", bool(executed),
               f"signals_executed={executed} since the restart (before the kill: {signals_before})")
    flushed = eventually(lambda: (probe.field("execution_service", "writer", since_ns=since_ns) or {}).get("pending")
                         == 0, 20, raises=False)
    db = probe.urls["DATABASE_URL"]
    book = ledger(db)
    result.add("no paper trade lost or duplicated (each executed signal has exactly its legs, once)",
               book.consistent and bool(flushed), book.text() + ("" if flushed else "; spool not flushed"))
    if probe.zmq_mode and "zmq_listener" not in probe.running():
        return  # the signals:trades mirror is the record of what game_shard published
    time.sleep(max(0.0, since_ms / 1000 + 5.0 - time.time()))  # the window covers the restart gap
    until_ms = int(time.time() * 1000) - 2000  # a signal newer than this may still be on its way
    published = mirrored_signals(probe, since_ms - 500, until_ms)  # in flight at the kill, or after it
    missing = sorted(set(published) - executed_ids(db))
    lost = probe.counter("execution_service", "lost", since_ns)
    result.add("signals around the kill: executed once or counted as lost, never silently missing",
               len(missing) <= lost,
               f"{len(published)} signals published in the window, {len(missing)} not executed, "
               f"{lost} counted lost by the restarted execution_service"
               + (f" (missing: {', '.join(missing[:3])})" if missing else ""))
