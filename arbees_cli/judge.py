"""decide, diagnose, validate: the plan's decision matrix, troubleshooting probes, and the whole plan in one run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from arbees_cli.output import EXIT_FAIL, EXIT_PASS, console, fail, parse_duration, print_json
from arbees_cli.stack import JsonOpt, RuntimeOpt, get_runtime
from arbees_cli.validate import _latency_collector, _soak_collector, checks_table, run_named_playbook
from arbees_core.config import project_root, read_dotenv, write_dotenv_value
from arbees_core.runtime.base import RuntimeError_
from arbees_core.validation.results import latest_result, new_run_dir, runs_dir, save_result, utc_now_iso

_VERDICT_STYLE = {"GO": "green", "DEBUG": "yellow", "NO-GO": "red"}

#: Simulator and strategy settings `validate --quick` writes to `.env` when they are not set there: a mispricing
#: every second (rotating over the games) so a 20 s window has enough end-to-end samples to judge.
QUICK_ENV = {"SIM_MISPRICE_EVERY_S": "1", "SIM_MISPRICE_DURATION_MS": "300", "GAME_COOLDOWN_MS": "500",
             "SIM_RATE": "100"}
QUICK = {"windows": 4, "window_seconds": 20.0, "warmup_seconds": 5.0, "duration_seconds": 120.0,
         "interval_seconds": 15.0}


def _load(path: Optional[Path], kind: str, runs: Optional[Path]) -> dict[str, Any] | None:
    if path is not None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as e:
            fail(f"cannot read {path}: {e}")
    return latest_result(kind, folder=runs) if runs else latest_result(kind)


def decision_table(decision: Any) -> Table:
    table = Table(title=f"Decision: {decision.decision}", title_justify="left", show_lines=True)
    for col, kw in (("metric", {}), ("target", {}), ("actual", {}), ("verdict", {"no_wrap": True}),
                    ("reason", {"ratio": 3, "overflow": "fold"})):
        table.add_column(col, **kw)
    for row in decision.rows:
        d = row.to_dict()
        style = _VERDICT_STYLE.get(d["verdict"], "white")
        crit = " (critical)" if d.get("critical") else ""
        table.add_row(escape(d["metric"] + crit), escape(str(d["target"])), escape(str(d["actual"])),
                      f"[{style}]{d['verdict']}[/]", escape(d["reason"]))
    return table


def decision_json(decision: Any, started: str, t0: float) -> dict[str, Any]:
    d = decision.to_dict()
    return {"command": "decide", "passed": d["decision"] == "GO", "started_at": started,
            "duration_s": round(time.monotonic() - t0, 3),
            "checks": [{"name": r["metric"], "passed": r["verdict"] == "GO", "evidence": r["reason"],
                        "critical": r.get("critical", False)} for r in d["rows"]],
            **d}


def run_decide(phase4: dict[str, Any] | None, phase5: dict[str, Any] | None, overrides: list[str],
               thresholds_file: Optional[Path], as_json: bool) -> int:
    from arbees_core.validation.decide import decide, load_thresholds, parse_overrides

    started, t0 = utc_now_iso(), time.monotonic()
    try:
        thresholds = load_thresholds(thresholds_file, parse_overrides(overrides))
    except (ValueError, OSError, TypeError) as e:
        fail(f"thresholds: {e}", as_json=as_json)
    decision = decide(phase4, phase5, thresholds)
    if as_json:
        print_json(decision_json(decision, started, t0))
    else:
        console.print(decision_table(decision))
        style = _VERDICT_STYLE.get(decision.decision, "white")
        console.print(f"[bold {style}]{decision.decision}[/] (thresholds: {thresholds.source}"
                      + (f", overrides {thresholds.overrides}" if thresholds.overrides else "") + ")")
    return decision.exit_code


def register(app: typer.Typer) -> None:
    register_report(app)

    @app.command()
    def decide(threshold: Optional[list[str]] = typer.Option(None, "--threshold", "-t",
                                                             help="Override a threshold, KEY=VALUE (repeatable), "
                                                                  "e.g. -t p50_go_ms=100."),
               thresholds_file: Optional[Path] = typer.Option(None, "--thresholds", help="Thresholds YAML "
                                                              "(default playbooks/decision.yaml)."),
               runs: Optional[Path] = typer.Option(None, "--runs", help="Folder of stored runs (default "
                                                   ".arbees/runs): re-judge any stored results offline."),
               phase4: Optional[Path] = typer.Option(None, "--phase4", help="A phase 4 result.json to judge."),
               phase5: Optional[Path] = typer.Option(None, "--phase5", help="A phase 5 result.json to judge."),
               as_json: bool = JsonOpt) -> None:
        """The plan's decision matrix on the stored phase 4 and 5 results: GO / DEBUG / NO-GO per row with the
        observed value, limit, confidence interval and sample size, plus ZMQ vs Redis with bootstrap CIs.
        Too little data is DEBUG, never GO. Exit code 0 GO, 2 DEBUG, 1 NO-GO."""
        code = run_decide(_load(phase4, "phase4", runs), _load(phase5, "phase5", runs), threshold or [],
                          thresholds_file, as_json)
        raise typer.Exit(code)

    @app.command()
    def diagnose(target: str = typer.Argument(..., help="zmq-listener | game-shard | execution-service | latency"),
                 since: str = typer.Option("10m", "--since", help="How far back logs and counters are read."),
                 runtime: str = RuntimeOpt, as_json: bool = JsonOpt) -> None:
        """The plan's troubleshooting section as probes: each prints what it found and, for a fault, the
        plan's fix. Exit code 0 when every probe passes, 1 when a fault was found."""
        from arbees_core.validation.diagnose import PlaybookError, diagnose as run_diagnose

        rt = get_runtime(runtime, as_json)
        try:
            with console.status(f"diagnosing {target}…"):
                result = run_diagnose(rt, target, parse_duration(since))
        except (ValueError, PlaybookError, RuntimeError_) as e:
            fail(str(e), as_json=as_json)
        result.finish()
        folder = new_run_dir(f"diagnose-{target.replace('_', '-')}")
        result.data["run_dir"] = str(folder)
        save_result(result, folder)
        if as_json:
            print_json(result.to_dict())
        else:
            console.print(checks_table(result, f"{result.command}: {'no fault found' if result.passed else 'FAULT'}"))
            for f in result.data.get("findings", []):
                console.print(f"[red]fault[/] ({escape(f['probe'])}): {escape(f['fault'])}\n  [bold]fix:[/] "
                              f"{escape(f['fix'])}")
        raise typer.Exit(EXIT_PASS if result.passed else EXIT_FAIL)

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
                with console.status("starting the stack…"):
                    rt.up()
            for n in (1, 2, 3, 4, 5):
                collectors: dict[str, Any] = {}
                folder = new_run_dir(f"phase{n}")
                if n == 4:
                    collectors["latency"] = _latency_collector(opts)
                if n == 5:
                    collectors["soak"] = _soak_collector(folder, opts)
                if not as_json:
                    console.rule(f"phase {n}")
                if as_json:
                    result = _quiet(f"phase{n}", rt, collectors, folder)
                else:
                    result = run_named_playbook(f"phase{n}", f"phase{n}", rt, False, collectors, folder)
                phases.append({"phase": n, "passed": result.passed, "duration_s": result.duration_s,
                               "run_dir": str(folder)})
            if not as_json:
                console.rule("decision")
            from arbees_core.validation.decide import decide as judge, load_thresholds

            decision = judge(latest_result("phase4"), latest_result("phase5"), load_thresholds())
        except RuntimeError_ as e:
            fail(str(e), code=EXIT_FAIL, as_json=as_json)
        finally:
            if started_here and not keep:
                rt.down()
        summary = {"command": "validate", "passed": all(p["passed"] for p in phases) and decision.decision == "GO",
                   "started_at": started, "duration_s": round(time.monotonic() - t0, 3),
                   "checks": [{"name": f"phase {p['phase']}", "passed": p["passed"],
                               "evidence": f"{p['duration_s']:.1f}s, {p['run_dir']}"} for p in phases]
                   + [{"name": "decision", "passed": decision.decision == "GO", "evidence": decision.decision}],
                   "decision": decision.decision, "rows": [r.to_dict() for r in decision.rows], "quick": quick}
        folder = new_run_dir("validate")
        save_result(summary, folder)
        if as_json:
            print_json(summary)
        else:
            console.print(decision_table(decision))
            table = Table(title="arbees validate", title_justify="left")
            for col in ("step", "result", "evidence"):
                table.add_column(col)
            for c in summary["checks"]:
                table.add_row(c["name"], "[green]PASS[/]" if c["passed"] else "[red]FAIL[/]", escape(c["evidence"]))
            console.print(table)
            console.print(f"[bold]{decision.decision}[/] in {summary['duration_s']:.0f}s; results in {runs_dir()}")
        if not all(p["passed"] for p in phases):
            raise typer.Exit(EXIT_FAIL)
        raise typer.Exit(decision.exit_code)


def register_report(app: typer.Typer) -> None:
    @app.command()
    def report(out: Optional[Path] = typer.Option(None, "--out", help="Folder for report.md, report.html and the "
                                                 "PNGs (default .arbees/reports/<timestamp>/)."),
               as_json: bool = JsonOpt) -> None:
        """A Markdown and an HTML report of the latest runs: phase checks with evidence, latency CDFs and
        histograms per hop and mode (phase 4), the soak's time series (phase 5) and the decision table."""
        from arbees_core.validation.decide import decide as judge, load_thresholds
        from arbees_core.validation.report import build_report

        p4, p5 = latest_result("phase4"), latest_result("phase5")
        decision = judge(p4, p5, load_thresholds()) if (p4 or p5) else None
        with console.status("building the report…"):
            made = build_report(out=out, decision=decision)
        if as_json:
            print_json(made)
        else:
            console.print(f"report: {made['markdown']}\n        {made['html']}\n"
                          f"plots: {', '.join(made['images']) or 'none (no phase 4/5 results)'}")


def _quiet(name: str, rt: Any, collectors: dict[str, Any], folder: Path) -> Any:
    """A phase for `validate --json`: no per-phase output, only the stored result."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return run_named_playbook(name, name, rt, True, collectors, folder)
