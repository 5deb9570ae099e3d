"""Flow and latency probes: publishing, mirroring, prices and signals received, mode, payload, CPU, hops."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any


from arbees_core.registry import spec
from arbees_core.topics import (
    EXECUTION_SERVICE,
    GAME_SHARD,
    ZMQ_LISTENER,
)
from arbees_core.validation.diagnose.context import Context, HOP_SOURCES, MIRROR_TOPICS, MONITOR_VENUE, _fmt_ts
from arbees_core.validation.diagnose.probes import (Outcome, _each_running, _finish, _names, _none_running, _skip,
                                                    probe)


@probe("publishing")
def p_publishing(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs kalshi_monitor | grep -i publish` (and "is its venue feed connected"): each monitor
    logged `Published prices...` lines in the window and its venue feed delivers messages."""
    evidence, faults = [], []
    names = _names(params, "publishers")
    for pub in _each_running(ctx, names, evidence):
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
    return _finish(evidence, faults, skipped_all=_none_running(ctx, names))


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
    min_window_s = float(params.get("min_window_s", 10.0))
    for pub in _each_running(ctx, _names(params, "publishers"), evidence):
        start = ctx.window_start(listener, pub)
        hits = [h for h in ctx.grep(listener, rx, since=start) if h[1].group(1).startswith(MIRROR_TOPICS[pub])]
        window_s = (datetime.now(timezone.utc) - start).total_seconds()
        details[pub] = {"lines": len(hits), "streams": sorted({h[1].group(2) for h in hits}), "window_s": window_s}
        if hits:
            evidence.append(f"{pub}: {len(hits)} 'Mirrored' lines ({', '.join(details[pub]['streams'])}) "
                            f"in the {ctx.window_text(start)}")
            continue
        enabled, raw = ctx.zmq_enabled(pub)
        if enabled is not False and window_s < min_window_s:
            # "Mirrored" lines are sampled, and execution_service publishes little besides heartbeats: a few
            # seconds after a restart prove nothing either way
            evidence.append(f"{pub}: no 'Mirrored' line yet, only {window_s:.0f}s since it or {listener} "
                            f"(re)started (need {min_window_s:g}s to judge)")
            continue
        why = f": {pub} has ZMQ_ENABLED={raw}" if enabled is False else ""
        evidence.append(f"{pub}: 0 'Mirrored' lines in the {ctx.window_text(start)}")
        faults.append(f"{listener} mirrored nothing from {pub} in the {ctx.window_text(start)}{why}")
    return _finish(evidence, faults, details)


@probe("prices_received")
def p_prices_received(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs game_shard | grep "price update"`, per venue, plus its `prices_rx` counter."""
    sub = spec(params.get("subscriber", GAME_SHARD)).name
    if not ctx.running(sub):
        return _skip(f"{sub} is not running ({ctx.state_text(sub)})")
    start = ctx.window_start(sub)
    lines = ctx.grep(sub, r"Received price update (\S+) (\S+)", since=start)
    by_venue: dict[str, int] = {}
    for _, m, _ in lines:
        by_venue[m.group(1)] = by_venue.get(m.group(1), 0) + 1
    evidence = [f"{sub}: prices_rx={ctx.counter(sub, 'prices_rx')}, 'Received price update' lines in the "
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
    arbs = ctx.grep(gs, r"Detected arbitrage in ", since=start)
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


_REJECTED = re.compile(r"Signal (\S+) rejected: (.+)$")
_LEG_FILLED = re.compile(r"IOC order \S+ placed: \S+ (?:filled|partial) \(filled: (?!0/)")


@probe("signals_filled")
def p_signals_filled(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs execution_service | grep -i "IOC order"`: the signals it receives are traded, not all
    rejected. A service whose exposure limit is reached (or whose kill switch is on, or whose signals arrive
    expired) receives and logs every signal but places no order; that is a fault when it rejected every signal
    since it started (its counters), or the last `streak` (5) in the window with no leg filled since (its log:
    rejections are logged each, fills are sampled, so a few rejections between fills prove nothing)."""
    ex = EXECUTION_SERVICE
    if not ctx.running(ex):
        return _skip(f"{ex} is not running ({ctx.state_text(ex)})")
    streak = int(params.get("streak", 5))
    start = ctx.window_start(ex)
    rejected, filled = ctx.grep(ex, _REJECTED, since=start), ctx.grep(ex, _LEG_FILLED, since=start)
    last_fill = filled[-1][0] if filled else None
    since_fill = [r for r in rejected if last_fill is None or (r[0] is not None and r[0] > last_fill)]
    rx, rejects = ctx.counter(ex, "signals_rx"), ctx.counter(ex, "signals_rejected")
    evidence = [f"{len(filled)} 'IOC order ... filled' and {len(rejected)} 'Signal ... rejected' lines in the "
                f"{ctx.window_text(start)}",
                f"counters: signals_rx={rx} signals_rejected={rejects} legs_filled={ctx.counter(ex, 'legs_filled')}"]
    if rx == 0 and not rejected:
        return _skip(f"{ex} received no signal in the {ctx.window_text(start)}: nothing to trade yet")
    all_since_start = rx > 0 and rejects >= rx
    if not all_since_start and len(since_fill) < streak:
        return Outcome(True, "; ".join(evidence))
    reason = since_fill[-1][1].group(2) if since_fill else "see `arbees logs execution_service`"
    when = f"since it started ({rejects} of {rx})" if all_since_start else \
        f"since {_fmt_ts(last_fill) if last_fill else 'the window began'} ({len(since_fill)} in a row)"
    return Outcome(False, "; ".join(evidence), [f"{ex} rejected every signal {when}, no order placed: {reason}"],
                   details={"rejected_in_a_row": len(since_fill), "latest_reason": reason})


@probe("mode")
def p_mode(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs game_shard | grep -i "mode"`: "ZMQ mode enabled" vs "Connected to Redis (Redis
    mode)" in each service's current log, confirmed by its metrics snapshot's `mode`."""
    expect = str(params.get("expect", "zmq"))
    evidence, faults, details = [], [], {}
    names = _names(params)
    for name in _each_running(ctx, names, evidence):
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
    return _finish(evidence, faults, details, skipped_all=_none_running(ctx, names))


@probe("payload_size")
def p_payload_size(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker logs kalshi_monitor | grep "payload.*bytes"`: every payload below `max_bytes` (10 KB)."""
    limit = int(params.get("max_bytes", 10240))
    evidence, faults, details = [], [], {}
    names = _names(params, "publishers")
    for pub in _each_running(ctx, names, evidence):
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
    return _finish(evidence, faults, details, skipped_all=_none_running(ctx, names))


@probe("cpu")
def p_cpu(ctx: Context, params: dict[str, Any]) -> Outcome:
    """The plan's `docker stats --no-stream`: CPU % of each named service over `sample_s`, below `max_pct` (50).
    A game_shard that busy-polls for prices (ZMQ_SPIN_US) is judged on its CPU less the share its polling took (its
    metrics' `spin.cpu_pct`, over its last heartbeat interval): that share is waiting for the next price, not load,
    and it gives the core up to any other thread that wants it."""
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
        spin = ctx.metrics(n).get("spin") or {}
        work = max(0.0, cpu - spin["cpu_pct"]) if spin.get("cpu_pct") is not None else cpu
        text = f"{n} {cpu:.1f}% CPU over {sample_s:g}s"
        if work != cpu:
            text += (f", ~{cpu - work:.0f}% of it busy-polling for prices (ZMQ_SPIN_US={spin.get('window_us')}): "
                     f"~{work:.0f}% work")
            details[n] = {**res, "spin_cpu_pct": spin["cpu_pct"], "work_cpu_pct": round(work, 1)}
        evidence.append(f"{text}, RSS {res.get('rss_mb', 0):.0f} MB (limit {limit:g}%)")
        if work >= limit:
            faults.append(f"{n} uses {work:.0f}% CPU{' besides busy-polling' if work != cpu else ''}, above the "
                          f"plan's {limit:g}%")
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


