"""One benchmark run: raw limits, pipeline hops in both modes, throughput; then ratios and targets.

Everything runs in one invocation so the ratios compare figures measured minutes apart on the same machine.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import HopRow, servers
from benchmarks.pipeline import TRAFFIC_MARGIN_S, record_traffic, run_pipeline
from benchmarks.raw import RawSpec, run_raw
from benchmarks.throughput import ThroughputResult, run_throughput

#: (path, zmq mode) of every throughput measurement.
THROUGHPUT_PATHS = (("monitor->game_shard", True), ("monitor->game_shard", False), ("mirror", True))
FULL_RATES = (2000.0, 5000.0, 10000.0, 20000.0, 30000.0, 40000.0)
QUICK_RATES = (2000.0, 20000.0)


@dataclass(frozen=True)
class BenchConfig:
    """rate: msg/s for the latency runs (the targets are stated at 2k); duration_s: measured window of each latency
    run; hold_s: how long each throughput rate is held (the issue: 30 s); rates: throughput steps, ascending."""

    rate: float = 2000.0
    duration_s: float = 30.0
    warmup_s: float = 3.0
    hold_s: float = 30.0
    rates: tuple[float, ...] = FULL_RATES
    raw_s: float = 10.0
    folder: Path | None = None
    rt_priority: int = 10

    def rt_enabled(self) -> bool:
        """Whether the real-time configuration (ARBEES_RT_PRIORITY) is measured too: asked for and permitted."""
        from arbees_core.services.sched import rt_permitted

        return self.rt_priority > 0 and rt_permitted(self.rt_priority)

    @classmethod
    def quick(cls, rate: float = 2000.0, duration_s: float | None = None, rt_priority: int = 10) -> "BenchConfig":
        """About two minutes: short windows, two throughput steps."""
        d = duration_s or 6.0
        return cls(rate=rate, duration_s=d, warmup_s=1.0, hold_s=min(d, 3.0), rates=QUICK_RATES, raw_s=min(d, 4.0),
                   rt_priority=rt_priority)

    def phases(self) -> list[tuple[str, float]]:
        """(name, planned seconds) of every phase, for the progress display."""
        out = [("record venue traffic", 1.0)] + [(f"raw {m}", self.raw_s) for m in ("zmq", "redis")]
        out += [(f"pipeline {m}", self.duration_s) for m in ("zmq", "redis")]
        if self.rt_enabled():
            out += [(f"pipeline {m} rt", self.duration_s) for m in ("zmq", "redis")]
        out += [(f"throughput {p} {'zmq' if z else 'redis'}", self.hold_s * len(self.rates)) for p, z in THROUGHPUT_PATHS]
        return out


@dataclass
class BenchResult:
    machine: dict[str, Any]
    rows: list[HopRow] = field(default_factory=list)
    throughput: list[ThroughputResult] = field(default_factory=list)
    ratios: dict[str, float | None] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, hop: str, mode: str) -> HopRow | None:
        return next((r for r in self.rows if r.hop == hop and r.mode == mode), None)

    def to_json(self) -> dict[str, Any]:
        """The issue's shape (machine, rows, throughput, ratios, targets), plus notes on what was skipped."""
        return {"machine": self.machine, "rows": [r.to_json() for r in self.rows],
                "throughput": [t.to_json() for t in self.throughput], "ratios": self.ratios,
                "targets": self.targets, "notes": self.notes}


#: A phase reports progress as (phase name, seconds advanced); None starts the phase.
Progress = Callable[[str, float | None], None]


def run_suite(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    """Run every measurement once, in order, and derive ratios and the target verdicts."""
    from benchmarks.report import machine_info, ratios, targets

    def tick(phase: str) -> Callable[[float], None] | None:
        if progress is None:
            return None
        progress(phase, None)
        return lambda s: progress(phase, s)

    folder = cfg.folder or Path(tempfile.mkdtemp(prefix="arbees-bench-"))
    with servers(folder / "servers") as srv:
        result = BenchResult(machine_info(srv))
        tick("record venue traffic")
        traffic = record_traffic(cfg.rate, cfg.warmup_s + cfg.duration_s + TRAFFIC_MARGIN_S, folder / "traffic")
        if progress:
            progress("record venue traffic", 1.0)
        for mode in ("zmq", "redis"):
            tick(f"raw {mode}")
            result.rows.append(run_raw(RawSpec(mode, cfg.rate, cfg.raw_s, srv.redis_url, warmup_s=min(0.5, cfg.raw_s / 4))))
            if progress:
                progress(f"raw {mode}", cfg.raw_s)
        for zmq_mode in (True, False):
            name = f"pipeline {'zmq' if zmq_mode else 'redis'}"
            run = run_pipeline(zmq_mode, cfg.rate, cfg.duration_s, cfg.warmup_s, srv.redis_url, srv.database_url,
                               folder / name.replace(" ", "-"), tick(name), traffic=traffic)
            result.rows += run.rows
        rt = cfg.rt_enabled()
        if rt:
            result.rows += run_realtime(cfg, srv.redis_url, srv.database_url, folder, tick, traffic)
        elif cfg.rt_priority > 0:
            result.notes.append(f"real-time rows (ARBEES_RT_PRIORITY={cfg.rt_priority}) skipped: this process may "
                                "not use SCHED_FIFO (needs CAP_SYS_NICE or an rtprio limit)")
        for path, zmq_mode in THROUGHPUT_PATHS:
            name = f"throughput {path} {'zmq' if zmq_mode else 'redis'}"
            tp = run_throughput(path, zmq_mode, list(cfg.rates), cfg.hold_s, srv.redis_url, srv.database_url,
                                folder / name.replace(" ", "-").replace(">", ""), tick(name))
            result.throughput.append(tp)
            first = tp.steps[0].row if tp.steps else None
            if first is not None:  # the hop at the first (lowest) step's rate, replayed without the simulator
                result.rows.append(first)
        result.machine["rt_priority"] = cfg.rt_priority if rt else 0
        result.ratios = ratios(result)
        result.targets = targets(result)
    return result


def run_realtime(cfg: BenchConfig, redis_url: str, database_url: str, folder: Path,
                 tick: Callable[[str], Callable[[float], None] | None],
                 traffic: dict[str, Path] | None = None) -> list[HopRow]:
    """The pipeline again with ARBEES_RT_PRIORITY (rows `price@rt`, ...): the configuration the README
    recommends for latency. Its ratios are taken against the same raw rows as the default run: bare pyzmq
    between two processes both under SCHED_FIFO measured slower here (p50 159 vs 86 us), so the default raw hop
    is the machine's limit and the stricter reference."""
    rows: list[HopRow] = []
    for zmq_mode in (True, False):
        name = f"pipeline {'zmq' if zmq_mode else 'redis'} rt"
        run = run_pipeline(zmq_mode, cfg.rate, cfg.duration_s, cfg.warmup_s, redis_url, database_url,
                           folder / name.replace(" ", "-"), tick(name), rt_priority=cfg.rt_priority, traffic=traffic)
        rows += run.rows
    return rows
