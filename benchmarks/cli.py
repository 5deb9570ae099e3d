"""What both CLIs (`python -m benchmarks`, `arbees bench`) call: build the config, run with a progress display
on stderr, render the result (Rich, or one JSON object on stdout)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.report import tables
from benchmarks.suite import BenchConfig, BenchResult, run_suite
from benchmarks.verdict import exit_code


def make_config(quick: bool, rate: float, duration: float | None, rt_priority: int = 10,
                spin_us: int = 2000, compose: bool = True) -> BenchConfig:
    import dataclasses

    if quick:
        cfg = BenchConfig.quick(rate, duration, rt_priority, spin_us)
    elif duration is None:
        cfg = BenchConfig(rate=rate, rt_priority=rt_priority, spin_us=spin_us)
    else:
        cfg = BenchConfig(rate=rate, duration_s=duration, hold_s=duration, raw_s=min(duration, 10.0),
                          rt_priority=rt_priority, spin_us=spin_us)
    return dataclasses.replace(cfg, compose=compose)


def run_with_progress(cfg: BenchConfig) -> BenchResult:
    err = Console(stderr=True)
    if not err.is_terminal:  # a script or a log file: a live display would show nothing until the end

        def line_per_phase(phase: str, advanced: float | None) -> None:
            if advanced is None:
                err.print(f"{time.strftime('%H:%M:%S')} {phase}", markup=False, highlight=False)

        return run_suite(cfg, line_per_phase)
    columns = (TextColumn("{task.description:<40}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        tasks = {name: progress.add_task(name, total=seconds, start=False) for name, seconds in cfg.phases()}

        def report(phase: str, advanced: float | None) -> None:
            task = tasks.get(phase)
            if task is None:
                return
            if advanced is None:
                for other, t in tasks.items():  # earlier phases are done (a throughput run may stop early)
                    if other != phase and progress.tasks[t].started and not progress.tasks[t].finished:
                        progress.update(t, completed=progress.tasks[t].total)
                progress.start_task(task)
            else:
                progress.advance(task, advanced)

        result = run_suite(cfg, report)
        for t in tasks.values():
            progress.update(t, completed=progress.tasks[t].total)
    return result


def run_and_report(quick: bool, as_json: bool, rate: float, duration: float | None, markdown: str = "",
                   rt_priority: int = 10, spin_us: int = 2000, compose: bool = True) -> int:
    """Exit code 0 when every target is met, 1 when one is missed, 2 when none is missed but some are
    inconclusive (benchmarks/verdict.py); the figures are printed either way."""
    result = run_with_progress(make_config(quick, rate, duration, rt_priority, spin_us, compose))
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        Console().print(tables(result))
    if markdown:
        from benchmarks.report import markdown_table

        Path(markdown).write_text(markdown_table(result) + "\n\n```json\n" + json.dumps(result.to_json(), indent=2) + "\n```\n")
    return exit_code(result.targets)
