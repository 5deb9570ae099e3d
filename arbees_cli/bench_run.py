"""What `arbees bench` (the suite, and `--shards`) calls: build the config, run with a progress display on stderr,
render the result (Rich, or one JSON object on stdout)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from arbees_core.bench.report import tables
from arbees_core.bench.suite import BenchConfig, BenchResult, run_suite
from arbees_core.bench.verdict import exit_code


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
    inconclusive (arbees_core/bench/verdict.py), 3 when it could not run; the figures are printed either way."""
    result = run_with_progress(make_config(quick, rate, duration, rt_priority, spin_us, compose))
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        Console().print(tables(result))
    if markdown:
        from arbees_core.bench.report import markdown_table

        Path(markdown).write_text(markdown_table(result) + "\n\n```json\n" + json.dumps(result.to_json(), indent=2) + "\n```\n")
    return exit_code(result.targets)


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what}: {text!r} is not a comma-separated list of integers") from None


def run_shards(shards: str, games: str, rates: str, hold_s: float, as_json: bool) -> int:
    """`arbees bench --shards 1,2,4`: prices/s held with 0 lost and CPU per price for each shard and game count
    (arbees_core/bench/shards.py). A figure, not a target: exit 0 once every row is measured."""
    from dataclasses import asdict

    from arbees_core.bench.common import servers
    from arbees_core.bench.shards import measure_all

    try:
        step_rates = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        raise typer.BadParameter(f"--rates: {rates!r} is not a comma-separated list of rates") from None
    err = Console(stderr=True)
    folder = Path(tempfile.mkdtemp(prefix="arbees-bench-shards-"))
    with servers(folder / "servers") as srv:
        rows = measure_all(_int_list(shards, "--shards"), _int_list(games, "--games"), step_rates, hold_s,
                           srv.redis_url, srv.database_url, folder,
                           lambda line: err.print(f"{time.strftime('%H:%M:%S')} {line}", markup=False, highlight=False))
    if as_json:
        sys.stdout.write(json.dumps({"rows": [asdict(r) for r in rows], "folder": str(folder)}, indent=2) + "\n")
        return 0
    t = Table(title=f"Game shards: prices/s held with 0 lost, each rate held {hold_s:g} s (ZMQ mode)")
    for col in ("shards", "games", "max prices/s", "CPU us per price (all)", "each shard's CPU us per price",
                "lost at next step", "failover s"):
        t.add_column(col, justify="right")
    for r in rows:
        each = ", ".join("-" if v is None else f"{v:.1f}" for v in r.shard_cpu_us) or "-"
        t.add_row(str(r.shards), str(r.games), f"{r.max_rate:,.0f}",
                  "-" if r.cpu_us_per_price is None else f"{r.cpu_us_per_price:.1f}", each, str(r.lost_at_next),
                  "-" if r.failover_s is None else f"{r.failover_s:.2f}")
    Console().print(t)
    return 0
