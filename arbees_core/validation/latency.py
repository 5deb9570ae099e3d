"""Phase 4 as data: interleaved ZMQ / Redis measurement windows from the services' own HDR histograms.

The plan compares one hour of ZMQ with one hour of Redis, greping `... latency: Nms` log lines. Two long runs one
after the other measure the machine's drift as much as the transport, and sampled log lines are not the
distribution. Here the modes alternate A B A B ... over `windows` windows (drift cancels out), and each window is
the bucket-wise difference of two snapshots of every service's cumulative per-hop histograms (S1 - S0), so every
message of the window counts and nothing of the warmup does.

One window:
    write ZMQ_ENABLED into `.env` -> runtime.restart() (all services, .env re-read) -> wait warmup_s
    -> S0 = every service's metrics snapshot -> wait window_s -> S1 -> per hop S1 - S0, counter deltas.
A service whose process changed between S0 and S1 (other `instance` / `started_ns`: a crash and restart) makes the
window invalid (`"valid": false` and a `reason`): its cumulative figures restarted from zero mid-window. So does a
stack that did not run in the asked mode (the services report their mode in each snapshot).

Counters of a window (`counters`, deltas over the window, summed over the services that have them):
    signals  = game_shard `signals_published`
    trades   = execution_service `signals_executed` - `signals_rejected` (signals that reached a paper fill;
               `signals_executed` also counts the rejected ones, which are answered with rejected legs)
    lost     = every service's inbox `lost` (messages missing from sequence gaps)
    rejected = execution_service `signals_rejected` + every inbox's `rx_rejected` (malformed / invalid frames)
    prices   = game_shard `prices_rx`
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from arbees_core.config import parse_dotenv, write_dotenv_value
from arbees_core.telemetry.metrics import _HIGHEST_US, _LOWEST_US, _SIG_DIGITS, decode_histogram
from arbees_core.validation.results import utc_now_iso

#: Hops in pipeline order (see results.py).
HOPS: tuple[str, ...] = ("price", "signal", "execution", "end_to_end", "mirror")
#: The service whose snapshot says which mode the stack runs in (it runs in both modes, unlike zmq_listener).
MODE_SERVICE = "game_shard"
#: How long to wait for a snapshot written after a given moment (services write one every heartbeat).
FRESH_TIMEOUT_S = 5.0

Progress = Callable[[str, float], None]


# -- histograms ------------------------------------------------------------------------------------------------

def new_histogram() -> HdrHistogram:
    """An empty histogram with the services' geometry (1 us .. 60 s, 3 significant digits)."""
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _SIG_DIGITS)


def _as_hist(h: HdrHistogram | str | bytes | None) -> HdrHistogram:
    if h is None:
        return new_histogram()
    return h if isinstance(h, HdrHistogram) else decode_histogram(h)


def subtract(h1: HdrHistogram | str | bytes, h0: HdrHistogram | str | bytes | None) -> HdrHistogram:
    """The values recorded between two snapshots of one cumulative histogram: bucket-wise `h1 - h0`.

    Both may be given encoded (a snapshot's `hdr`); `h0` None is an empty baseline. A bucket with fewer counts in
    `h1` than in `h0` means they are not two states of one histogram (the process restarted): ValueError.
    """
    a, b = _as_hist(h1), _as_hist(h0)
    out = new_histogram()
    same_geometry = (a.bucket_count == b.bucket_count and a.sub_bucket_count == b.sub_bucket_count
                     and a.unit_magnitude == b.unit_magnitude)
    counts_a = a.counts
    counts_b = b.counts if same_geometry else None
    for index in range(a.counts_len):
        c1 = counts_a[index]
        if same_geometry:
            c0 = counts_b[index] if index < b.counts_len else 0
        else:
            c0 = b.get_count_at_value(a.get_value_from_index(index)) if c1 else 0
        diff = c1 - c0
        if diff < 0:
            raise ValueError(f"bucket of {a.get_value_from_index(index)} us has {c1} counts, fewer than the "
                             f"baseline's {c0}: not two snapshots of one histogram")
        if diff:
            out.record_value(a.get_value_from_index(index), diff)
    if b.get_total_count() > a.get_total_count():
        raise ValueError(f"total count {a.get_total_count()} is below the baseline's {b.get_total_count()}")
    return out


def hop_stats(hist: HdrHistogram) -> dict[str, Any]:
    """count, p50/p95/p99/max (us), mean (us) and the encoded histogram, as results.py stores a hop."""
    count = hist.get_total_count()
    if not count:
        return {"count": 0, "p50_us": 0, "p95_us": 0, "p99_us": 0, "max_us": 0, "mean_us": 0.0,
                "hdr": hist.encode().decode("ascii")}
    pct = hist.get_percentile_to_value_dict([50, 95, 99])
    return {"count": count, "p50_us": int(pct[50]), "p95_us": int(pct[95]), "p99_us": int(pct[99]),
            "max_us": int(hist.get_max_value()), "mean_us": round(float(hist.get_mean_value()), 1),
            "hdr": hist.encode().decode("ascii")}


# -- snapshots -------------------------------------------------------------------------------------------------

def take_snapshots(runtime: Any, after_ns: int | None = None, timeout_s: float = FRESH_TIMEOUT_S) -> dict[str, dict]:
    """Every service's latest metrics snapshot, {} ones left out.

    With `after_ns`, waits (up to `timeout_s`) until every running service has written a snapshot after that
    moment from its current process, so S0 / S1 are taken at a known time, never from a stale file.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = runtime.status()
        snaps = {s.name: runtime.metrics(s.name) for s in statuses}
        snaps = {name: snap for name, snap in snaps.items() if snap}
        if after_ns is None or time.monotonic() >= deadline:
            return snaps
        fresh = True
        for s in statuses:
            if s.state != "running":
                continue
            snap = snaps.get(s.name)
            if (not snap or int(snap.get("ts_ns", 0)) < after_ns
                    or (s.pid is not None and snap.get("pid") not in (None, s.pid))):
                fresh = False
                break
        if fresh:
            return snaps
        time.sleep(0.05)


def same_process(s0: Mapping[str, Any], s1: Mapping[str, Any]) -> bool:
    """Both snapshots come from one process (so its cumulative figures can be subtracted)."""
    return s0.get("instance") == s1.get("instance") and s0.get("started_ns") == s1.get("started_ns")


def counter_delta(s0: Mapping[str, Any] | None, s1: Mapping[str, Any] | None, name: str) -> int:
    """`name` grown from s0 to s1 (s0 from another process or missing: s1's count since its start)."""
    if not s1:
        return 0
    v1 = int(s1.get("counters", {}).get(name, 0))
    if not s0 or not same_process(s0, s1):
        return v1
    return max(0, v1 - int(s0.get("counters", {}).get(name, 0)))


def histogram_delta(s0: Mapping[str, Any] | None, s1: Mapping[str, Any] | None, hop: str) -> HdrHistogram | None:
    """The hop's values recorded between s0 and s1 (s1's whole histogram when s0 is another process), None when
    s1 has none."""
    enc1 = (s1 or {}).get("latency", {}).get(hop, {}).get("hdr")
    if not enc1:
        return None
    enc0 = (s0 or {}).get("latency", {}).get(hop, {}).get("hdr") if s0 and same_process(s0, s1 or {}) else None
    return subtract(enc1, enc0)


def window_counters(s0: Mapping[str, dict], s1: Mapping[str, dict]) -> dict[str, int]:
    """The phase 4 counters of a window (definitions in the module docstring)."""
    def one(service: str, name: str) -> int:
        return counter_delta(s0.get(service), s1.get(service), name)

    def every(name: str) -> int:
        return sum(counter_delta(s0.get(svc), snap, name) for svc, snap in s1.items())

    rejected_signals = one("execution_service", "signals_rejected")
    return {
        "signals": one("game_shard", "signals_published"),
        "trades": max(0, one("execution_service", "signals_executed") - rejected_signals),
        "lost": every("lost"),
        "rejected": rejected_signals + every("rx_rejected"),
        "prices": one("game_shard", "prices_rx"),
    }


def window_span_s(s0: Mapping[str, dict], s1: Mapping[str, dict], fallback: float) -> float:
    """Seconds between the two snapshots the figures come from, by the services' own clocks (game_shard's, else
    the median over the services whose process did not change); `fallback` when none has both."""
    spans = {name: (int(s1[name]["ts_ns"]) - int(s0[name]["ts_ns"])) / 1e9 for name in s1
             if name in s0 and same_process(s0[name], s1[name]) and s0[name].get("ts_ns") and s1[name].get("ts_ns")}
    spans = {k: v for k, v in spans.items() if v > 0}
    if MODE_SERVICE in spans:
        return spans[MODE_SERVICE]
    if not spans:
        return fallback
    ordered = sorted(spans.values())
    return ordered[len(ordered) // 2]


def window_problems(s0: Mapping[str, dict], s1: Mapping[str, dict], mode: str) -> list[str]:
    """Why a window cannot be used: a process changed between S0 and S1, a service without snapshot, wrong mode."""
    problems = []
    for name in sorted(set(s0) | set(s1)):
        a, b = s0.get(name), s1.get(name)
        if a and b and not same_process(a, b):
            problems.append(f"{name} restarted during the window (instance {a.get('instance')} -> "
                            f"{b.get('instance')})")
        elif a and not b:
            problems.append(f"{name} has no metrics snapshot at the window's end")
        elif b and not a:
            problems.append(f"{name} had no metrics snapshot at the window's start")
    ran = (s1.get(MODE_SERVICE) or s0.get(MODE_SERVICE) or {}).get("mode")
    if ran is None:
        problems.append(f"{MODE_SERVICE} reported no mode: was it running?")
    elif ran != mode:
        problems.append(f"{MODE_SERVICE} ran in {ran} mode, the window asked for {mode}")
    return problems


def window_hops(s0: Mapping[str, dict], s1: Mapping[str, dict]) -> dict[str, dict[str, Any]]:
    """Per hop, the window's histogram merged over the services recording it (hops without samples left out)."""
    merged: dict[str, HdrHistogram] = {}
    for name, snap in s1.items():
        for hop in snap.get("latency", {}):
            try:
                delta = histogram_delta(s0.get(name), snap, hop)
            except ValueError:
                continue  # not one process: the window is already marked invalid
            if delta is None or not delta.get_total_count():
                continue
            if hop in merged:
                merged[hop].add(delta)
            else:
                merged[hop] = delta
    order = {h: i for i, h in enumerate(HOPS)}
    return {hop: hop_stats(merged[hop]) for hop in sorted(merged, key=lambda h: (order.get(h, len(HOPS)), h))}


# -- the measurement -------------------------------------------------------------------------------------------

def _mode_value(mode: str) -> str:
    if mode not in ("zmq", "redis"):
        raise ValueError(f"mode must be zmq or redis, was {mode!r}")
    return "true" if mode == "zmq" else "false"


def _restore_dotenv(path: Path, original_text: str | None, written_text: str | None, key: str,
                    original_value: str | None) -> None:
    """Put `.env` back: byte for byte when nobody else changed it meanwhile, else only `key`'s value."""
    current = path.read_text() if path.exists() else None
    if current == written_text:
        if original_text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(original_text)
        return
    if original_value is not None:
        write_dotenv_value(key, original_value, path)
    elif current is not None:
        kept = [ln for ln in current.splitlines() if parse_dotenv(ln).keys() != {key}]
        path.write_text("\n".join(kept) + ("\n" if kept else ""))


def collect_windows(runtime: Any, root: Path, windows: int = 4, window_s: float = 60, warmup_s: float = 5,
                    modes: Iterable[str] = ("zmq", "redis"), progress: Progress | None = None,
                    restore_stack: bool = True) -> dict[str, Any]:
    """Measure `windows` windows alternating `modes` (window i runs modes[i % len(modes)]); the phase 4 `data`.

    `root` is the project folder whose `.env` the runtime reads. The original ZMQ_ENABLED of `.env` is restored at
    the end whatever happens; with `restore_stack` the stack is restarted once more when the last window left it
    in another mode than `.env` now says, so the operator's stack runs as configured again.
    """
    modes = tuple(modes)
    if not modes or windows < 1:
        raise ValueError("collect_windows needs at least one mode and one window")
    for m in modes:
        _mode_value(m)
    env_path = Path(root) / ".env"
    original_text = env_path.read_text() if env_path.exists() else None
    original_value = parse_dotenv(original_text or "").get("ZMQ_ENABLED")
    out: list[dict[str, Any]] = []
    per_window = warmup_s + window_s
    total = max(per_window * windows, 1e-9)

    def report(message: str, done_s: float) -> None:
        if progress is not None:
            progress(message, min(1.0, max(0.0, done_s / total)))

    switch = _ModeSwitch(written_text=original_text)
    ok = False
    try:
        for i in range(windows):
            mode = modes[i % len(modes)]
            out.append(_measure_window(runtime, env_path, switch, i, windows, mode, warmup_s, window_s,
                                       lambda message, done_s, base=i * per_window: report(message, base + done_s)))
        ok = True
    finally:
        _restore_dotenv(env_path, original_text, switch.written_text, "ZMQ_ENABLED", original_value)
        wanted = "zmq" if (original_value or "").strip().lower() in ("1", "true", "yes", "on") else "redis"
        if restore_stack and switch.last_mode is not None and (switch.last_mode != wanted or not switch.settled):
            try:
                runtime.restart()
            except Exception:
                if ok:
                    raise  # else the measurement's own error is the one to see
    return {"windows": out, "window_seconds": float(window_s), "warmup_seconds": float(warmup_s)}


@dataclass
class _ModeSwitch:
    """Where the mode switches left the stack: what `.env` was last written to, the mode the stack was last
    restarted into, and whether that restart completed (else some services may run in either mode)."""

    written_text: str | None
    last_mode: str | None = None
    settled: bool = True


def _measure_window(runtime: Any, env_path: Path, switch: _ModeSwitch, i: int, windows: int, mode: str,
                    warmup_s: float, window_s: float, report: Callable[[str, float], None]) -> dict[str, Any]:
    """One window: restart the stack into `mode`, warm up, take the services' snapshots before and after, and
    judge the window valid or not (a counter that restarted from zero mid-window makes it invalid)."""
    label = f"window {i + 1}/{windows} ({mode})"
    report(f"{label}: restarting with ZMQ_ENABLED={_mode_value(mode)}", 0.0)
    write_dotenv_value("ZMQ_ENABLED", _mode_value(mode), env_path)
    switch.written_text = env_path.read_text()
    switch.last_mode, switch.settled = mode, False
    runtime.restart()
    switch.settled = True
    report(f"{label}: warming up {warmup_s:g}s", 0.0)
    time.sleep(warmup_s)
    s0 = take_snapshots(runtime, after_ns=time.time_ns())
    started_at, t0 = utc_now_iso(), time.monotonic()
    end = t0 + window_s
    while (left := end - time.monotonic()) > 0:
        report(f"{label}: measuring", warmup_s + (window_s - left))
        time.sleep(min(1.0, left))
    s1 = take_snapshots(runtime, after_ns=time.time_ns())
    problems = window_problems(s0, s1, mode)
    report(f"{label}: done" + (f" (invalid: {'; '.join(problems)})" if problems else ""), warmup_s + window_s)
    return {"index": i, "mode": mode, "started_at": started_at,
            "duration_s": round(window_span_s(s0, s1, fallback=time.monotonic() - t0), 3),
            "hops": window_hops(s0, s1), "counters": window_counters(s0, s1),
            "valid": not problems, "reason": "; ".join(problems)}


def summarize(data: Mapping[str, Any], include_invalid: bool = False) -> dict[str, dict[str, dict[str, Any]]]:
    """Per mode and hop, the valid windows merged: {"count", "windows", "p50_ms", "p95_ms", "p99_ms", "max_ms",
    "mean_ms"} (for the table; the decision engine computes the confidence intervals itself)."""
    merged: dict[str, dict[str, HdrHistogram]] = {}
    sums: dict[tuple[str, str], float] = {}
    nwin: dict[tuple[str, str], int] = {}
    for w in data.get("windows", []):
        if not include_invalid and not w.get("valid", True):
            continue
        for hop, stats in w.get("hops", {}).items():
            if not stats.get("count") or not stats.get("hdr"):
                continue
            hist = decode_histogram(stats["hdr"])
            by_hop = merged.setdefault(w["mode"], {})
            if hop in by_hop:
                by_hop[hop].add(hist)
            else:
                by_hop[hop] = hist
            key = (w["mode"], hop)
            sums[key] = sums.get(key, 0.0) + float(stats.get("mean_us", 0.0)) * int(stats["count"])
            nwin[key] = nwin.get(key, 0) + 1
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for mode, by_hop in merged.items():
        for hop, hist in by_hop.items():
            count = hist.get_total_count()
            pct = hist.get_percentile_to_value_dict([50, 95, 99])
            out.setdefault(mode, {})[hop] = {
                "count": count, "windows": nwin[(mode, hop)],
                "p50_ms": pct[50] / 1000, "p95_ms": pct[95] / 1000, "p99_ms": pct[99] / 1000,
                "max_ms": hist.get_max_value() / 1000, "mean_ms": round(sums[(mode, hop)] / count / 1000, 4),
            }
    return out
