"""Running a playbook: each step acts on the stack through the runtime, or checks one of the plan's success
criteria and records a `Check` with the evidence an operator can verify (the log line, the stream length, the
query rows, the env value). Steps never reach into a service: runtime, Redis, PostgreSQL and sockets only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec

from arbees_core.config import read_dotenv, write_dotenv_value
from arbees_core.polling import eventually
from arbees_core.registry import SERVICES, shard_number, spec
from arbees_core.runtime.base import Runtime, RuntimeError_
from arbees_core.runtime.preflight import SettingsError
from arbees_core.validation.playbook import (
    Collect,
    Counter,
    EnvEquals,
    NoErrors,
    Playbook,
    PortOpen,
    Restart,
    Running,
    SetEnv,
    Sleep,
    Sql,
    Start,
    Step,
    StreamLatest,
    StreamLen,
    WaitLog,
)
from arbees_core.validation.results import RunResult
from arbees_core.validation.taps import mirror_absent, stream_publisher


Progress = Callable[[str, float | None], None]
CollectorFn = Callable[["RunContext", Collect], dict[str, Any]]


@dataclass
class RunContext:
    """What a step needs: the runtime, the project root, the result it adds checks to, progress reporting."""

    runtime: Runtime
    root: Path
    result: RunResult
    progress: Progress = lambda text, fraction: None  # noqa: E731
    collectors: dict[str, CollectorFn] = field(default_factory=dict)
    overrides: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    _redis: Any = None

    def redis(self) -> Any:
        import redis

        if self._redis is None:
            url = self.runtime.urls().get("REDIS_URL")
            if not url:
                raise RuntimeError_("the stack reports no REDIS_URL (is it up?)")
            self._redis = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        return self._redis

    def port(self, service: str) -> int | None:
        st = next((s for s in self.runtime.status() if s.name == spec(service).name), None)
        if st and st.ports:
            return st.ports[0]
        return spec(service).port

    def expand(self, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            what, arg = m.group(1), m.group(2)
            if what == "port":
                return str(self.port(arg))
            if what == "endpoint":
                host = "127.0.0.1" if self.runtime.kind == "local" else spec(arg).name
                return f"tcp://{host}:{self.port(arg)}"
            return read_dotenv(self.root / ".env").get(arg, "")

        return re.sub(r"\{(port|endpoint|env):([A-Za-z_\-]+)\}", sub, text)

    def since_s(self) -> float:
        return time.time() - self.started + 1.0

    def process_since_s(self, service: str) -> float:
        """Seconds of log that belong to `service`'s current process (at least the run's own window)."""
        st = next((s for s in self.runtime.status() if s.name == spec(service).name), None)
        started = st.started if st else None
        own = (datetime.now(timezone.utc) - started).total_seconds() + 1.0 if started else 0.0
        return max(own, self.since_s())


def run_playbook(book: Playbook, ctx: RunContext) -> RunResult:
    """Run every step in order. A failed wait does not stop the run (later checks still gather evidence),
    except when the stack cannot be started at all. A bad setting (SettingsError, found before the runtime starts
    or restarts anything) is raised: the run could not happen."""
    total = len(book.steps)
    for i, step in enumerate(book.steps):
        label = step.name or _describe(step)
        ctx.progress(f"[{i + 1}/{total}] {label}", i / total)
        try:
            _RUNNERS[type(step)](ctx, step)
        except SettingsError:
            raise  # a setting no service would accept: the run cannot start, and the runtime started nothing
        except RuntimeError_ as e:
            ctx.result.add_inconclusive(label, f"could not run: {e}", step.critical)
            if isinstance(step, (Start, Restart, SetEnv)):
                break
    ctx.progress("done", 1.0)
    return ctx.result


def _describe(step: Step) -> str:
    kind = type(step).__name__
    fields = {k: v for k, v in msgspec.structs.asdict(step).items() if k not in ("name", "critical", "line") and v}
    return f"{kind} " + ", ".join(f"{k}={v}" for k, v in list(fields.items())[:3])


def _set_env(ctx: RunContext, step: SetEnv) -> None:
    env_file = ctx.root / ".env"
    for key, value in step.values.items():
        write_dotenv_value(key, value, env_file)
    stale = []
    if step.restart_running and ctx.runtime.is_up():
        for st in ctx.runtime.status():
            if st.state == "running" and _reads_any(st.name, step.values):
                try:
                    env = ctx.runtime.env(st.name)
                except RuntimeError_:
                    continue
                if any(env.get(k) != v for k, v in step.values.items()):
                    stale.append(st.name)
    if stale:
        ctx.runtime.restart(stale)
    ctx.result.add(step.name or "set .env", True,
                   ", ".join(f"{k}={v}" for k, v in step.values.items()) + f" in {env_file}"
                   + (f"; restarted {', '.join(stale)}" if stale else ""), step.critical)


def _reads_any(service: str, keys: dict[str, str]) -> bool:
    """Whether a pipeline service reads any of `keys` (Redis, PostgreSQL and other containers read none)."""
    found = next((s for s in SERVICES if s.name == service), None)
    return found is not None and any(k in found.env for k in keys)


def _start(ctx: RunContext, step: Start) -> None:
    rows = ctx.runtime.up(step.services)
    states = {r.name: r.state for r in rows}
    ok = all(states.get(spec(s).name) == "running" for s in step.services)
    ctx.result.add(step.name or f"start {', '.join(step.services)}", ok,
                   ", ".join(f"{spec(s).name}={states.get(spec(s).name)}" for s in step.services), step.critical)


def _restart(ctx: RunContext, step: Restart) -> None:
    t0 = time.monotonic()
    rows = ctx.runtime.restart(step.services or None)
    took = time.monotonic() - t0
    names = [spec(s).name for s in step.services] or [r.name for r in rows]
    ok = all(r.state == "running" for r in rows if r.name in names)
    ctx.result.data.setdefault("timings", {})["restart_s"] = round(took, 3)
    ctx.result.add(step.name or "restart", ok, f"{len(names)} services running again after {took:.1f}s", step.critical)


def _sleep(ctx: RunContext, step: Sleep) -> None:
    end = time.monotonic() + step.seconds
    while time.monotonic() < end:
        ctx.progress(f"waiting {end - time.monotonic():.0f}s", None)
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))


def _wait_log(ctx: RunContext, step: WaitLog) -> None:
    pattern = ctx.expand(step.pattern)
    matcher = (lambda line: pattern in line) if step.literal else re.compile(pattern).search

    def lines() -> list[str]:
        since = {"all": None, "run": ctx.since_s()}.get(step.since) if step.since != "process" else \
            ctx.process_since_s(step.service)
        return ctx.runtime.logs(step.service, since).splitlines()

    def find() -> str:
        return next((line for line in reversed(lines()) if matcher(line)), "")

    line = eventually(find, step.timeout, raises=False)
    name = spec(step.service).name
    evidence = line.strip()[:300] if line else f"no line matching {pattern!r} in {name}'s log within {step.timeout:g}s"
    if not line and step.explain:
        evidence += "; " + _explanation(lines(), ctx.expand(step.explain), name)
    ctx.result.add(step.name or f"{name} logs {pattern!r}", bool(line), evidence, step.critical)


def _explanation(lines: list[str], explain: str, service: str) -> str:
    """What the lines matching `explain` say about a missing line: how many, and the latest one."""
    why = [line.strip() for line in lines if re.search(explain, line)]
    if not why:
        return f"no line matching {explain!r} either"
    return f"{len(why)} lines of {service} say why, the latest: {why[-1][:300]}"


def _no_errors(ctx: RunContext, step: NoErrors) -> None:
    rx = re.compile(step.pattern)
    found: list[str] = []
    for name in step.services:
        for line in ctx.runtime.logs(name, ctx.since_s()).splitlines():
            if rx.search(line):
                found.append(f"{spec(name).name}: {line.strip()[:200]}")
    evidence = f"{len(found)} error lines" + (f"; first: {found[0]}" if found else f" in {', '.join(step.services)}")
    ctx.result.add(step.name or f"no error lines in {', '.join(step.services)}", not found, evidence, step.critical)


def _stream_len(ctx: RunContext, step: StreamLen) -> None:
    absent = mirror_absent(ctx.runtime, ctx.root)
    if absent and stream_publisher(step.stream):
        return stream_len_tap(ctx, step, absent)
    client = ctx.redis()
    n = eventually(lambda: (lambda v: v if v >= step.min else 0)(client.xlen(step.stream)), step.timeout,
                   raises=False) or \
        client.xlen(step.stream)
    ok, evidence = n >= step.min, f"XLEN {step.stream} = {n} (need >= {step.min})"
    if ok and step.grows:
        # A stream at its MAXLEN cap keeps its length while entries flow: growth is a newer last entry id.
        first = _last_id(client, step.stream)
        later = eventually(lambda: (lambda v: v if v > first else None)(_last_id(client, step.stream)), step.within,
                           raises=False)
        ok = later is not None
        evidence += (f"; new entries within {step.within:g}s (last id {_id_text(first)} -> {_id_text(later)})" if ok
                     else f"; no new entry after {step.within:g}s (last id {_id_text(first)})")
    ctx.result.add(step.name or f"{step.stream} has data", ok, evidence, step.critical)


def _last_id(client: Any, stream: str) -> tuple[int, int]:
    """The stream's newest entry id as (ms, seq), (0, 0) when empty."""
    entries = client.xrevrange(stream, "+", "-", count=1)
    if not entries:
        return (0, 0)
    ms, _, seq = entries[0][0].decode().partition("-")
    return (int(ms), int(seq or 0))


def _id_text(entry_id: tuple[int, int] | None) -> str:
    return f"{entry_id[0]}-{entry_id[1]}" if entry_id else "-"


def _stream_latest(ctx: RunContext, step: StreamLatest) -> None:
    absent = mirror_absent(ctx.runtime, ctx.root)
    if absent and stream_publisher(step.stream):
        return stream_latest_tap(ctx, step, absent)
    entries = ctx.redis().xrevrange(step.stream, "+", "-", count=1)
    if not entries:
        ctx.result.add(step.name or f"latest {step.stream} entry", False, f"{step.stream} is empty", step.critical)
        return
    entry_id, fields = entries[0]
    try:
        body = msgspec.json.decode(fields[b"data"])
    except (KeyError, msgspec.DecodeError):
        from arbees_core.messages import decode  # msgpack wire: decoded through the contract

        body = msgspec.structs.asdict(decode(fields[b"topic"].decode(), fields[b"data"]))
    missing = [f for f in step.fields if f not in body]
    shown = {f: body.get(f) for f in step.fields}
    ctx.result.add(step.name or f"latest {step.stream} entry has {', '.join(step.fields)}", not missing,
                   f"{entry_id.decode()}: {shown}" + (f"; missing {missing}" if missing else ""), step.critical)


def _port_open(ctx: RunContext, step: PortOpen) -> None:
    port = ctx.port(step.service)
    name = spec(step.service).name
    if port is None:
        ctx.result.add(step.name or f"{name} port reachable", False, f"{name} binds no ZMQ port", step.critical)
        return
    found = ctx.runtime.probe_port(name, port)
    ctx.result.add(step.name or f"{name} port {port} reachable", found.ok, found.evidence, step.critical)


def _env_equals(ctx: RunContext, step: EnvEquals) -> None:
    value = ctx.runtime.env(step.service).get(step.var)
    ctx.result.add(step.name or f"{spec(step.service).name} has {step.var}={step.value}", value == step.value,
                   f"{spec(step.service).name}: {step.var}={value}", step.critical)


def _counter(ctx: RunContext, step: Counter) -> None:
    """On a stack of several game shards a game_shard counter is checked on every shard, each its own check."""
    names = [spec(step.service).name]
    if names == ["game_shard"]:
        names += [s.name for s in ctx.runtime.status() if shard_number(s.name) not in (None, 1)]
    for name in names:
        _counter_of(ctx, step, name, len(names) > 1)


def _counter_of(ctx: RunContext, step: Counter, name: str, named: bool) -> None:
    def value() -> int:
        return int(ctx.runtime.metrics(name).get("counters", {}).get(step.counter, 0))

    if step.min is not None:
        n = eventually(lambda: (lambda v: v if v >= step.min else 0)(value()), step.timeout, raises=False) or value()
    else:
        n = value()
    ok = (step.min is None or n >= step.min) and (step.max is None or n <= step.max)
    limits = " and ".join(x for x in (f">= {step.min}" if step.min is not None else "",
                                      f"<= {step.max}" if step.max is not None else "") if x)
    title = step.name or f"{name} {step.counter} {limits}"
    ctx.result.add(f"{title} ({name})" if named else title, ok, f"{name} counter {step.counter} = {n} "
                   f"(need {limits})", step.critical)


def _sql(ctx: RunContext, step: Sql) -> None:
    import psycopg

    from arbees_core.store.db import StoreUnavailable, connect

    url = ctx.runtime.urls().get("DATABASE_URL")
    if not url:
        raise RuntimeError_("the stack reports no DATABASE_URL (is it up?)")

    def query() -> tuple[list[str], list[tuple]]:
        try:
            with connect(url, retries=0, autocommit=False) as conn:
                cur = conn.execute(step.query)  # type: ignore[arg-type]
                cols = [c.name for c in cur.description or []]
                return cols, cur.fetchall()
        except (psycopg.Error, StoreUnavailable) as e:
            raise RuntimeError_(f"query failed: {e}") from e

    cols, rows = eventually(lambda: (lambda r: r if len(r[1]) >= step.min_rows else None)(query()), step.timeout,
                            raises=False) or query()
    problems = []
    if len(rows) < step.min_rows:
        problems.append(f"{len(rows)} rows, need >= {step.min_rows}")
    for col in step.not_null:
        if col in cols and any(r[cols.index(col)] is None for r in rows):
            problems.append(f"{col} is NULL in some rows")
    for col, limit in step.max.items():
        over = [r[cols.index(col)] for r in rows if col in cols and r[cols.index(col)] is not None
                and r[cols.index(col)] > limit]
        if over:
            problems.append(f"{len(over)} rows with {col} > {limit:g} (max {max(over):.3f})")
    shown = "; ".join(", ".join(f"{c}={_short(v)}" for c, v in zip(cols, r)) for r in rows[:step.show])
    evidence = f"{len(rows)} rows" + (f": {shown}" if shown else "") + (f" — {'; '.join(problems)}" if problems else "")
    ctx.result.add(step.name or "SQL check", not problems, evidence, step.critical)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    text = str(v)
    return text if len(text) <= 24 else text[:21] + "…"


def _running(ctx: RunContext, step: Running) -> None:
    names = [spec(s).name for s in step.services] or [s.name for s in SERVICES]
    rows = {r.name: r for r in ctx.runtime.status()}
    bad = [f"{n}={rows[n].state}" for n in names if rows[n].state != "running"]
    ctx.result.add(step.name or "services running", not bad,
                   ", ".join(bad) if bad else f"{len(names)} running; restarts: "
                   + ", ".join(f"{n}={rows[n].restarts}" for n in names), step.critical)


def _collect(ctx: RunContext, step: Collect) -> None:
    fn = ctx.collectors.get(step.collector)
    if fn is None:
        raise RuntimeError_(f"no collector {step.collector!r} registered")
    ctx.result.data.update(fn(ctx, step))


_RUNNERS: dict[type, Callable[[RunContext, Any], None]] = {
    SetEnv: _set_env, Start: _start, Restart: _restart, Sleep: _sleep, WaitLog: _wait_log, NoErrors: _no_errors,
    StreamLen: _stream_len, StreamLatest: _stream_latest, PortOpen: _port_open, EnvEquals: _env_equals,
    Counter: _counter, Sql: _sql, Running: _running, Collect: _collect,
}

from arbees_core.validation.steps_views import VIEW_RUNNERS, stream_latest_tap, stream_len_tap  # noqa: E402

_RUNNERS.update(VIEW_RUNNERS)
