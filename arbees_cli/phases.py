"""Phase commands: phase 1..5, rollback, validate. Each runs a playbook, shows live progress, prints the
checks (criterion, pass/fail, evidence), stores the result under `.arbees/runs/` and exits 0 pass / 1 fail."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table

from arbees_cli.output import EXIT_ERROR, EXIT_FAIL, PlainProgress, activity, console, fail, parse_duration, print_json
from arbees_cli.stack import JsonOpt, RuntimeOpt, get_runtime
from arbees_core.config import project_root, read_dotenv, write_dotenv_value
from arbees_core.runtime.base import Runtime, RuntimeError_
from arbees_core.runtime.preflight import SettingsError
from arbees_core.validation.playbook import Collect, PlaybookError, load_playbook, playbook_path
from arbees_core.validation.steps import RunContext, run_playbook
from arbees_core.validation.results import RunResult, latest_result, new_run_dir, runs_dir, save_result, utc_now_iso


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
    if as_json:
        print_json(result.to_dict())
        return
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


def _latency_collector(options: dict[str, float]) -> Callable[[RunContext, Collect], dict[str, Any]]:
    def collect(ctx: RunContext, step: Collect) -> dict[str, Any]:
        from arbees_core.validation.latency import collect_windows, summarize

        opts = {**step.options, **{k: v for k, v in options.items() if v is not None}}
        data = collect_windows(ctx.runtime, ctx.root, windows=int(opts.get("windows", 6)),
                               window_s=float(opts.get("window_seconds", 600)),
                               warmup_s=float(opts.get("warmup_seconds", 10)), progress=ctx.progress)
        summary = summarize(data)
        add_confidence_intervals(data, summary)
        data["summary"] = summary
        _latency_checks(ctx.result, data, summary)
        return data

    return collect


def add_confidence_intervals(data: dict[str, Any], summary: dict[str, Any], n_boot: int = 400) -> None:
    """Per mode and hop, 95% bootstrap CIs of p50/p95/p99 (ms) over the valid windows, resampling windows and
    then values, so an operator sees how far one run's percentiles can be trusted."""
    from arbees_core.validation.stats import bootstrap_percentile_ci

    for mode, hops in summary.items():
        for hop, stats in hops.items():
            hists = [w["hops"][hop]["hdr"] for w in data.get("windows", []) if w.get("mode") == mode
                     and w.get("valid", True) and w.get("hops", {}).get(hop, {}).get("count")]
            if not hists:
                continue
            stats["ci_ms"] = {}
            for q in (50, 95, 99):
                ci = bootstrap_percentile_ci(hists, q, n_boot=n_boot, seed=q)
                stats["ci_ms"][f"p{q}"] = [round(ci.lo / 1000, 3), round(ci.hi / 1000, 3)]


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


def _latency_checks(result: RunResult, data: dict[str, Any], summary: dict[str, Any]) -> None:
    windows = data.get("windows", [])
    valid = [w for w in windows if w.get("valid", True)]
    result.add("every window measured", len(valid) == len(windows) and bool(windows),
               f"{len(valid)}/{len(windows)} windows valid"
               + "".join(f"; window {w['index']}: {w.get('reason', '')}" for w in windows if not w.get("valid", True)))
    for mode in ("zmq", "redis"):
        hops = summary.get(mode, {})
        e2e = hops.get("end_to_end", {})
        result.add(f"{mode}: end-to-end latency measured", bool(e2e.get("count")),
                   "; ".join(f"{hop} p50 {v.get('p50_ms')}ms p95 {v.get('p95_ms')}ms p99 {v.get('p99_ms')}ms "
                             f"(n={v.get('count')})" for hop, v in hops.items()) or "no samples")
    z, r = summary.get("zmq", {}).get("end_to_end", {}), summary.get("redis", {}).get("end_to_end", {})
    if z.get("p50_ms") is not None and r.get("p50_ms") is not None:
        result.add("ZMQ end-to-end p50 below Redis (the plan's comparison; `arbees decide` gives the CI)",
                   z["p50_ms"] < r["p50_ms"], f"zmq {z['p50_ms']}ms vs redis {r['p50_ms']}ms", critical=False)


def _soak_collector(folder: Path, options: dict[str, float | None]) -> Callable[[RunContext, Collect], dict[str, Any]]:
    def collect(ctx: RunContext, step: Collect) -> dict[str, Any]:
        from arbees_core.validation.soak import run_soak

        opts = {**step.options, **{k: v for k, v in options.items() if v is not None}}
        data = run_soak(ctx.runtime, folder, float(opts.get("duration_seconds", 172800)),
                        float(opts.get("interval_seconds", 300)), progress=ctx.progress)
        samples = data.get("samples", [])
        restarts = _restart_deltas(samples)
        ctx.result.add("no service crashes during the soak", not restarts and bool(samples),
                       f"{len(samples)} samples over {samples[-1]['t_s'] if samples else 0:.0f}s; restarts: "
                       + (", ".join(f"{k}+{v}" for k, v in restarts.items()) or "none"))
        zerr = sum(s.get("zmq_error_lines", 0) for s in samples)
        ctx.result.add("no ZMQ connection errors", zerr == 0, f"{zerr} zmq error lines")
        rates = [s.get("mirrored_per_s", 0.0) for s in samples]
        ctx.result.add("messages mirrored in every interval", bool(rates) and min(rates) > 0,
                       "mirrored/s per sample: " + ", ".join(f"{x:.1f}" for x in rates[:12]),
                       critical=False)
        return data

    return collect


def _restart_deltas(samples: list[dict[str, Any]]) -> dict[str, int]:
    """Restarts per service between the first and the last soak sample (only the services that restarted)."""
    if not samples:
        return {}
    first = samples[0]["services"]
    deltas = {n: s["restarts"] - first.get(n, {}).get("restarts", 0) for n, s in samples[-1]["services"].items()}
    return {n: d for n, d in deltas.items() if d > 0}


@contextmanager
def settings_checked(as_json: bool) -> Iterator[None]:
    """A setting that no service would accept ends the command with its one line and exit 3 (could not run)."""
    try:
        yield
    except SettingsError as e:
        fail(str(e), as_json=as_json)


#: `arbees phase` arguments beyond 1-5: the playbook it runs and the kind its result is stored (and decided) as.
EXTRA_PHASES = {"zmq-only": ("phase-zmq-only", "zmq_only")}
#: The command a stored result names, where it is not the kind's own spelling.
COMMANDS = {"zmq_only": "phase zmq-only"}


def run_named_playbook(name: str, kind: str, runtime: Runtime, as_json: bool,
                       collectors: dict[str, Any] | None = None, folder: Path | None = None,
                       playbooks: Path | None = None, overrides: dict[str, float] | None = None) -> RunResult:
    """Load, run, store and print one playbook; returns the result (the caller decides the exit code)."""
    try:
        book = load_playbook(playbook_path(name, playbooks))
    except PlaybookError as e:
        fail(str(e), as_json=as_json)
    folder = folder or new_run_dir(kind)
    result = RunResult(command=COMMANDS.get(kind) or (kind.replace("phase", "phase ") if kind.startswith("phase")
                                                      else kind))
    with live_progress(not as_json) as progress:
        ctx = RunContext(runtime, project_root(), result, progress, collectors or {}, overrides or {})
        run_playbook(book, ctx)
    result.finish()
    result.data["playbook"] = book.path
    store_and_show(result, folder, as_json,
                   f"{book.title}: {result.verdict.upper()} ({result.duration_s:.1f}s)")
    return result


#: Simulator and strategy settings `validate --quick` writes to `.env` when they are not set there: a mispricing
#: every second (rotating over the games) so a 20 s window has enough end-to-end samples to judge, and games of a
#: minute, so the 2-minute soak sees positions settle and their exposure freed.
QUICK_ENV = {"SIM_MISPRICE_EVERY_S": "1", "SIM_MISPRICE_DURATION_MS": "300", "GAME_COOLDOWN_MS": "500",
             "SIM_RATE": "100", "SIM_GAME_LENGTH_S": "60"}
QUICK = {"windows": 4, "window_seconds": 20.0, "warmup_seconds": 5.0, "duration_seconds": 120.0,
         "interval_seconds": 15.0}


def register(app: typer.Typer) -> None:
    @app.command()
    def phase(number: str = typer.Argument(..., help="Phase of the plan, 1-5, or zmq-only (week 3: no Redis "
                                           "mirror)."),
              runtime: str = RuntimeOpt, as_json: bool = JsonOpt,
              windows: Optional[int] = typer.Option(None, "--windows", help="Phase 4: number of A/B windows."),
              window_seconds: Optional[str] = typer.Option(None, "--window-seconds",
                                                           help="Phase 4: length of each window (e.g. 600, 10m)."),
              warmup: Optional[str] = typer.Option(None, "--warmup", help="Phase 4: warm-up after each mode switch."),
              duration: Optional[str] = typer.Option(None, "--duration", help="Phase 5: soak length (default 48h)."),
              interval: Optional[str] = typer.Option(None, "--interval", help="Phase 5: sampling interval (5m)."),
              resume: Optional[Path] = typer.Option(None, "--resume", help="Phase 5: continue an interrupted soak "
                                                    "in this run folder."),
              window: Optional[str] = typer.Option(None, "--window", help="zmq-only: how long to watch the stack "
                                                   "without the mirror (default 60s).")) -> None:
        """Run one phase of the plan: act, check its success criteria, print the evidence.

        1: ZMQ infrastructure (monitors publish, zmq_listener mirrors into prices:kalshi / prices:poly).
        2: game_shard subscribes over ZMQ and publishes signals. 3: execution_service trades them into
        paper_trades. 4: latency per hop in ZMQ and Redis mode, interleaved windows. 5: soak (resumable).
        zmq-only: the plan's week 3: zmq_listener stopped, the hot path, the trades and every operator view
        (phase checks read ZMQ taps instead of the streams, diagnose, decide, the dashboard) checked for a window,
        then the mirror restored; `arbees decide` shows its result.
        Exit code 0 when every critical criterion holds, 1 otherwise."""
        if number in EXTRA_PHASES:
            name, kind = EXTRA_PHASES[number]
            overrides = {"window_seconds": parse_duration(window)} if window else {}
            result = run_named_playbook(name, kind, get_runtime(runtime, as_json), as_json, overrides=overrides)
            raise typer.Exit(result.exit_code)
        if number not in {str(n) for n in range(1, 6)}:
            fail(f"no phase {number!r}: expected 1-5 or {', '.join(EXTRA_PHASES)}", as_json=as_json)
        number = int(number)  # type: ignore[assignment]
        if resume is not None:
            check_resume(resume, number, as_json)
        rt = get_runtime(runtime, as_json)
        collectors: dict[str, Any] = {}
        folder = None
        if number == 4:
            collectors["latency"] = _latency_collector({
                "windows": windows, "window_seconds": parse_duration(window_seconds) if window_seconds else None,
                "warmup_seconds": parse_duration(warmup) if warmup else None})
        if number == 5:
            folder = resume if resume else new_run_dir("phase5")
            collectors["soak"] = _soak_collector(folder, {
                "duration_seconds": parse_duration(duration) if duration else None,
                "interval_seconds": parse_duration(interval) if interval else None})
        with settings_checked(as_json):
            result = run_named_playbook(f"phase{number}", f"phase{number}", rt, as_json, collectors, folder)
        raise typer.Exit(result.exit_code)

    @app.command()
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

    @app.command()
    def validate(quick: bool = typer.Option(False, "--quick", help="Phase 4 as 4 x 20 s windows and a 2 min soak "
                                            "instead of hours; a mispricing every second so there is data."),
                 keep: bool = typer.Option(False, "--keep", help="Leave the stack running at the end."),
                 windows: Optional[int] = typer.Option(None, "--windows"),
                 window_seconds: Optional[str] = typer.Option(None, "--window-seconds"),
                 warmup: Optional[str] = typer.Option(None, "--warmup", help="Phase 4 warm-up after a mode switch."),
                 duration: Optional[str] = typer.Option(None, "--duration", help="Soak length."),
                 interval: Optional[str] = typer.Option(None, "--interval", help="Soak sampling interval."),
                 runtime: str = RuntimeOpt, as_json: bool = JsonOpt) -> None:
        """The whole plan on the running (or a fresh embedded) stack: phases 1-5, then decide. Exit code: the
        decision's (0 GO, 2 DEBUG, 1 NO-GO), or 1 when a phase failed."""
        rt = get_runtime(runtime, as_json)
        root = project_root()
        started_here = not rt.is_up()
        if quick:
            current = read_dotenv(root / ".env")
            for key, value in QUICK_ENV.items():
                if key not in current:
                    write_dotenv_value(key, value, root / ".env")
        opts = dict(QUICK) if quick else {}
        opts.update({k: v for k, v in {
            "windows": windows, "window_seconds": parse_duration(window_seconds) if window_seconds else None,
            "warmup_seconds": parse_duration(warmup) if warmup else None,
            "duration_seconds": parse_duration(duration) if duration else None,
            "interval_seconds": parse_duration(interval) if interval else None}.items() if v is not None})
        t0, started = time.monotonic(), utc_now_iso()
        phases: list[dict[str, Any]] = []
        try:
            if started_here:
                with activity("starting the stack…", as_json):
                    rt.up()
            for n in (1, 2, 3, 4, 5, "zmq-only"):  # the plan's phases, then its week 3 (no Redis mirror)
                collectors: dict[str, Any] = {}
                name, kind = EXTRA_PHASES.get(str(n), (f"phase{n}", f"phase{n}"))
                folder = new_run_dir(kind)
                if n == 4:
                    collectors["latency"] = _latency_collector(opts)
                if n == 5:
                    collectors["soak"] = _soak_collector(folder, opts)
                if not as_json:
                    console.rule(f"phase {n}")
                window = {"window_seconds": opts["window_seconds"]} if n == "zmq-only" and "window_seconds" in opts \
                    else {}
                if as_json:
                    result = _quiet(name, kind, rt, collectors, folder, window)
                else:
                    result = run_named_playbook(name, kind, rt, False, collectors, folder, overrides=window)
                phases.append({"phase": n, "passed": result.passed, "duration_s": result.duration_s,
                               "run_dir": str(folder)})
            if not as_json:
                console.rule("decision")
            from arbees_core.validation.decide import decide as judge, load_thresholds

            decision = judge(latest_result("phase4"), latest_result("phase5"), load_thresholds(),
                             latest_result("zmq_only"))
        except SettingsError as e:  # found before anything (re)started: could not run
            fail(str(e), as_json=as_json)
        except RuntimeError_ as e:
            fail(str(e), code=EXIT_FAIL, as_json=as_json)
        finally:
            if started_here and not keep:
                rt.down()
        phase_checks = [{"name": f"phase {p['phase']}", "passed": p["passed"],
                         "evidence": f"{p['duration_s']:.1f}s, {p['run_dir']}"} for p in phases]
        summary = {"command": "validate", "passed": all(p["passed"] for p in phases) and decision.decision == "GO",
                   "started_at": started, "duration_s": round(time.monotonic() - t0, 3),
                   "checks": phase_checks
                   + [{"name": "decision", "passed": decision.decision == "GO", "evidence": decision.decision}],
                   "decision": decision.decision, "rows": [r.to_dict() for r in decision.rows], "quick": quick}
        folder = new_run_dir("validate")
        save_result(summary, folder)
        if as_json:
            print_json(summary)
        else:
            from arbees_cli.decide import decision_table

            console.print(decision_table(decision))
            console.print(validate_table(phase_checks, decision))
            console.print(f"[bold]{decision.decision}[/] in {summary['duration_s']:.0f}s; results in {runs_dir()}")
        if not all(p["passed"] for p in phases):
            raise typer.Exit(EXIT_FAIL)
        raise typer.Exit(decision.exit_code)

    _ = EXIT_ERROR


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


def _quiet(name: str, kind: str, rt: Any, collectors: dict[str, Any], folder: Path,
           overrides: dict[str, float]) -> Any:
    """A phase for `validate --json`: no per-phase output, only the stored result."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return run_named_playbook(name, kind, rt, True, collectors, folder, overrides=overrides)
