"""One benchmark run: raw limits, pipeline hops in both modes, throughput; then ratios and targets.

Everything runs in one invocation so the ratios compare figures measured minutes apart on the same machine.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from arbees_core.bench.common import HopRow, Servers, new_histogram, row_from_histogram, servers
from arbees_core.bench.machine import machine_info
from arbees_core.bench.pipeline import MISPRICE_EVERY_S, TRAFFIC_MARGIN_S, record_traffic, run_pipeline
from arbees_core.bench.raw import RawSpec, measure_raw, run_raw
from arbees_core.bench.targets import configurations, ratios, targets
from arbees_core.bench.throughput import ThroughputResult, run_throughput

#: (path, zmq mode) of every throughput measurement.
THROUGHPUT_PATHS = (("monitor->game_shard", True), ("monitor->game_shard", False), ("mirror", True))
FULL_RATES = (2000.0, 5000.0, 10000.0, 20000.0, 30000.0, 40000.0)
RAW_MODES = ("zmq", "redis")
#: --quick holds one step, the target rate (ARCHITECTURE.md: 20k updates/s with 0 lost).
QUICK_RATES = (20000.0,)
#: The signal hop's rate: one mispricing, hence one signal, every MISPRICE_EVERY_S.
SIGNAL_RATE = 1.0 / MISPRICE_EVERY_S


@dataclass(frozen=True)
class BenchConfig:
    """rate: msg/s for the latency runs (the targets are stated at 2k); duration_s: measured window of each latency
    run; hold_s: how long each throughput rate is held (the issue: 30 s); rates: throughput steps, ascending;
    traffic_margin_s: venue traffic recorded beyond warm-up + window (start-up to the first fill, with room);
    spin_us: also measure ZMQ mode with ZMQ_SPIN_US=spin_us (rows `<hop>@spin`; 0 skips); compose: also measure
    both modes through container networking on a Docker engine (rows `<hop>@compose`; skipped with a note where
    no engine answers)."""

    rate: float = 2000.0
    duration_s: float = 30.0
    warmup_s: float = 3.0
    hold_s: float = 30.0
    rates: tuple[float, ...] = FULL_RATES
    raw_s: float = 10.0
    folder: Path | None = None
    rt_priority: int = 10
    traffic_margin_s: float = TRAFFIC_MARGIN_S
    spin_us: int = 2000
    compose: bool = True

    def rt_enabled(self) -> bool:
        """Whether the real-time configuration (ARBEES_RT_PRIORITY) is measured too: asked for and permitted."""
        from arbees_core.services.sched import rt_permitted

        return self.rt_priority > 0 and rt_permitted(self.rt_priority)

    @classmethod
    def quick(cls, rate: float = 2000.0, duration_s: float | None = None, rt_priority: int = 10,
              spin_us: int = 2000) -> "BenchConfig":
        """About a minute: 3 s latency windows, 2 s raw windows, one throughput step (the target rate) held 2 s.
        Every row and target of a full run, with wider error bars (its replayed hop is at 20k/s, so it has no ratio
        to the raw hop at 2k/s); a full run holds each step 30 s."""
        d = duration_s or 3.0
        return cls(rate=rate, duration_s=d, warmup_s=1.0, hold_s=min(d, 2.0), rates=QUICK_RATES, raw_s=min(d, 2.0),
                   rt_priority=rt_priority, traffic_margin_s=15.0, spin_us=spin_us)

    def raw_spec(self, mode: str, redis_url: str, rate: float | None = None, **options: Any) -> RawSpec:
        """A raw hop over this config's raw window (its first quarter, at most 0.5 s, untimed), at `rate` (default
        the latency runs' rate); `options`: RawSpec's payload / spin."""
        return RawSpec(mode, rate or self.rate, self.raw_s, redis_url, warmup_s=min(0.5, self.raw_s / 4), **options)

    def phases(self) -> list[tuple[str, float]]:
        """(name, planned seconds) of every phase, for the progress display."""
        out = [("record venue traffic", 1.0)] + [(f"raw {m} (before)", self.raw_s) for m in RAW_MODES]
        out += [(f"raw {m} at the signal rate", self.raw_s) for m in RAW_MODES]
        if self.spin_us > 0:
            out.append(("raw zmq, polling receiver", self.raw_s))
        out += [(f"pipeline {m}", self.duration_s) for m in ("zmq", "redis")]
        if self.spin_us > 0:
            out.append(("pipeline zmq spin", self.duration_s))
        if self.rt_enabled():
            out += [(f"pipeline {m} rt", self.duration_s) for m in ("zmq", "redis")]
        if self.compose:
            out += [(f"pipeline {m} compose", self.duration_s) for m in ("zmq", "redis")]
        out += [(f"raw {m} (after)", self.raw_s) for m in RAW_MODES]
        out += [(f"throughput {p} {'zmq' if z else 'redis'}", self.hold_s * len(self.rates)) for p, z in THROUGHPUT_PATHS]
        return out


@dataclass
class BenchResult:
    machine: dict[str, Any]
    rows: list[HopRow] = field(default_factory=list)
    throughput: list[ThroughputResult] = field(default_factory=list)
    ratios: dict[str, float | None] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    configurations: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, hop: str, mode: str) -> HopRow | None:
        return next((r for r in self.rows if r.hop == hop and r.mode == mode), None)

    def to_json(self) -> dict[str, Any]:
        """The issue's shape (machine, rows, throughput, ratios, targets), plus the verdicts per configuration and
        notes on what was skipped."""
        return {"machine": self.machine, "rows": [r.to_json() for r in self.rows],
                "throughput": [t.to_json() for t in self.throughput], "ratios": self.ratios,
                "targets": self.targets, "configurations": self.configurations, "notes": self.notes}


#: A phase reports progress as (phase name, seconds advanced); None starts the phase.
Progress = Callable[[str, float | None], None]


def run_suite(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    """Run every measurement once, in order, then derive the ratios and the target verdicts (`targets.py`)."""
    folder = cfg.folder or Path(tempfile.mkdtemp(prefix="arbees-bench-"))
    with servers(folder / "servers") as srv:
        run = _Run(cfg, srv, folder, progress, BenchResult(machine_info(srv)))
        traffic = _phase(progress, "record venue traffic", 1.0,
                         lambda: record_traffic(cfg.rate, run.traffic_s(), folder / "traffic"))
        before = measure_raw_hops(cfg, srv.redis_url, progress, "before")
        other_raw = reference_raw_hops(cfg, srv.redis_url, progress)
        _pipeline_rows(run, traffic)
        after = measure_raw_hops(cfg, srv.redis_url, progress, "after")
        _raw_rows(run, before, after, other_raw)
        _throughput_rows(run)
        _judge(run)
    return run.result


@dataclass
class _Run:
    """What the phases of one suite run share: its settings, servers, folder, progress display and the result they
    fill in."""

    cfg: BenchConfig
    srv: Servers
    folder: Path
    progress: Progress | None
    result: BenchResult

    def traffic_s(self) -> float:
        """Seconds of venue traffic one pipeline run replays: warm-up, window and margin."""
        return self.cfg.warmup_s + self.cfg.duration_s + self.cfg.traffic_margin_s

    def tick(self, phase: str) -> Callable[[float], None] | None:
        """Start `phase` on the progress display; what advances it (None without a display)."""
        progress = self.progress
        if progress is None:
            return None
        progress(phase, None)
        return lambda s: progress(phase, s)

    def pipeline(self, traffic: dict[str, Path], zmq_mode: bool, tag: str = "", **settings: int) -> list[HopRow]:
        """One pipeline run as one progress phase (`pipeline zmq`, `pipeline redis rt`, ...): its hop rows."""
        cfg = self.cfg
        name = f"pipeline {'zmq' if zmq_mode else 'redis'}" + (f" {tag}" if tag else "")
        return run_pipeline(zmq_mode, cfg.rate, cfg.duration_s, cfg.warmup_s, self.srv.redis_url,
                            self.srv.database_url, self.folder / name.replace(" ", "-"), self.tick(name),
                            traffic=traffic, **settings).rows


def _pipeline_rows(run: _Run, traffic: dict[str, Path]) -> None:
    """The pipeline in both modes: default settings, ZMQ_SPIN_US, real-time scheduling, container networking."""
    cfg, result = run.cfg, run.result
    for zmq_mode in (True, False):
        result.rows += run.pipeline(traffic, zmq_mode)
    if cfg.spin_us > 0:  # Redis mode does not spin: its default rows are this configuration's reference
        result.rows += run.pipeline(traffic, True, "spin", spin_us=cfg.spin_us)
    if cfg.rt_enabled():
        # ARBEES_RT_PRIORITY (rows `price@rt`, ...), the configuration the README recommends for latency. Its
        # ratios use the same raw rows as the default run: bare pyzmq between two processes both under
        # SCHED_FIFO is slower than between two normally scheduled ones, so the default raw hop is the stricter
        # reference.
        for zmq_mode in (True, False):
            result.rows += run.pipeline(traffic, zmq_mode, "rt", rt_priority=cfg.rt_priority)
    elif cfg.rt_priority > 0:
        result.notes.append(f"real-time rows (ARBEES_RT_PRIORITY={cfg.rt_priority}) skipped: this process may "
                            "not use SCHED_FIFO (needs CAP_SYS_NICE or an rtprio limit)")
    if cfg.compose:
        result.rows += compose_rows(cfg, run.folder, run.traffic_s(), run.tick, result.notes)


def _raw_rows(run: _Run, before: dict[str, RawRun], after: dict[str, RawRun], other_raw: list[HopRow]) -> None:
    """The raw rows first in the table (both windows merged), and a note per mode on how far the windows differ."""
    raw = [merged_raw_row(mode, run.cfg.rate, before[mode], after[mode]) for mode in RAW_MODES]
    run.result.rows[:0] = raw + other_raw
    run.result.notes += [raw_drift_note(mode, before[mode], after[mode]) for mode in RAW_MODES]


def _throughput_rows(run: _Run) -> None:
    """Each throughput path's steps, and the hop at its first (lowest) step's rate as a `@replay` row."""
    cfg, srv = run.cfg, run.srv
    for path, zmq_mode in THROUGHPUT_PATHS:
        name = f"throughput {path} {'zmq' if zmq_mode else 'redis'}"
        tp = run_throughput(path, zmq_mode, list(cfg.rates), cfg.hold_s, srv.redis_url, srv.database_url,
                            run.folder / name.replace(" ", "-").replace(">", ""), run.tick(name))
        run.result.throughput.append(tp)
        first = tp.steps[0].row if tp.steps else None
        if first is not None:  # replayed without the simulator
            run.result.rows.append(first)


def _judge(run: _Run) -> None:
    """The configurations measured, then the ratios and verdicts derived once from the rows (`targets.py`)."""
    result = run.result
    result.machine["rt_priority"] = run.cfg.rt_priority if run.cfg.rt_enabled() else 0
    result.machine["spin_us"] = run.cfg.spin_us
    result.ratios = ratios(result)
    result.targets = targets(result)
    result.configurations = configurations(result)


def compose_rows(cfg: BenchConfig, folder: Path, seconds: float, tick: Callable[[str], Any],
                 notes: list[str]) -> list[HopRow]:
    """Both modes through container networking (arbees_core/bench/compose.py), or a note saying why not."""
    from arbees_core.bench.compose import START_MARGIN_S, build_image, run_compose_pipeline, unavailable

    why = unavailable()
    if why:
        notes.append(f"compose rows skipped: {why}")
        return []
    build_image()
    traffic = record_traffic(cfg.rate, seconds + START_MARGIN_S, folder / "traffic-compose")
    rows: list[HopRow] = []
    for zmq_mode in (True, False):
        name = f"pipeline {'zmq' if zmq_mode else 'redis'} compose"
        rows += run_compose_pipeline(zmq_mode, cfg.rate, cfg.duration_s, cfg.warmup_s, traffic,
                                     folder / name.replace(" ", "-"), tick(name))
    return rows


#: Raw p50s before and after the pipeline runs further apart than this (relative) make a note say so.
RAW_DRIFT_WARN = 0.25
RawRun = tuple[HdrHistogram | None, int]


def measure_raw_hops(cfg: BenchConfig, redis_url: str, progress: Progress | None, when: str) -> dict[str, RawRun]:
    """The raw hops once (`when`: before or after the pipeline runs). The suite measures them on both sides of the
    latency runs and merges the two: one raw window measured while the host was busy (raw Redis p50 1 ms, five
    times its usual figure, in one run) would otherwise skew every ratio of that run."""
    return {mode: _phase(progress, f"raw {mode} ({when})", cfg.raw_s,
                         lambda: measure_raw(cfg.raw_spec(mode, redis_url)))
            for mode in RAW_MODES}


def reference_raw_hops(cfg: BenchConfig, redis_url: str, progress: Progress | None) -> list[HopRow]:
    """The raw hops that are one hop's or configuration's own reference: at the signal rate (`raw@signal`), and
    with a polling receiver (`raw@spin`) when ZMQ_SPIN_US is measured."""
    rows = measure_signal_rate_hops(cfg, redis_url, progress)
    if cfg.spin_us > 0:
        rows.append(measure_polling_raw_hop(cfg, redis_url, progress))
    return rows


def measure_signal_rate_hops(cfg: BenchConfig, redis_url: str, progress: Progress | None) -> list[HopRow]:
    """The raw hops at the signal hop's rate and payload (rows `raw@signal`): the signal hop's own reference.

    A signal comes every 0.1 s, so its receiver is idle when it arrives; on the 2-vCPU VMs here bare pyzmq took
    385 us p50 at 10 msg/s against 64-71 us at 2 000 msg/s (an idle vCPU has to be woken). Against the raw hop at
    2k/s the signal hop looks slow; against this one it is measured at the same rate, as the issue asks."""
    spec = lambda mode: cfg.raw_spec(mode, redis_url, SIGNAL_RATE, payload="signal")  # noqa: E731
    return [_phase(progress, f"raw {mode} at the signal rate", cfg.raw_s, lambda: run_raw(spec(mode), "raw@signal"))
            for mode in RAW_MODES]


def measure_polling_raw_hop(cfg: BenchConfig, redis_url: str, progress: Progress | None) -> HopRow:
    """Bare pyzmq whose receiver polls instead of blocking (row `raw@spin`): the `@spin` rows' own reference.
    Their ratio to the blocking `raw` row is the issue's target; this one says how much of what the polling gains
    is the polling itself (bare pyzmq here: 114 -> 57 us p50 at 2 000 msg/s)."""
    spec = cfg.raw_spec("zmq", redis_url, spin=True)
    return _phase(progress, "raw zmq, polling receiver", cfg.raw_s, lambda: run_raw(spec, "raw@spin"))


def _phase(progress: Progress | None, phase: str, seconds: float, measure: Callable[[], Any]) -> Any:
    """`measure()` as one phase of the progress display (started, then advanced by its planned seconds)."""
    if progress:
        progress(phase, None)
    out = measure()
    if progress:
        progress(phase, seconds)
    return out


def merged_raw_row(mode: str, rate: float, before: RawRun, after: RawRun) -> HopRow:
    """The `raw` row: both windows' samples in one histogram, both windows' losses."""
    merged = new_histogram()
    windows = tuple(hist for hist, _ in (before, after) if hist is not None)
    for hist in windows:
        merged.add(hist)
    return row_from_histogram("raw", mode, rate, merged, before[1] + after[1], windows)


def raw_drift_note(mode: str, before: RawRun, after: RawRun) -> str:
    """What the raw hop measured on each side of the pipeline runs, and a warning when the machine changed."""
    p50 = [h.get_value_at_percentile(50) if h is not None and h.get_total_count() else None for h, _ in (before, after)]
    text = f"raw {mode} hop p50 {_us(p50[0])} before the pipeline runs, {_us(p50[1])} after (the raw row merges both)"
    if None not in p50 and abs(p50[1] - p50[0]) > RAW_DRIFT_WARN * min(p50):  # type: ignore[operator]
        text += ": the machine's speed changed during the run, so its ratios to raw are less certain"
    return text


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} us"
