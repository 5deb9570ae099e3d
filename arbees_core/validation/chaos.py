"""Chaos scenarios: one fault injected into a RUNNING local stack, and the outcome checked with evidence.

A scenario is `(runtime, root, result, **opts) -> None`: it applies its fault, waits for the stack to recover,
and adds checks (criterion, pass/fail, evidence) to `result`. `run_chaos(runtime, root, name)` runs one and
returns the RunResult that `arbees chaos` prints and stores; `ChaosUnavailable` means it could not run (exit 3).

Scenarios (`SCENARIOS`): `kill-<service>` for each service (SIGKILL mid-stream: restarted and counted,
subscribers reconnect, flow resumes; for execution_service the paper-trade ledger stays exact), `redis-outage`,
`postgres-outage` (embedded servers only), `bad-input` (malformed frames on the real sockets/streams, each counted
per reason), `hwm` (alias `slow-joiner`: a stalled subscriber's losses appear as `lost`, never hidden),
`feed-gap` (a venue sequence gap: quotes withdrawn, fresh snapshots, flow resumes), `leg-miss` (the book moves
between a signal and its fill: no naked leg, the miss counted and logged once, trading resumes; `chaos_leg.py`).
Options (all scenarios accept and ignore the others): outage_s (default 30), flow_timeout_s (default 45).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arbees_core.validation.chaos_input import bad_input, hwm
from arbees_core.validation.chaos_leg import leg_miss
from arbees_core.validation.chaos_support import (
    SUBSCRIBERS,
    ChaosUnavailable,
    StackProbe,
    embedded_pg_folder,
    embedded_redis_pid,
    eventually,
    executed_ids,
    ledger,
    mirrored_signals,
    pg_start,
    pg_stop,
    reconnected,
    redis_frozen,
    service_names,
    spool_signals,
    trade_rows,
)
from arbees_core.validation.results import RunResult

Scenario = Callable[..., None]

__all__ = ["ALIASES", "SCENARIOS", "ChaosUnavailable", "run_chaos", "scenario_names"]


def _wait_restarted(probe: StackProbe, service: str, old_pid: int, restarts: int, timeout_s: float) -> Any:
    return eventually(lambda: (lambda r: r if r.state == "running" and r.pid not in (None, old_pid)
                               and r.restarts > restarts else None)(probe.row(service)), timeout_s)


def _flow_resumed(probe: StackProbe, service: str, pid: int, timeout_s: float) -> tuple[bool, str]:
    """The restarted instance does its job: publishes (monitors, shard), mirrors, or executes."""
    key = {"kalshi_monitor": "prices_published", "polymarket_monitor": "prices_published",
           "game_shard": "prices_rx", "execution_service": "rx", "zmq_listener": "mirrored",
           "market_discovery": "discovery_runs"}[service]
    if service == "zmq_listener" and not probe.zmq_mode:
        key = ""  # idle in Redis mode: alive is all it does
    if service == "execution_service" and not probe.zmq_mode:
        key = ""  # Redis mode: prices read on a thread, signals when there are some; alive + consumer group
    if not key:
        ok = bool(eventually(lambda: probe.row(service).health == "healthy", timeout_s))
        return ok, f"{service} healthy (metrics fresh)" if ok else f"{service} not healthy"
    value = eventually(lambda: probe.counter(service, key, pid), timeout_s)
    return bool(value), f"new instance (pid {pid}) {key}={value}"


def _await_trading(probe: StackProbe, timeout_s: float) -> None:
    """Faults on the trading path are injected mid-stream: wait for execution_service's first executed signal."""
    if "execution_service" not in probe.running():
        raise ChaosUnavailable("execution_service is not running; start it with `arbees up execution_service`")
    if not eventually(lambda: probe.counter("execution_service", "signals_executed"), timeout_s):
        raise ChaosUnavailable(f"no signal executed within {timeout_s:.0f}s: nothing is trading to inject a fault "
                               "into (check `arbees phase 3`, or make mispricings more frequent)")


def kill_service(service: str) -> Scenario:
    def scenario(runtime: Any, root: Path, result: RunResult, **opts: Any) -> None:
        probe = StackProbe(runtime)
        flow_s = float(opts.get("flow_timeout_s", 45))
        row = probe.row(service)
        if row.state != "running" or not row.pid:
            raise ChaosUnavailable(f"{service} is not running ({row.state}); start it with `arbees up {service}`")
        if service == "execution_service":
            _await_trading(probe, flow_s)
        before = probe.restarts()
        t0_wall, since_ms = time.time(), int(time.time() * 1000)
        if service == "execution_service":
            signals_before = probe.counter(service, "signals_executed")
        os.kill(row.pid, signal.SIGKILL)
        new = _wait_restarted(probe, service, row.pid, row.restarts, 60)
        result.add(f"{service} restarted after kill -9 and the restart counted", bool(new),
                   f"pid {row.pid} -> {new.pid}, restarts {row.restarts} -> {new.restarts}, last exit "
                   f"{new.exit_code}" if new else f"not running again within 60s: {probe.row(service).state}")
        if not new:
            return
        ok, evidence = _flow_resumed(probe, service, new.pid, flow_s)
        result.add(f"{service} works again after the restart", ok, evidence)
        subs = [s for s in SUBSCRIBERS.get(service, ()) if s in probe.running()] if probe.zmq_mode else []
        port = new.ports[0] if new.ports else None
        for sub in subs:
            ok = bool(eventually(lambda s=sub: reconnected(probe, s, port, t0_wall), flow_s))
            result.add(f"{sub} reconnected to {service}", ok,
                       f"`connected to tcp://...:{port}` in {sub}'s log after the kill" if ok else
                       f"no reconnect line in {sub}'s log within {flow_s:.0f}s")
        others = {n: c - before.get(n, 0) for n, c in probe.restarts().items() if n != service and c != before.get(n, 0)}
        result.add("no other service restarted", not others, ", ".join(f"{n}+{d}" for n, d in others.items()) or "none")
        if service == "execution_service":
            _check_execution_ledger(probe, result, new.pid, since_ms, signals_before, flow_s)

    scenario.__doc__ = f"kill -9 {service} mid-stream: restarted and counted, subscribers reconnect, flow resumes."
    return scenario


def _check_execution_ledger(probe: StackProbe, result: RunResult, pid: int, since_ms: int, signals_before: int,
                            flow_s: float) -> None:
    """After an execution_service restart: a new signal is executed, the ledger is exact, and every signal
    game_shard published around the kill is executed once or counted lost by the restarted instance."""
    executed = eventually(lambda: probe.counter("execution_service", "signals_executed", pid), flow_s)
    result.add("the restarted execution_service executes new signals", bool(executed),
               f"signals_executed={executed} since the restart (before the kill: {signals_before})")
    flushed = eventually(lambda: (probe.field("execution_service", "writer", pid=pid) or {}).get("pending") == 0, 20)
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
    lost = probe.counter("execution_service", "lost", pid)
    result.add("signals around the kill: executed once or counted as lost, never silently missing",
               len(missing) <= lost,
               f"{len(published)} signals published in the window, {len(missing)} not executed, "
               f"{lost} counted lost by the restarted execution_service"
               + (f" (missing: {', '.join(missing[:3])})" if missing else ""))


def redis_outage(runtime: Any, root: Path, result: RunResult, **opts: Any) -> None:
    """Redis unresponsive (SIGSTOP of the embedded server) for `outage_s`; then resumed."""
    probe = StackProbe(runtime)
    pid = embedded_redis_pid(probe)
    outage_s = float(opts.get("outage_s", 30))
    before, zmq_mode = probe.restarts(), probe.zmq_mode
    if zmq_mode:
        _await_trading(probe, float(opts.get("flow_timeout_s", 45)))
    db = probe.urls["DATABASE_URL"]
    t0_wall = time.time()
    rows0, exec0 = trade_rows(db), probe.counter("execution_service", "signals_executed")
    max_backlog = 0
    with redis_frozen(pid):
        deadline = time.monotonic() + outage_s
        while time.monotonic() < deadline:
            max_backlog = max(max_backlog, int(probe.field("zmq_listener", "backlog") or 0))
            time.sleep(0.5)
        rows1, exec1 = trade_rows(db), probe.counter("execution_service", "signals_executed")
        prices1 = probe.counter("game_shard", "prices_rx")
    if zmq_mode:
        result.add("hot path keeps trading while Redis is down (paper_trades grows)", rows1 > rows0 and exec1 > exec0,
                   f"paper_trades {rows0} -> {rows1}, signals executed {exec0} -> {exec1} during {outage_s:g}s")
        result.add("zmq_listener buffers and reports its backlog during the outage", max_backlog > 0,
                   f"max backlog {max_backlog} frames, dropped {probe.field('zmq_listener', 'dropped')}")
        caught_up = eventually(lambda: probe.field("zmq_listener", "redis_available") is True
                               and (probe.field("zmq_listener", "backlog") or 0) == 0, 60)
        result.add("zmq_listener reconnects and catches up", bool(caught_up),
                   f"backlog {probe.field('zmq_listener', 'backlog')}, written {probe.field('zmq_listener', 'written')},"
                   f" dropped {probe.field('zmq_listener', 'dropped')} (counted, bounded by MIRROR_BUFFER_MAX)")
        logged = "back after" in probe.logs_since("zmq_listener", t0_wall)
        result.add("zmq_listener logs the outage and its end", logged and "unavailable" in
                   probe.logs_since("zmq_listener", t0_wall), "`Redis at ... unavailable` / `back after` lines")
    else:
        resumed = eventually(lambda: probe.counter("game_shard", "prices_rx") > prices1 + 5 and all(
            "back after" in probe.logs_since(s, t0_wall) for s in ("game_shard",)), 60)
        result.add("services wait for Redis and reconnect with backoff", bool(resumed),
                   f"game_shard logged `Redis at ... back after`; prices received {prices1} at the end of the "
                   f"outage -> {probe.counter('game_shard', 'prices_rx')}")
        time.sleep(2.0)
    after = probe.restarts()
    crashed = {n: after[n] - before.get(n, 0) for n in after if after[n] != before.get(n, 0)}
    result.add("no crash loop: no service restarted during the outage", not crashed,
               ", ".join(f"{n}+{d}" for n, d in crashed.items()) or "restarts unchanged")


def postgres_outage(runtime: Any, root: Path, result: RunResult, **opts: Any) -> None:
    """Embedded PostgreSQL stopped for `outage_s`, execution_service killed half-way; then started again."""
    probe = StackProbe(runtime)
    folder = embedded_pg_folder(probe)
    outage_s = float(opts.get("outage_s", 30))
    _await_trading(probe, float(opts.get("flow_timeout_s", 45)))
    db, spool = probe.urls["DATABASE_URL"], probe.spool_path()
    before_ids = set(spool_signals(spool))
    t_stop_ns = time.time_ns()
    socket_dir = pg_stop(folder)
    try:
        time.sleep(outage_s / 2)
        row = probe.row("execution_service")
        if row.pid:
            os.kill(row.pid, signal.SIGKILL)
        restarted = _wait_restarted(probe, "execution_service", row.pid or 0, row.restarts, 60)
        time.sleep(max(0.0, outage_s / 2 - 1))
        during = {s for s, ns in spool_signals(spool).items() if ns >= t_stop_ns} - before_ids
        pending = (probe.field("execution_service", "writer") or {}).get("pending", 0)
    finally:
        pg_start(folder, socket_dir)
    result.add("execution_service restarted during the outage and kept filling into the spool",
               bool(restarted) and bool(during),
               f"{len(during)} signals spooled while PostgreSQL was down; writer pending {pending}; restarted "
               f"pid {row.pid} -> {getattr(restarted, 'pid', None)}")
    spooled = set(spool_signals(spool))  # read first: signals keep arriving, later ones are not this check's
    flushed = eventually(lambda: spooled <= executed_ids(db), 60)
    missing = spooled - executed_ids(db)
    result.add("the spool is written to PostgreSQL when it is back: nothing lost", bool(flushed) and not missing,
               f"{len(spooled)} spooled signals (complete after the kill -9), {len(missing)} missing from "
               "executed_signals")
    book = ledger(db)
    result.add("nothing duplicated (each executed signal has exactly its legs, once)", book.consistent, book.text())
    logs = probe.logs_since("execution_service", t_stop_ns / 1e9)
    result.add("the outage is logged, and its end", "PostgreSQL unavailable" in logs and "PostgreSQL back" in logs,
               "`PostgreSQL unavailable ... spooled` and `PostgreSQL back: flushed` in execution_service's log",
               critical=False)


def feed_gap(runtime: Any, root: Path, result: RunResult, **opts: Any) -> None:
    """A Kalshi sequence gap (one delta lost on the venue link, injected through the simulated venue): the monitor
    sees it, withdraws the quotes of the books it can no longer trust, resubscribes for fresh snapshots, and
    prices flow again from those. `.env` and kalshi_monitor are restored afterwards."""
    from arbees_core.config import write_dotenv_value

    probe = StackProbe(runtime)
    flow_s = float(opts.get("flow_timeout_s", 45))
    svc = "kalshi_monitor"
    if probe.row(svc).state != "running":
        raise ChaosUnavailable(f"{svc} is not running; start it with `arbees up {svc}`")
    source = runtime.env(svc).get("KALSHI_SOURCE", "sim") or "sim"
    if source != "sim":
        raise ChaosUnavailable(f"feed-gap drops a delta inside the simulated venue; {svc} runs KALSHI_SOURCE={source}")
    env_file = root / ".env"
    saved = env_file.read_text() if env_file.exists() else None
    t0_wall = time.time()
    write_dotenv_value("SIM_FAULT_GAP_AT_S", "3", env_file)
    try:
        runtime.restart([svc])
        pid = probe.row(svc).pid

        def gauge(name: str) -> int:
            return int(probe.metrics(svc, pid).get("gauges", {}).get(name, 0))

        gaps = eventually(lambda: gauge("venue_gaps"), flow_s)
        result.add("the lost delta is detected as a sequence gap", bool(gaps), f"{svc} venue_gaps={gaps}")
        withdrawn = eventually(lambda: probe.counter(svc, "quotes_withdrawn", pid), 10)
        line = next((ln for ln in probe.logs_since(svc, t0_wall).splitlines() if "until their fresh snapshot" in ln), "")
        result.add("quotes of the invalid books withdrawn, so game_shard cannot trade them", bool(withdrawn),
                   f"quotes_withdrawn={withdrawn}; {line.strip()[:160] or 'no withdrawal line in the log'}")
        resubscribed = eventually(lambda: gauge("venue_resubscribes"), flow_s)
        result.add("fresh snapshots requested (resubscribe)", bool(resubscribed), f"venue_resubscribes={resubscribed}")
        after = probe.counter(svc, "prices_published", pid)
        more = eventually(lambda: probe.counter(svc, "prices_published", pid) > after + 5, flow_s)
        result.add("prices flow again from the fresh books", bool(more),
                   f"prices_published {after} -> {probe.counter(svc, 'prices_published', pid)}")
    finally:
        if saved is None:
            env_file.unlink(missing_ok=True)
        else:
            env_file.write_text(saved)
        runtime.restart([svc])


# -- registry ------------------------------------------------------------------------------------------------------

SCENARIOS: dict[str, Scenario] = {
    **{f"kill-{name}": kill_service(name) for name in service_names()},
    "redis-outage": redis_outage,
    "postgres-outage": postgres_outage,
    "bad-input": bad_input,
    "hwm": hwm,
    "feed-gap": feed_gap,
    "leg-miss": leg_miss,
}
ALIASES = {"slow-joiner": "hwm"}


def scenario_names() -> list[str]:
    return [*SCENARIOS, *ALIASES, "all"]


def run_chaos(runtime: Any, root: Path, scenario: str, **opts: Any) -> RunResult:
    """Run one scenario (or `all`, in registry order) and return its checks. Raises ChaosUnavailable when the
    scenario cannot run at all; under `all` such a scenario is an inconclusive check saying why it did not run,
    so `all` on a stack that can host none of them is exit 3, and one that skipped some is never a pass."""
    name = ALIASES.get(scenario, scenario)
    if name != "all" and name not in SCENARIOS:
        raise ChaosUnavailable(f"unknown scenario {scenario!r}: expected one of {', '.join(scenario_names())}")
    result = RunResult(command=f"chaos {scenario}")
    if name != "all":
        SCENARIOS[name](runtime, root, result, **opts)
        result.data["scenario"] = name
        return result.finish()
    for key, fn in SCENARIOS.items():
        sub = RunResult(command=f"chaos {key}")
        try:
            fn(runtime, root, sub, **opts)
        except ChaosUnavailable as e:
            result.add_inconclusive(f"{key}: not run", str(e), critical=False)
            continue
        for check in sub.checks:  # an inconclusive check stays inconclusive, never a failure nor a pass
            result.checks.append(dataclasses.replace(check, name=f"{key}: {check.name}"))
        result.data.setdefault("scenarios", {})[key] = sub.finish().passed
    return result.finish()
