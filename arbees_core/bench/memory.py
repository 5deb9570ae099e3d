"""The memory benchmark: a soak of the whole pipeline at a high signal rate, each service's RSS slope after warm-up.

Every service (monitors, market_discovery, game_shard, execution_service, zmq_listener, api) runs as a real
process (`ProcessStack`) on the simulated venues at SIM_RATE venue messages/s per venue, a mispricing every
`misprice_every_s` (so a signal, a paper fill and a position each time) and games of `game_length_s` (so markets
resolve, positions settle and new games' markets appear: what a structure keyed by market must survive). RSS is
read from /proc every `interval_s`. After `warmup_s` (caches filling, the first games ending) the samples are
fitted with a least-squares line per service: the slope in MB/h with its 95 % interval, widened for autocorrelated
samples (`stats.trend_fit`, the fit `arbees decide` uses for the soak's memory row: RSS moves in steps that last
many samples, so they are not independent). A service is `flat` when the whole interval lies within +-limit,
`growing` when its slope is over the limit and the interval lies above 0, `inconclusive` otherwise (an interval
wider than the limit says so: the soak was too short, or RSS too jumpy, to prove anything at that limit). The rule
is `stats.trend_verdict`, which decide's memory row applies too.

Beside RSS, each sample takes the service's own heap figures from its last heartbeat (`memtrace.heap_stats`: live
Python blocks, bytes in use in the C heap), fitted the same way: RSS growing while neither grows is pages the
allocators keep (fragmentation), not a structure growing.

When a service is not flat, the soak goes on for `diagnose_s` after the RSS window: a census (SIGUSR2,
telemetry/memtrace.py) at its start and one at its end, and the report names the containers (dicts, lists, sets,
deques, by holder) that gained most items in between. With `tracemalloc_frames` > 0 every service also traces its
allocations from its start (`ARBEES_TRACEMALLOC`) and the report adds the source lines whose live allocations grew
most; off by default, because tracing's own memory per live block moves the slopes it would explain. Nothing is
taken inside the RSS window: a census or a snapshot allocates megabytes that fragmentation keeps resident (a step in
RSS), and the freed room would then absorb real growth for a while.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from arbees_core.runtime.ports import free_port
from arbees_core.harness import ProcessStack, pipeline_env, start_pipeline, wait_for
from arbees_core.telemetry.memtrace import FOLDER as TRACE_FOLDER
from arbees_core.telemetry.memtrace import growing_containers, growth_sites, snapshot_of
from arbees_core.validation.stats import (
    TREND_ACROSS,
    TREND_FLAT,
    TREND_GROWING,
    TREND_TOO_WIDE,
    LinearFit,
    trend_fit,
    trend_verdict,
)
from arbees_core.bench.common import servers

SERVICES = ("market_discovery", "execution_service", "game_shard", "zmq_listener", "polymarket_monitor",
            "kalshi_monitor", "api")
FLAT, GROWING, INCONCLUSIVE = "flat", "growing", "inconclusive"
#: Fewer samples after warm-up than this, or a shorter span, and a slope says too little to judge: RSS moves in
#: steps (arenas, dict resizes), and a few minutes of them fit a steep line either way.
MIN_SAMPLES = 10
MIN_SPAN_S = 600.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MemoryConfig:
    """duration_s: the whole soak, warm-up included; warmup_s: left out of the fit (10 min: the api's windows hold 5
    minutes, and an ended game's books are kept 5 minutes after its 2-minute game; execution_service's 10-minute
    windows (executed ids, resolved markets, its fence) start with the first signal or the first game's end, so they
    reach their steady size a few minutes into the fit: its slope is an upper bound); interval_s: between RSS
    samples; sim_rate: venue messages/s per venue (SIM_RATE); misprice_every_s: SIM_MISPRICE_EVERY_S;
    game_length_s: SIM_GAME_LENGTH_S; limit_mb_h: a slope interval within +-this is flat; tracemalloc_frames:
    ARBEES_TRACEMALLOC for every service (0: no tracing, no growth sites); diagnose_s: between the two censuses
    taken after the RSS window when a service is not flat."""

    duration_s: float = 1800.0
    warmup_s: float = 600.0
    interval_s: float = 10.0
    sim_rate: float = 100.0
    misprice_every_s: float = 1.0
    game_length_s: float = 120.0
    limit_mb_h: float = 1.0
    tracemalloc_frames: int = 0
    diagnose_s: float = 300.0
    zmq: bool = True

    def env(self) -> dict[str, str]:
        return {"SIM_GAMES": "8", "SIM_RATE": f"{self.sim_rate:g}", "SIM_MISPRICE_AT_S": "",
                "SIM_MISPRICE_EVERY_S": f"{self.misprice_every_s:g}", "SIM_MISPRICE_DURATION_MS": "300",
                "SIM_GAME_LENGTH_S": f"{self.game_length_s:g}", "GAME_COOLDOWN_MS": "500",
                "MAX_EXPOSURE_USD": "1000000000", "LOG_SAMPLE_PER_SEC": "2", "HEARTBEAT_INTERVAL_SECS": "1",
                "MIRROR_LOG_PER_SEC": "1", "DISCOVERY_INTERVAL_S": "10", "ARBEES_TRACEMALLOC": str(self.tracemalloc_frames),
                "API_PORT": str(free_port())}


@dataclass
class ServiceMemory:
    """One service's RSS series (t_s, rss_mb) and its judgement after warm-up."""

    name: str
    samples: list[tuple[float, float]] = field(default_factory=list)
    slope_mb_h: float | None = None
    ci_mb_h: tuple[float, float] | None = None
    n: int = 0
    #: What the n samples are worth as independent ones, their autocorrelation allowed for (`stats.trend_fit`).
    n_eff: float = 0.0
    rss_start_mb: float | None = None
    rss_end_mb: float | None = None
    verdict: str = INCONCLUSIVE
    reason: str = ""
    growth_sites: list[dict[str, Any]] = field(default_factory=list)
    #: The containers that gained most items over --diagnose, with who holds them (`memtrace.growing_containers`).
    growing_containers: list[dict[str, Any]] = field(default_factory=list)
    traced_mb: tuple[float, float] | None = None
    restarts: int = 0
    #: (t_s, py_blocks, glibc bytes in use) from the service's own snapshot at each RSS sample (`memtrace.heap_stats`).
    heap_samples: list[tuple[float, int, int]] = field(default_factory=list)
    #: After warm-up: live Python blocks gained per hour and glibc's bytes in use (MB/h), each with its interval.
    #: RSS growing while both are flat is the allocators' pages (fragmentation), not anything alive growing.
    py_blocks_h: tuple[float, float, float] | None = None
    malloc_mb_h: tuple[float, float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        finite = self.ci_mb_h is not None and all(math.isfinite(v) for v in self.ci_mb_h)
        out["ci_mb_h"] = list(self.ci_mb_h) if finite else None  # an unbounded interval: null, JSON has no inf
        out["samples"] = [[round(t, 1), round(m, 3)] for t, m in self.samples]
        out["heap_samples"] = [[round(t, 1), b, m] for t, b, m in self.heap_samples]
        return out


@dataclass
class MemoryResult:
    config: MemoryConfig
    services: list[ServiceMemory] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    decide_row: dict[str, Any] = field(default_factory=dict)

    def verdict(self) -> str:
        verdicts = {s.verdict for s in self.services}
        if not self.services or INCONCLUSIVE in verdicts and GROWING not in verdicts:
            return INCONCLUSIVE
        return GROWING if GROWING in verdicts else FLAT

    def exit_code(self) -> int:
        return {FLAT: 0, GROWING: 1, INCONCLUSIVE: 2}[self.verdict()]

    def to_json(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "verdict": self.verdict(), "elapsed_s": round(self.elapsed_s, 1),
                "decide_memory_row": self.decide_row,
                "services": [s.to_json() for s in self.services], "counters": self.counters, "notes": self.notes}


def after_warmup(samples: list[Any], warmup_s: float) -> tuple[list[Any], bool]:
    """The samples (time first) taken after warm-up, and whether they are enough to fit a line through: at least
    MIN_SAMPLES of them, at two times or more."""
    points = [p for p in samples if p[0] >= warmup_s]
    return points, len(points) >= MIN_SAMPLES and len({p[0] for p in points}) >= 2


def judge(svc: ServiceMemory, warmup_s: float, limit: float, conf: float = 0.95) -> None:
    """Fit the samples after warm-up and set slope, interval and verdict (see the module docstring)."""
    points, enough = after_warmup(svc.samples, warmup_s)
    svc.n = len(points)
    if points:
        svc.rss_start_mb, svc.rss_end_mb = points[0][1], points[-1][1]
    if not enough:
        svc.verdict, svc.reason = INCONCLUSIVE, (f"{len(points)} samples after the {warmup_s:g} s warm-up, "
                                                 f"need {MIN_SAMPLES}: the soak is too short to judge")
        return
    fit = trend_fit([t / 3600 for t, _ in points], [m for _, m in points], conf)
    svc.slope_mb_h, svc.ci_mb_h, svc.n_eff = fit.slope, (fit.slope_lo, fit.slope_hi), round(fit.n_eff or 0, 1)
    span = points[-1][0] - points[0][0]
    if span < MIN_SPAN_S:
        svc.verdict, svc.reason = INCONCLUSIVE, (f"{span / 60:.1f} min measured after warm-up, need "
                                                 f"{MIN_SPAN_S / 60:g}: too short to tell a leak from filling caches")
    elif svc.restarts:
        svc.verdict, svc.reason = INCONCLUSIVE, f"the process changed {svc.restarts} time(s) during the soak"
    else:
        svc.verdict, svc.reason = _VERDICTS[trend_verdict(fit, limit)](limit, fit)
    svc.py_blocks_h, svc.malloc_mb_h = heap_trends(svc.heap_samples, warmup_s, conf)


def heap_trends(samples: list[tuple[float, int, int]], warmup_s: float, conf: float = 0.95
                ) -> tuple[tuple[float, float, float] | None, tuple[float, float, float] | None]:
    """(slope, lo, hi) of live Python blocks per hour and of glibc's bytes in use in MB/h after warm-up; None each
    without enough samples (a service without glibc reports no malloc figures: 0 throughout, read as none)."""
    points, enough = after_warmup(samples, warmup_s)
    if not enough:
        return None, None
    hours = [t / 3600 for t, _, _ in points]
    blocks = trend_fit(hours, [float(b) for _, b, _ in points], conf)
    in_use = [m / 2**20 for _, _, m in points]
    malloc = trend_fit(hours, in_use, conf) if any(in_use) else None
    return ((blocks.slope, blocks.slope_lo, blocks.slope_hi),
            None if malloc is None else (malloc.slope, malloc.slope_lo, malloc.slope_hi))


#: `stats.trend_verdict`'s outcome -> (verdict, reason) of the benchmark's table.
_VERDICTS: dict[str, Callable[[float, LinearFit], tuple[str, str]]] = {
    TREND_FLAT: lambda limit, fit: (FLAT, f"interval within +-{limit:g} MB/h"),
    TREND_GROWING: lambda limit, fit: (GROWING, f"slope over +{limit:g} MB/h, interval above 0"),
    TREND_TOO_WIDE: lambda limit, fit: (INCONCLUSIVE, f"interval wider than +-{limit:g} MB/h (samples worth "
                                                      f"{fit.n_eff or 0:.1f} independent ones): cannot tell at this "
                                                      "limit"),
    TREND_ACROSS: lambda limit, fit: (INCONCLUSIVE, f"interval reaches past +-{limit:g} MB/h"),
}


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (VmRSS), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def run_memory(cfg: MemoryConfig, folder: Path, progress: Progress | None = None) -> MemoryResult:
    """Start the pipeline, sample every service's RSS for `cfg.duration_s`, judge each service; when one is not flat
    (and tracing is on), find its growing lines over `cfg.diagnose_s` more; stop the pipeline."""
    say = progress or (lambda _line: None)
    folder.mkdir(parents=True, exist_ok=True)
    result = MemoryResult(cfg)
    with servers(folder / "servers") as srv:
        env = {**pipeline_env(cfg.zmq, srv.redis_url, srv.database_url, folder), **cfg.env()}
        stack = ProcessStack(folder, env)
        try:
            say("starting the pipeline")
            start_pipeline(stack, cfg.zmq)
            stack.start("api")
            wait_for(lambda: stack.counter("execution_service", "signals_executed") > 0, 120, "a first fill", stack)
            result.services = _sample(stack, cfg, say)
            for svc in result.services:
                judge(svc, cfg.warmup_s, cfg.limit_mb_h)
            result.counters = {f"{n}.{k}": int(stack.metrics(n).get("counters", {}).get(k, 0)) for n, k in (
                ("execution_service", "signals_executed"), ("execution_service", "positions_settled"),
                ("game_shard", "prices_rx"), ("game_shard", "signals_published"), ("zmq_listener", "mirrored"))}
            suspects = [s for s in result.services if s.verdict != FLAT]
            if suspects:
                _diagnose(stack, cfg, folder, suspects, say)
        finally:
            stack.stop_all()
    if cfg.tracemalloc_frames == 0 and any(s.verdict != FLAT for s in result.services):
        result.notes.append("tracemalloc off: growing containers only; --tracemalloc 1 adds the growing lines")
    result.decide_row = decide_memory_row(result)
    return result


def decide_memory_row(result: MemoryResult) -> dict[str, Any]:
    """`arbees decide`'s memory row on these samples (its limit from playbooks/decision.yaml, this run's warm-up):
    what a phase 5 soak like this one would be judged."""
    from arbees_core.validation.decide import memory_row
    from arbees_core.validation.thresholds import load_thresholds

    count = min((len(s.samples) for s in result.services), default=0)
    samples = [{"t_s": result.services[0].samples[i][0],
                "services": {s.name: {"rss_mb": s.samples[i][1]} for s in result.services}} for i in range(count)]
    row = memory_row(samples, load_thresholds(overrides={"memory_warmup_s": result.config.warmup_s}))
    return {"verdict": row.verdict, "reason": row.reason, "target": row.target}


def _sample(stack: ProcessStack, cfg: MemoryConfig, say: Progress) -> list[ServiceMemory]:
    """RSS of every service every `interval_s` until the soak's end."""
    series = {n: ServiceMemory(n) for n in SERVICES}
    pids = {n: stack.procs[n].pid for n in SERVICES}
    t0 = time.monotonic()
    k = 0
    while (t := time.monotonic() - t0) < cfg.duration_s:
        for name, svc in series.items():
            proc = stack.procs[name]
            if proc.pid != pids[name] or proc.poll() is not None:
                svc.restarts += 1
                pids[name] = proc.pid
            mb = rss_mb(proc.pid)
            if mb is not None:
                svc.samples.append((t, mb))
            heap = stack.metrics(name).get("heap") or {}
            if "py_blocks" in heap:  # the service's own figures, from its last heartbeat (<= 1 s old)
                svc.heap_samples.append((t, int(heap["py_blocks"]), int(heap.get("malloc_in_use", 0))))
        if k % max(1, round(60 / cfg.interval_s)) == 0:
            say(f"soak {t:.0f}/{cfg.duration_s:.0f}s " + " ".join(
                f"{n}={s.samples[-1][1]:.1f}MB" for n, s in series.items() if s.samples))
        k += 1
        time.sleep(max(0.0, t0 + k * cfg.interval_s - time.monotonic()))
    return list(series.values())


def _diagnose(stack: ProcessStack, cfg: MemoryConfig, folder: Path, suspects: list[ServiceMemory],
              say: Progress) -> None:
    """Two censuses (and snapshots, when tracing) of each suspect, `diagnose_s` apart, and what grew in between."""
    pids = {s.name: stack.procs[s.name].pid for s in suspects}
    say(f"not flat: {', '.join(pids)}; looking for what grows over {cfg.diagnose_s:.0f}s more")
    for round_ in (1, 2):
        for name in pids:
            if stack.procs[name].poll() is None:
                stack.procs[name].send_signal(signal.SIGUSR2)
        wait_for(lambda: all(len(_censuses(folder, n, p)) >= round_ for n, p in pids.items()), 120,
                 f"memory census {round_}", stack, interval=1.0)
        if round_ == 1:
            time.sleep(cfg.diagnose_s)
    for svc in suspects:
        _sites(svc, folder, pids[svc.name])


def _censuses(folder: Path, name: str, pid: int | None) -> list[Path]:
    found = (folder / ".arbees" / TRACE_FOLDER).glob(f"{name}.{pid}.*.census.json")
    return sorted(found, key=lambda p: int(p.name.split(".")[-3]))


def _sites(svc: ServiceMemory, folder: Path, pid: int | None) -> None:
    censuses = _censuses(folder, svc.name, pid)
    if len(censuses) < 2:
        return
    first, last = censuses[0], censuses[-1]
    try:
        svc.growing_containers = growing_containers(first, last)
        if snapshot_of(first).exists() and snapshot_of(last).exists():
            svc.growth_sites, svc.traced_mb = growth_sites(snapshot_of(first), snapshot_of(last))
    except (OSError, EOFError, ValueError):
        return


def fmt_ci(ci: tuple[float, float] | None) -> str:
    if ci is None or not all(math.isfinite(v) for v in ci):
        return "-"
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"
