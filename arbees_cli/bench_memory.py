"""What `arbees bench --memory` calls: run the memory soak, print a table (or one JSON object), write the result
beside the run's files. Exit 0 every service flat, 1 one growing, 2 none
growing but some inconclusive (a short soak, an interval across the limit, a restarted process)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from arbees_core.bench.memory import MemoryConfig, MemoryResult, ServiceMemory, fmt_ci, run_memory


def table(result: MemoryResult) -> Table:
    cfg = result.config
    t = Table(title=f"RSS slope after a {cfg.warmup_s / 60:g} min warm-up, {cfg.duration_s / 60:g} min soak "
                    f"(SIM_RATE={cfg.sim_rate:g}/venue, a mispricing every {cfg.misprice_every_s:g} s), "
                    f"flat = 95 % interval within +-{cfg.limit_mb_h:g} MB/h: {result.verdict().upper()}")
    for col in ("service", "RSS MB (after warm-up -> end)", "slope MB/h", "95 % interval", "n (eff.)", "verdict"):
        t.add_column(col, justify="left" if col in ("service", "verdict") else "right")
    for s in result.services:
        rss = f"{s.rss_start_mb:.1f} -> {s.rss_end_mb:.1f}" if s.rss_start_mb is not None else "-"
        slope = f"{s.slope_mb_h:+.2f}" if s.slope_mb_h is not None else "-"
        t.add_row(s.name, rss, slope, fmt_ci(s.ci_mb_h), f"{s.n} ({s.n_eff:g})", f"{s.verdict} ({s.reason})")
        if s.verdict != "flat" and s.py_blocks_h is not None:
            t.add_row("", "", "", "", "", "  alive after warm-up: " + heap_words(s))
        if s.traced_mb:
            t.add_row("", "", "", "", "", f"  live Python memory (tracemalloc) over --diagnose: {s.traced_mb[0]:.2f} -> "
                      f"{s.traced_mb[1]:.2f} MB")
        for site in s.growth_sites:
            t.add_row("", "", f"+{site['size_diff_kb']:.0f} kB", "", "", f"  grew: {site['site']} "
                      f"({site['count_diff']:+d} blocks)")
        for c in s.growing_containers:
            t.add_row("", "", "", "", "", f"  container grew: {c['owner']} ({c['type']}) {c['len_before']} -> "
                      f"{c['len_after']} items")
    return t


def heap_words(s: ServiceMemory) -> str:
    """Where the RSS went: live Python blocks and glibc's bytes in use, per hour after warm-up, with intervals."""
    assert s.py_blocks_h is not None
    b, b_lo, b_hi = s.py_blocks_h
    words = f"Python blocks {b:+.0f}/h [{b_lo:+.0f}, {b_hi:+.0f}]"
    if s.malloc_mb_h is not None:
        m, m_lo, m_hi = s.malloc_mb_h
        words += f", glibc in use {m:+.2f} MB/h [{m_lo:+.2f}, {m_hi:+.2f}]"
    return words


def run_and_report(cfg: MemoryConfig, as_json: bool, folder: Path | None = None) -> int:
    folder = folder or Path(tempfile.mkdtemp(prefix="arbees-bench-memory-"))
    err = Console(stderr=True)
    started = time.monotonic()
    result = run_memory(cfg, folder, lambda line: err.print(f"{time.strftime('%H:%M:%S')} {line}", markup=False,
                                                            highlight=False))
    result.elapsed_s = time.monotonic() - started
    (folder / "memory.json").write_text(json.dumps(result.to_json(), indent=2))
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        console = Console(width=160)
        console.print(table(result))
        row = result.decide_row
        if row:
            console.print(f"arbees decide's memory row on these samples ({row['target']}): {row['verdict']}: "
                          f"{row['reason']}", markup=False)
        for line in result.notes:
            console.print(f"note: {line}", markup=False)
        console.print(f"samples and snapshots: {folder}", markup=False)
    return result.exit_code()


def run_memory_soak(soak: str, warmup: str, sim_rate: float, tracemalloc_frames: int, diagnose: str,
                    as_json: bool) -> int:
    """The options of `arbees bench --memory` (durations such as `30m`) as a MemoryConfig, run and reported."""
    from arbees_cli.output import parse_duration

    cfg = MemoryConfig(duration_s=parse_duration(soak), warmup_s=parse_duration(warmup), sim_rate=sim_rate,
                       tracemalloc_frames=max(0, tracemalloc_frames), diagnose_s=parse_duration(diagnose))
    return run_and_report(cfg, as_json)
