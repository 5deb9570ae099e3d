"""Phase 5 as data: the plan's `monitor.sh`, one sample per interval, appended to disk as it goes.

monitor.sh prints, every 5 minutes, the services not "Up", `zmq.*error` log lines, `Mirrored` lines of zmq_listener
and the mean `End-to-end latency` of execution_service's log lines. A sample here holds the same views plus what
the criteria need ("no crashes", "memory stable", "rates steady", "latency consistent"):

* services: state and restarts (runtime.status()), rss_mb / cpu_pct (runtime.resources(); None when not running;
  cpu_pct is the share of one core since the previous sample). Every sample is kept; `arbees decide` judges memory
  on those from `memory_warmup_s` on (playbooks/decision.yaml), so caches filling at start are not read as growth;
* error_lines: log lines of every service in the interval with " ERROR " or " CRITICAL " (records, not their
  traceback lines); zmq_error_lines: those of them matching (?i)zmq.*error (the plan's grep);
* mirrored: zmq_listener log lines with "Mirrored" in the interval (the plan's grep). Those lines are rate-limited
  (MIRROR_LOG_PER_SEC per stream), so they only say "mirroring is alive"; the rate is `mirrored_per_s`, from
  zmq_listener's `mirrored` counter (frames handed to the Redis mirror) over the interval;
* prices_per_s: game_shard's `prices_rx` counter over the interval;
* end_to_end: execution_service's `end_to_end` histogram over the interval (S1 - S0; p50/p95/mean in ms, None
  when no signal was executed);
* lost / rejected / messages: cumulative at sample time, summed over the services' current processes (they restart
  from zero with a process): lost = inbox `lost`, rejected = the real errors besides log lines, malformed inputs
  (`malformed`: every inbox's `rx_rejected`) + failed writes (`failed_writes`: the trade writer's failed attempts
  and records the database refused), messages = inbox `rx` (messages every service accepted);
* risk_rejected: execution_service's signals refused before any order, per kind (`signals_rejected.<kind>`:
  exposure, order_size, kill_switch, expired, positions_unknown), cumulative; signals: signals it received
  (`signals_rx`); leg_misses: its leg misses. These are the risk limits working, not errors;
* exposure_usd / unhedged: execution_service's open exposure and its unhedged contracts at sample time
  (`{"contracts", "pairs", "oldest_s"}`; absent when execution_service reports no positions).

A counter or histogram whose process changed within the interval counts from the new process's start.

Files in `folder`: `soak.json` (duration_s, interval_s, started_at, mode, resumed) and `samples.jsonl` (one sample
per line, flushed when taken). Run again with the same folder after an interruption and the soak continues from
the last sample's `t_s`: it lasts `duration_s` in total across interruptions.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arbees_core.validation.latency import counter_delta, histogram_delta, same_process, take_snapshots
from arbees_core.validation.results import utc_now_iso

SAMPLES_FILE, META_FILE = "samples.jsonl", "soak.json"
_ZMQ_ERROR = re.compile(r"(?i)zmq.*error")
_ERROR_MARKERS = (" ERROR ", " CRITICAL ")

Progress = Callable[[str, float], None]


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The samples of a samples.jsonl (a line cut short by an interruption is ignored)."""
    out: list[dict[str, Any]] = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _append_sample(path: Path, sample: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(sample, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _mode_of(snaps: dict[str, dict]) -> str:
    for name in ("game_shard", "execution_service", "kalshi_monitor"):
        mode = snaps.get(name, {}).get("mode")
        if mode:
            return str(mode)
    return next((str(s["mode"]) for s in snaps.values() if s.get("mode")), "")


def _cumulative(snaps: dict[str, dict], name: str) -> int:
    return sum(int(s.get("counters", {}).get(name, 0)) for s in snaps.values())


def _elapsed_s(s0: dict[str, Any] | None, s1: dict[str, Any] | None, fallback: float) -> float:
    """Seconds the counter delta of this service covers (from its snapshots' own clocks when available)."""
    if not s1 or not s1.get("ts_ns"):
        return fallback
    if s0 and s0.get("ts_ns") and same_process(s0, s1):
        start = int(s0["ts_ns"])
    else:  # a new process: counted since it started (or since the last sample, whichever is later)
        start = max(int(s1.get("started_ns", 0)), int((s0 or {}).get("ts_ns", 0)))
    seconds = (int(s1["ts_ns"]) - start) / 1e9
    return seconds if seconds > 0 else fallback


def _rate(s0: dict[str, dict], s1: dict[str, dict], service: str, counter: str, fallback_s: float) -> float:
    a, b = s0.get(service), s1.get(service)
    if not b:
        return 0.0
    delta = counter_delta(a, b, counter)
    return round(delta / _elapsed_s(a, b, fallback_s), 3) if delta else 0.0


def _end_to_end(s0: dict[str, dict], s1: dict[str, dict]) -> dict[str, Any]:
    try:
        hist = histogram_delta(s0.get("execution_service"), s1.get("execution_service"), "end_to_end")
    except ValueError:
        hist = None
    count = hist.get_total_count() if hist is not None else 0
    if not count:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "mean_ms": None}
    pct = hist.get_percentile_to_value_dict([50, 95])
    return {"count": count, "p50_ms": pct[50] / 1000, "p95_ms": pct[95] / 1000,
            "mean_ms": round(hist.get_mean_value() / 1000, 3)}


def take_sample(runtime: Any, prev: dict[str, dict], since_s: float, t_s: float) -> tuple[dict[str, Any], dict]:
    """One sample covering the last `since_s` seconds; returns it and the snapshots it was taken from."""
    at = utc_now_iso()
    statuses = runtime.status()
    services: dict[str, dict[str, Any]] = {}
    error_lines = zmq_error_lines = mirrored = 0
    for st in statuses:
        res = runtime.resources(st.name) if st.state == "running" else {}
        services[st.name] = {"state": st.state, "restarts": int(st.restarts),
                             "rss_mb": res.get("rss_mb"), "cpu_pct": res.get("cpu_pct")}
        text = runtime.logs(st.name, since_s=since_s)
        for line in text.splitlines():
            if any(m in line for m in _ERROR_MARKERS):
                error_lines += 1
                if _ZMQ_ERROR.search(line):
                    zmq_error_lines += 1
            if st.name == "zmq_listener" and "Mirrored" in line:
                mirrored += 1
    snaps = take_snapshots(runtime)
    sample = {
        "at": at, "t_s": round(t_s, 3), "services": services,
        "error_lines": error_lines, "zmq_error_lines": zmq_error_lines,
        "mirrored": mirrored, "mirrored_per_s": _rate(prev, snaps, "zmq_listener", "mirrored", since_s),
        "prices_per_s": _rate(prev, snaps, "game_shard", "prices_rx", since_s),
        "end_to_end": _end_to_end(prev, snaps),
        "lost": _cumulative(snaps, "lost"),
        "messages": _cumulative(snaps, "rx"),
        **_execution_risk(snaps),
    }
    sample["rejected"] = sample["malformed"] + sample["failed_writes"]
    return sample, snaps


def _execution_risk(snaps: dict[str, dict]) -> dict[str, Any]:
    """Malformed inputs and failed writes (errors), and execution_service's risk figures (not errors)."""
    ex = snaps.get("execution_service", {})
    counters, writer = ex.get("counters", {}), ex.get("writer") or {}
    positions = ex.get("positions")
    out: dict[str, Any] = {
        "malformed": _cumulative(snaps, "rx_rejected"),
        "failed_writes": int(writer.get("errors", 0)) + int(writer.get("rejected", 0)),
        "risk_rejected": {k.split(".", 1)[1]: int(v) for k, v in counters.items()
                          if k.startswith("signals_rejected.")},
        "signals": int(counters.get("signals_rx", 0)), "leg_misses": int(counters.get("leg_misses", 0)),
    }
    if isinstance(positions, dict):
        out["exposure_usd"] = positions.get("exposure_usd")
        out["unhedged"] = {"contracts": positions.get("unhedged_contracts", 0),
                           "pairs": positions.get("unhedged_pairs", 0),
                           "oldest_s": positions.get("oldest_unhedged_s", 0)}
    return out


def run_soak(runtime: Any, folder: Path, duration_s: float, interval_s: float, progress: Progress | None = None,
             stop: threading.Event | None = None) -> dict[str, Any]:
    """Sample the running stack every `interval_s` until `duration_s` (in total, across resumptions) or `stop`.

    Each sample is appended to `folder/samples.jsonl` when taken. Returns the phase 5 `data` (results.py) with every
    sample of the soak so far, including those of earlier, interrupted runs.
    """
    if interval_s <= 0 or duration_s <= 0:
        raise ValueError("duration_s and interval_s must be positive")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    samples_path, meta_path = folder / SAMPLES_FILE, folder / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = {}
    samples = read_samples(samples_path)
    resuming = samples_path.exists()
    offset = float(samples[-1]["t_s"]) if samples else 0.0

    prev = take_snapshots(runtime)
    for st in runtime.status():  # primes the CPU figures, which are "since the previous call"
        if st.state == "running":
            runtime.resources(st.name)
    meta = {
        "duration_s": float(duration_s), "interval_s": float(interval_s),
        "started_at": meta.get("started_at") or utc_now_iso(),
        "mode": meta.get("mode") or _mode_of(prev),
        "resumed": int(meta.get("resumed", 0)) + (1 if resuming else 0),
    }
    _write_json(meta_path, meta)
    samples_path.touch()
    stop = stop or threading.Event()

    def data() -> dict[str, Any]:
        return {"duration_s": float(duration_s), "interval_s": float(interval_s), "mode": meta["mode"],
                "resumed": meta["resumed"], "samples": samples}

    t0 = time.monotonic()
    last = t0
    k = 0
    while offset + k * interval_s < duration_s - 1e-9:
        k += 1
        due = t0 + min(k * interval_s, duration_s - offset)
        if progress is not None:
            progress(f"soak {offset + (k - 1) * interval_s:.0f}/{duration_s:.0f}s", (offset + (k - 1) * interval_s)
                     / duration_s)
        if stop.wait(max(0.0, due - time.monotonic())):
            break
        now = time.monotonic()
        sample, prev = take_sample(runtime, prev, since_s=now - last, t_s=offset + (now - t0))
        last = now
        _append_sample(samples_path, sample)
        samples.append(sample)
    if progress is not None:
        done = float(samples[-1]["t_s"]) if samples else 0.0
        progress(f"soak {done:.0f}/{duration_s:.0f}s" + (" (stopped)" if stop.is_set() else ""),
                 min(1.0, done / duration_s))
    return data()
