"""Playbook steps for running without the Redis mirror (the plan's week 3) and for the operator's views.

`stop` takes a service out (zmq_listener), `window` watches the hot path for a while, `diagnose`, `dashboard` and
`decide` check that each operator view still works, and the stream checks of `steps.py` read a ZMQ tap instead of
a stream that the stopped mirror no longer fills (`stream_len_tap`, `stream_latest_tap`), saying so.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, Callable

from arbees_core.polling import eventually
from arbees_core.registry import spec
from arbees_core.runtime.base import RuntimeError_
from arbees_core.topics import EXECUTION_SERVICE, GAME_SHARD
from arbees_core.validation.playbook import Dashboard, Decide, Diagnose, Stop, StreamLatest, StreamLen, Window
from arbees_core.validation.taps import stream_publisher, tap

if TYPE_CHECKING:
    from arbees_core.validation.steps import RunContext

#: Counters summed over the services to see loss during a window (every inbox's sequence gaps).
_LOSS = "lost"


def stream_len_tap(ctx: "RunContext", step: StreamLen, why: str) -> None:
    """`stream_len` without the mirror: at least `min` messages of the stream's family on its publisher (live
    ones, not last-value replays, when `grows`)."""
    publisher = stream_publisher(step.stream)
    port = ctx.port(publisher) if publisher else None
    seen = tap(ctx.runtime, step.stream, port, max(step.min, 1), step.timeout, live=step.grows)
    count = seen.live if step.grows else len(seen.messages)
    what = "live messages" if step.grows else "messages"
    evidence = (f"source: {seen.source} instead of {step.stream} ({why}): {count} {what} in {seen.seconds:g}s "
                f"(need >= {step.min})" + (f"; {seen.error}" if seen.error else ""))
    ctx.result.add(step.name or f"{step.stream} has data", count >= step.min, evidence, step.critical)


def stream_latest_tap(ctx: "RunContext", step: StreamLatest, why: str) -> None:
    """`stream_latest` without the mirror: the newest message the publisher sends has these fields."""
    publisher = stream_publisher(step.stream)
    seen = tap(ctx.runtime, step.stream, ctx.port(publisher) if publisher else None, 1, 10.0)
    if not seen.messages:
        ctx.result.add(step.name or f"latest {step.stream} message", False,
                       f"source: {seen.source} ({why}): nothing within {seen.seconds:g}s; {seen.error}", step.critical)
        return
    topic, body = seen.messages[-1]
    missing = [f for f in step.fields if f not in body]
    shown = {f: body.get(f) for f in step.fields}
    ctx.result.add(step.name or f"latest {step.stream} message has {', '.join(step.fields)}", not missing,
                   f"source: {seen.source} instead of {step.stream} ({why}): {topic}: {shown}"
                   + (f"; missing {missing}" if missing else ""), step.critical)


def _stop(ctx: "RunContext", step: Stop) -> None:
    names = [spec(s).name for s in step.services]
    stop = getattr(ctx.runtime, "stop", None)
    if stop is None:
        raise RuntimeError_(f"the {ctx.runtime.kind} runtime cannot stop single services")
    stop(names)
    states = {s.name: s.state for s in ctx.runtime.status()}
    ok = all(states.get(n) in ("stopped", "exited", "missing") for n in names)
    ctx.result.add(step.name or f"stop {', '.join(names)}", ok, ", ".join(f"{n}={states.get(n)}" for n in names),
                   step.critical)


def _figures(ctx: "RunContext") -> dict[str, Any]:
    status = {s.name: s for s in ctx.runtime.status()}
    return {"restarts": {n: s.restarts for n, s in status.items()},
            "running": sorted(n for n, s in status.items() if s.state == "running"),
            "metrics": {n: ctx.runtime.metrics(n) for n, s in status.items() if s.state == "running"}}


def _delta(before: dict[str, Any], after: dict[str, Any], service: str, counter: str) -> int:
    """A counter's growth over the window (the whole later value when the service restarted meanwhile)."""
    b, a = before["metrics"].get(service, {}), after["metrics"].get(service, {})
    now = int(a.get("counters", {}).get(counter, 0))
    same = b.get("instance") == a.get("instance")
    return now - int(b.get("counters", {}).get(counter, 0)) if same else now


def _window(ctx: "RunContext", step: Window) -> None:
    seconds = float(ctx.overrides.get("window_seconds", step.seconds))
    before = _figures(ctx)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ctx.progress(f"watching the stack: {end - time.monotonic():.0f}s left", None)
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
    after = _figures(ctx)
    prices = _delta(before, after, GAME_SHARD, "prices_rx")
    executed = _delta(before, after, EXECUTION_SERVICE, "signals_executed")
    rejected = _delta(before, after, EXECUTION_SERVICE, "signals_rejected")
    trades = max(0, executed - rejected)
    lost = sum(_delta(before, after, n, _LOSS) for n in after["running"] if n in before["metrics"])
    restarted = {n: after["restarts"][n] - before["restarts"].get(n, 0) for n in after["restarts"]
                 if after["restarts"][n] > before["restarts"].get(n, 0)}
    stopped = sorted(set(before["running"]) - set(after["running"]))
    ctx.result.data.setdefault("window", {}).update(seconds=seconds, prices=prices, trades=trades, lost=lost,
                                                     restarts=restarted, stopped=stopped)
    name = step.name or f"hot path over {seconds:g}s"
    ctx.result.add(f"{name}: prices reach game_shard", prices > 0, f"game_shard received {prices} prices",
                   step.critical)
    ctx.result.add(f"{name}: trades executed", trades >= step.min_trades,
                   f"execution_service traded {trades} signals (need >= {step.min_trades}); {rejected} more refused "
                   "(risk limits, kill switch, expiry)", step.critical)
    ctx.result.add(f"{name}: nothing lost, no restarts", lost == 0 and not restarted and not stopped,
                   f"lost {lost}; restarts: {restarted or 'none'}; stopped meanwhile: {stopped or 'none'}",
                   step.critical)


def _diagnose(ctx: "RunContext", step: Diagnose) -> None:
    from arbees_core.validation.diagnose import diagnose

    for target in step.targets:
        result = diagnose(ctx.runtime, target, since_s=max(60.0, ctx.since_s()))
        findings = result.data.get("findings", [])
        failed = [c.name for c in result.checks if c.critical and not c.passed]
        evidence = (f"{len(result.checks)} probes, {len(findings)} findings"
                    + (f": {'; '.join(f['fault'] for f in findings[:3])}" if findings else "")
                    + (f"; failing: {', '.join(failed[:3])}" if failed else ""))
        ctx.result.add(step.name or f"arbees diagnose {target}", result.verdict == "pass", evidence, step.critical)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _dashboard(ctx: "RunContext", step: Dashboard) -> None:
    base = ctx.runtime.urls().get("API_URL")
    if not base:
        raise RuntimeError_("the stack reports no API_URL: is the api running (`arbees up api`)?")
    t0_ns = time.time_ns()
    try:
        status = _get_json(f"{base}/api/status")
        health = {h["name"]: h for h in _get_json(f"{base}/api/health")["services"]}
        games = _get_json(f"{base}/api/games")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise RuntimeError_(f"the api at {base} did not answer: {e}") from e
    connected = f"{len(status['connected'])}/{len(status['endpoints'])} publishers connected" \
        if status["source"] == "zmq" else "Redis streams"
    ctx.result.add(step.name or "dashboard reads the live feed", status["source"] == step.source,
                   f"{base}: source {status['source']} ({connected}), {status['messages']} messages, "
                   f"{status['updates_dropped']} updates dropped", step.critical)
    books = sum(1 for g in games["games"] for o in g["outcomes"] if o["kalshi"] and o["polymarket"])
    ctx.result.add("dashboard shows both venues' books", books > 0,
                   f"{books} teams with both books in {len(games['games'])} games (source {games['source']})",
                   step.critical)
    states = {n: h["state"] for n, h in health.items()}
    actual = {s.name: s.state for s in ctx.runtime.status()}
    agree = all(states.get(n) == st or (st != "running" and states.get(n) != "running") for n, st in actual.items())
    ctx.result.add("dashboard health matches the runtime", agree,
                   ", ".join(f"{n}={states.get(n)}" for n in sorted(states)), step.critical)
    trade = eventually(lambda: next((t for t in _get_json(f"{base}/api/trades?limit=5")["trades"]
                                              if t["ts_fill_ns"] >= t0_ns), None), step.timeout, raises=False)
    ctx.result.add("dashboard shows a new trade with its hop latencies", trade is not None,
                   f"{trade['signal_id']} ({trade['transport']}): end to end {trade['latency']['end_to_end_ms']:.3f} ms"
                   if trade else f"no trade newer than the step's start within {step.timeout:g}s", step.critical)


def _decide(ctx: "RunContext", step: Decide) -> None:
    from arbees_core.validation.decide import decide
    from arbees_core.validation.results import latest_result, runs_dir

    folder = runs_dir(ctx.root)
    decision = decide(latest_result("phase4", folder=folder), latest_result("phase5", folder=folder),
                      zmq_only=latest_result("zmq_only", folder=folder))
    ctx.result.add(step.name or "arbees decide reads the stored results", bool(decision.rows),
                   f"{decision.decision} over {len(decision.rows)} rows from {folder}"
                   + (f" (decided by {', '.join(decision.decided_by[:3])})" if decision.decided_by else ""),
                   step.critical)


VIEW_RUNNERS: dict[type, Callable[["RunContext", Any], None]] = {
    Stop: _stop, Window: _window, Diagnose: _diagnose, Dashboard: _dashboard, Decide: _decide,
}
