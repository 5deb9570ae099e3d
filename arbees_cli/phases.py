"""Phase commands: phase 1..5, rollback, validate. Each runs a playbook, shows live progress, prints the
checks (criterion, pass/fail, evidence), stores the result under `.arbees/runs/` and exits 0 pass / 1 fail."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table

from arbees_cli.output import EXIT_FAIL, PlainProgress, console, fail, parse_duration, print_json
from arbees_cli.stack import JsonOpt, RuntimeOpt, get_runtime
from arbees_core.config import project_root
from arbees_core.runtime.base import Runtime, RuntimeError_
from arbees_core.runtime.preflight import SettingsError
from arbees_core.validation.playbook import PlaybookError
from arbees_core.validation.results import RunResult, new_run_dir, runs_dir, save_result
from arbees_core.validation.run import EXTRA_PHASES, phase_collectors, run_phase, run_validation


@contextmanager
def live_progress(enabled: bool) -> Iterator[Callable[[str, float | None], None]]:
    """A Rich progress line (spinner, step, bar, elapsed) in a terminal; plain lines (a line per step, window and
    sample) when stdout is not one, e.g. a script or a log file; silent with --json."""
    if not enabled:
        yield lambda text, fraction: None
        return
    if not console.is_terminal:
        yield PlainProgress()
        return
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    with progress:
        task = progress.add_task("starting", total=1.0)

        def update(text: str, fraction: float | None) -> None:
            progress.update(task, description=text, **({"completed": fraction} if fraction is not None else {}))

        yield update


def store_and_show(result: RunResult, folder: Path, as_json: bool, title: str) -> None:
    """Every check-running command ends the same way: the result stored in its run folder, then printed as one
    JSON object or as the checks table with the folder named."""
    result.data["run_dir"] = str(folder)
    save_result(result, folder)
    show_result(result, folder, as_json, title)


def show_result(result: RunResult, folder: Path, as_json: bool, title: str | None = None) -> None:
    """A stored result as one JSON object, or as its checks table (and phase 4's latency table) with its folder."""
    if as_json:
        print_json(result.to_dict())
        return
    title = title or f"{result.data.get('title', result.command)}: {result.verdict.upper()} ({result.duration_s:.1f}s)"
    console.print(checks_table(result, title))
    if result.data.get("summary"):
        console.print(latency_table(result.data["summary"]))
    console.print(f"[dim]stored in {folder / 'result.json'}[/]")


def checks_table(result: RunResult | dict[str, Any], title: str) -> Table:
    data = result.to_dict() if isinstance(result, RunResult) else result
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("criterion", overflow="fold", ratio=2)
    table.add_column("result", no_wrap=True)
    table.add_column("evidence", overflow="fold", ratio=3)
    for c in data["checks"]:
        mark = "[green]PASS[/]" if c["passed"] else "[yellow]NOT RUN[/]" if c.get("inconclusive") else \
            "[red]FAIL[/]" if c.get("critical", True) else "[yellow]WARN[/]"
        table.add_row(escape(c["name"]), mark, escape(c["evidence"]))
    return table


def latency_table(summary: dict[str, Any]) -> Table:
    """Phase 4's figures: p50/p95/p99 per hop and mode with their 95% CIs."""
    table = Table(title="Phase 4: latency per hop (ms, 95% CI)", title_justify="left")
    for col in ("hop", "mode", "n", "windows", "p50", "p95", "p99", "max"):
        table.add_column(col, justify="right" if col not in ("hop", "mode") else "left")
    hops = sorted({h for m in summary.values() for h in m})
    for hop in hops:
        for mode in ("zmq", "redis"):
            v = summary.get(mode, {}).get(hop)
            if not v:
                continue
            ci = v.get("ci_ms", {})
            cell = lambda q: f"{v.get(f'{q}_ms')} [{ci[q][0]}, {ci[q][1]}]" if q in ci else str(v.get(f"{q}_ms"))  # noqa: E731
            table.add_row(hop, mode, str(v.get("count")), str(v.get("windows", "")), cell("p50"), cell("p95"),
                          cell("p99"), str(v.get("max_ms")))
    return table


@contextmanager
def settings_checked(as_json: bool) -> Iterator[None]:
    """A setting that no service would accept ends the command with its one line and exit 3 (could not run)."""
    try:
        yield
    except SettingsError as e:
        fail(str(e), as_json=as_json)


def run_named_playbook(name: str, kind: str, runtime: Runtime, as_json: bool,
                       collectors: dict[str, Any] | None = None, folder: Path | None = None,
                       playbooks: Path | None = None, overrides: dict[str, float] | None = None) -> RunResult:
    """Run one playbook (`run_phase`) with a live progress display, then print its result; returns the result (the
    caller decides the exit code). A malformed playbook is one line and exit 3."""
    try:
        with live_progress(not as_json) as progress:
            result, folder = run_phase(name, kind, runtime, project_root(), collectors=collectors, folder=folder,
                                       playbooks=playbooks, overrides=overrides, progress=progress)
    except PlaybookError as e:
        fail(str(e), as_json=as_json)
    show_result(result, folder, as_json)
    return result


def phase(number: str = typer.Argument(..., help="Phase of the plan, 1-5, or zmq-only (week 3: no Redis mirror)."),
          runtime: str = RuntimeOpt, as_json: bool = JsonOpt,
          windows: Optional[int] = typer.Option(None, "--windows", help="Phase 4: number of A/B windows."),
          window_seconds: Optional[str] = typer.Option(None, "--window-seconds",
                                                       help="Phase 4: length of each window (e.g. 600, 10m)."),
          warmup: Optional[str] = typer.Option(None, "--warmup", help="Phase 4: warm-up after each mode switch."),
          duration: Optional[str] = typer.Option(None, "--duration", help="Phase 5: soak length (default 48h)."),
          interval: Optional[str] = typer.Option(None, "--interval", help="Phase 5: sampling interval (5m)."),
          resume: Optional[Path] = typer.Option(None, "--resume", help="Phase 5: continue an interrupted soak in this "
                                                "run folder."),
          window: Optional[str] = typer.Option(None, "--window", help="zmq-only: how long to watch the stack without "
                                               "the mirror (default 60s).")) -> None:
    """Run one phase of the plan: act, check its success criteria, print the evidence.

    1: ZMQ infrastructure (monitors publish, zmq_listener mirrors into prices:kalshi / prices:poly).
    2: game_shard subscribes over ZMQ and publishes signals. 3: execution_service trades them into
    paper_trades. 4: latency per hop in ZMQ and Redis mode, interleaved windows. 5: soak (resumable).
    zmq-only: the plan's week 3: zmq_listener stopped, the hot path, the trades and every operator view
    (phase checks read ZMQ taps instead of the streams, diagnose, decide, the dashboard) checked for a window,
    then the mirror restored; `arbees decide` shows its result.
    Exit code 0 when every critical criterion holds, 1 when one fails, 2 when one could not be checked."""
    if number in EXTRA_PHASES:
        name, kind = EXTRA_PHASES[number]
        overrides = {"window_seconds": parse_duration(window)} if window else {}
        result = run_named_playbook(name, kind, get_runtime(runtime, as_json), as_json, overrides=overrides)
        raise typer.Exit(result.exit_code)
    if number not in {str(n) for n in range(1, 6)}:
        fail(f"no phase {number!r}: expected 1-5 or {', '.join(EXTRA_PHASES)}", as_json=as_json)
    n = int(number)
    if resume is not None:
        check_resume(resume, n, as_json)
    options = measure_options(windows, window_seconds, warmup, duration, interval)
    rt = get_runtime(runtime, as_json)
    folder = resume if resume else new_run_dir(f"phase{n}")
    with settings_checked(as_json):
        result = run_named_playbook(f"phase{n}", f"phase{n}", rt, as_json, phase_collectors(n, options, folder),
                                    folder)
    raise typer.Exit(result.exit_code)


def measure_options(windows: int | None, window_seconds: str | None, warmup: str | None, duration: str | None,
                    interval: str | None) -> dict[str, float]:
    """Phase 4's and phase 5's measurement options as given on the command line (durations parsed)."""
    parsed = {"windows": windows, "window_seconds": parse_duration(window_seconds) if window_seconds else None,
              "warmup_seconds": parse_duration(warmup) if warmup else None,
              "duration_seconds": parse_duration(duration) if duration else None,
              "interval_seconds": parse_duration(interval) if interval else None}
    return {k: v for k, v in parsed.items() if v is not None}


def rollback(undo: bool = typer.Option(False, "--undo", help="Go back to ZMQ mode instead."),
             runtime: str = RuntimeOpt, as_json: bool = JsonOpt) -> None:
    """The plan's rollback: ZMQ_ENABLED=false in .env, restart every service with it, verify Redis mode
    (the log line, prices flowing through the streams) and print how long it took."""
    rt = get_runtime(runtime, as_json)
    if not rt.is_up():
        fail("the stack is not running: nothing to roll back (start it with `arbees up`)", as_json=as_json)
    with settings_checked(as_json):
        result = run_named_playbook("rollback-undo" if undo else "rollback", "rollback", rt, as_json)
    if not as_json:
        took = result.data.get("timings", {}).get("restart_s")
        console.print(f"{'undo ' if undo else ''}rollback {'done' if result.passed else 'FAILED'} in "
                      f"{result.duration_s:.1f}s (restart {took}s)")
    raise typer.Exit(result.exit_code)


def validate(quick: bool = typer.Option(False, "--quick", help="Phase 4 as 4 x 20 s windows and a 2 min soak instead "
                                        "of hours; a stack it starts gets a mispricing every second so there is "
                                        "data (.env is left as it is; a value set there wins)."),
             keep: bool = typer.Option(False, "--keep", help="Leave the stack running at the end."),
             windows: Optional[int] = typer.Option(None, "--windows", help="Phase 4: number of A/B windows."),
             window_seconds: Optional[str] = typer.Option(None, "--window-seconds", help="Phase 4: window length."),
             warmup: Optional[str] = typer.Option(None, "--warmup", help="Phase 4 warm-up after a mode switch."),
             duration: Optional[str] = typer.Option(None, "--duration", help="Soak length."),
             interval: Optional[str] = typer.Option(None, "--interval", help="Soak sampling interval."),
             runtime: str = RuntimeOpt, as_json: bool = JsonOpt) -> None:
    """The whole plan on the running (or a fresh embedded) stack: phases 1-5 and zmq-only, then decide. Exit code:
    the decision's (0 GO, 2 DEBUG, 1 NO-GO), or 1 when a phase failed."""
    rt = get_runtime(runtime, as_json)
    options = measure_options(windows, window_seconds, warmup, duration, interval)

    def on_phase(label: str, result: RunResult, folder: Path) -> None:
        if not as_json:
            show_result(result, folder, False)

    def on_start() -> None:
        if not as_json:
            console.print("starting the stack…")

    try:
        with live_progress(not as_json) as progress:
            outcome = run_validation(rt, project_root(), quick=quick, keep=keep, options=options, on_phase=on_phase,
                                     progress=progress, on_start=on_start)
    except PlaybookError as e:
        fail(str(e), as_json=as_json)
    except SettingsError as e:  # found before anything (re)started: could not run
        fail(str(e), as_json=as_json)
    except RuntimeError_ as e:
        fail(str(e), code=EXIT_FAIL, as_json=as_json)
    summary = outcome.to_dict()
    save_result(summary, new_run_dir("validate"))
    if as_json:
        print_json(summary)
    else:
        from arbees_cli.decide import decision_table

        console.print(decision_table(outcome.decision))
        console.print(validate_table(outcome.checks()[:-1], outcome.decision))
        console.print(f"[bold]{outcome.decision.decision}[/] in {outcome.duration_s:.0f}s; results in {runs_dir()}")
    raise typer.Exit(outcome.exit_code)


def register(app: typer.Typer) -> None:
    """`arbees phase`, `rollback`, `validate`."""
    for command in (phase, rollback, validate):
        app.command()(command)


def check_resume(folder: Path, number: int, as_json: bool) -> None:
    """`--resume DIR` names an interrupted soak's own run folder; anything else stops the command (exit 3) before it
    creates or starts anything, rather than beginning a new 48-hour soak in a folder made up on the spot."""
    from arbees_core.validation.soak import META_FILE, SAMPLES_FILE

    if number != 5:
        fail(f"--resume continues a phase 5 soak; phase {number} has nothing to resume", as_json=as_json)
    if not folder.is_dir():
        fail(f"--resume {folder}: no such folder (give the folder of the interrupted soak, "
             f"{runs_dir()}/<stamp>-phase5)", as_json=as_json)
    if not (folder / META_FILE).exists() and not (folder / SAMPLES_FILE).exists():
        fail(f"--resume {folder}: not a phase 5 run folder (it has no {META_FILE} or {SAMPLES_FILE})",
             as_json=as_json)


def validate_table(phase_checks: list[dict[str, Any]], decision: Any) -> Table:
    """`arbees validate`'s summary: PASS / FAIL per phase, then the decision as the matrix gave it. The decision is
    three-valued, so DEBUG (exit 2: inconclusive, e.g. a quick run's soak too short to prove memory stable) shows
    as DEBUG, not as a failure."""
    from arbees_cli.decide import VERDICT_STYLE

    table = Table(title="arbees validate", title_justify="left")
    for col in ("step", "result", "evidence"):
        table.add_column(col)
    for c in phase_checks:
        table.add_row(c["name"], "[green]PASS[/]" if c["passed"] else "[red]FAIL[/]", escape(c["evidence"]))
    style = VERDICT_STYLE.get(decision.decision, "white")
    why = ", ".join(decision.decided_by) or "every row GO"
    table.add_row("decision", f"[{style}]{decision.decision}[/]", escape(f"exit {decision.exit_code}: {why}"))
    return table
