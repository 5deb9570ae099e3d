"""Outages of the stack's own servers: `redis-outage` (Redis frozen: the hot path keeps trading in ZMQ mode,
the mirror buffers and catches up; in Redis mode the services wait and reconnect, no crash loop) and
`postgres-outage` (PostgreSQL stopped, execution_service killed half-way: trades are spooled and written when it is
back, nothing lost or duplicated).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from arbees_core.polling import eventually
from arbees_core.validation.chaos.kill import await_trading
from arbees_core.validation.chaos.probe import StackProbe, executed_ids, ledger, new_instance, trade_rows
from arbees_core.validation.results import RunResult


def redis_outage(runtime: Any, root: Path, result: RunResult, **opts: Any) -> None:
    """Redis unresponsive (SIGSTOP of the embedded server, `docker pause` of arbees-redis) for `outage_s`; then
    resumed."""
    probe = StackProbe(runtime)
    outage_s = float(opts.get("outage_s", 30))
    before, zmq_mode = probe.restarts(), probe.zmq_mode
    if zmq_mode:
        await_trading(probe, float(opts.get("flow_timeout_s", 45)))
    db = probe.urls["DATABASE_URL"]
    t0_wall = time.time()
    rows0, exec0 = trade_rows(db), probe.counter("execution_service", "signals_executed")
    max_backlog = 0
    with probe.paused("redis"):
        deadline = time.monotonic() + outage_s
        while time.monotonic() < deadline:
            max_backlog = max(max_backlog, int(probe.field("zmq_listener", "backlog") or 0))
            time.sleep(0.5)
        # a fill during the outage shows in PostgreSQL once the writer has stored it and in the counter with the
        # next metrics snapshot: wait a few seconds (still paused) for both before reading them
        grew = lambda: (trade_rows(db), probe.counter("execution_service", "signals_executed"))  # noqa: E731
        rows1, exec1 = eventually(lambda: (lambda r: r if r[0] > rows0 and r[1] > exec0 else None)(grew()), 5.0,
                                  raises=False) or grew()
        prices1 = probe.counter("game_shard", "prices_rx")
    if zmq_mode:
        result.add("hot path keeps trading while Redis is down (paper_trades grows)", rows1 > rows0 and exec1 > exec0,
                   f"paper_trades {rows0} -> {rows1}, signals executed {exec0} -> {exec1} during {outage_s:g}s")
        result.add("zmq_listener buffers and reports its backlog during the outage", max_backlog > 0,
                   f"max backlog {max_backlog} frames, dropped {probe.field('zmq_listener', 'dropped')}")
        caught_up = eventually(lambda: probe.field("zmq_listener", "redis_available") is True
                               and (probe.field("zmq_listener", "backlog") or 0) == 0, 60, raises=False)
        result.add("zmq_listener reconnects and catches up", bool(caught_up),
                   f"backlog {probe.field('zmq_listener', 'backlog')}, written {probe.field('zmq_listener', 'written')},"
                   f" dropped {probe.field('zmq_listener', 'dropped')} (counted, bounded by MIRROR_BUFFER_MAX)")
        lines = eventually(lambda: _outage_lines(probe.logs_since("zmq_listener", t0_wall)), 20, raises=False) or \
            _outage_lines(probe.logs_since("zmq_listener", t0_wall), complete=False)
        result.add("zmq_listener logs the outage and its end", len(lines) == 2 and all(lines),
                   " / ".join(line or "(missing)" for line in lines) or "no `Redis unavailable` / `back after` line")
    else:
        resumed = eventually(lambda: probe.counter("game_shard", "prices_rx") > prices1 + 5 and all(
            "back after" in probe.logs_since(s, t0_wall) for s in ("game_shard",)), 60, raises=False)
        result.add("services wait for Redis and reconnect with backoff", bool(resumed),
                   f"game_shard logged `Redis back after ...`; prices received {prices1} at the end of the "
                   f"outage -> {probe.counter('game_shard', 'prices_rx')}")
        time.sleep(2.0)
    after = probe.restarts()
    crashed = {n: after[n] - before.get(n, 0) for n in after if after[n] != before.get(n, 0)}
    result.add("no crash loop: no service restarted during the outage", not crashed,
               ", ".join(f"{n}+{d}" for n, d in crashed.items()) or "restarts unchanged")


def _outage_lines(log: str, complete: bool = True) -> list[str]:
    """The first `Redis ... unavailable` line and the first `... back after` line of `log` (both, or [] while
    one is missing; with complete=False, whatever was found, '' for a missing one)."""
    down = next((ln.strip()[:200] for ln in log.splitlines() if "Redis" in ln and "unavailable" in ln), "")
    back = next((ln.strip()[:200] for ln in log.splitlines() if "back after" in ln), "")
    return [down, back] if (down and back) or not complete else []


def postgres_outage(runtime: Any, root: Path, result: RunResult, **opts: Any) -> None:
    """PostgreSQL stopped (the embedded server's `pg_ctl stop`, `docker stop` of arbees-timescaledb) for
    `outage_s`, execution_service killed half-way; then started again."""
    probe = StackProbe(runtime)
    outage_s = float(opts.get("outage_s", 30))
    await_trading(probe, float(opts.get("flow_timeout_s", 45)))
    before_ids = set(probe.spool_signals())
    t_stop_ns = time.time_ns()
    probe.fault("stop_postgres")
    try:
        time.sleep(outage_s / 2)
        row = probe.row("execution_service")
        probe.fault("kill", "execution_service")
        restarted = new_instance(probe, "execution_service", row, 60)
        time.sleep(max(0.0, outage_s / 2 - 1))
        during = {s for s, ns in probe.spool_signals().items() if ns >= t_stop_ns} - before_ids
        pending = (probe.field("execution_service", "writer") or {}).get("pending", 0)
    finally:
        probe.fault("start_postgres")
    result.add("execution_service restarted during the outage and kept filling into the spool",
               bool(restarted) and bool(during),
               f"{len(during)} signals spooled while PostgreSQL was down; writer pending {pending}; restarts "
               f"{row.restarts} -> {getattr(restarted, 'restarts', None)}")
    db = probe.current_url("DATABASE_URL")  # a restarted container may publish its port elsewhere
    spooled = set(probe.spool_signals())  # read first: signals keep arriving, later ones are not this check's
    flushed = eventually(lambda: spooled <= executed_ids(db), 60, raises=False)
    missing = spooled - executed_ids(db)
    result.add("the spool is written to PostgreSQL when it is back: nothing lost", bool(flushed) and not missing,
               f"{len(spooled)} spooled signals (complete after the kill -9), {len(missing)} missing from "
               "executed_signals")
    book = ledger(db)
    result.add("nothing duplicated (each executed signal has exactly its legs, once)", book.consistent, book.text())
    logs = probe.logs_since("execution_service", t_stop_ns / 1e9)
    result.add("the outage is logged, and its end", "PostgreSQL unavailable" in logs and "PostgreSQL back" in logs,
               "`PostgreSQL unavailable at ...: <reason>; N trades spooled` and `PostgreSQL back after ...` in "
               "execution_service's log",
               critical=False)
