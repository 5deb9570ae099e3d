"""`arbees decide`: the plan's decision matrix over stored phase 4/5 results, rendered as a table or JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from arbees_cli.output import console, fail, print_json
from arbees_cli.stack import JsonOpt
from arbees_core.validation.results import latest_result, utc_now_iso

VERDICT_STYLE = {"GO": "green", "DEBUG": "yellow", "NO-GO": "red"}


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
        style = VERDICT_STYLE.get(d["verdict"], "white")
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
               thresholds_file: Optional[Path], as_json: bool, zmq_only: dict[str, Any] | None = None) -> int:
    from arbees_core.validation.decide import decide, load_thresholds, parse_overrides

    started, t0 = utc_now_iso(), time.monotonic()
    try:
        thresholds = load_thresholds(thresholds_file, parse_overrides(overrides))
    except (ValueError, OSError, TypeError) as e:
        fail(f"thresholds: {e}", as_json=as_json)
    decision = decide(phase4, phase5, thresholds, zmq_only)
    if as_json:
        print_json(decision_json(decision, started, t0))
    else:
        console.print(decision_table(decision))
        style = VERDICT_STYLE.get(decision.decision, "white")
        console.print(f"[bold {style}]{decision.decision}[/] (thresholds: {thresholds.source}"
                      + (f", overrides {thresholds.overrides}" if thresholds.overrides else "") + ")")
    return decision.exit_code


def register(app: typer.Typer) -> None:
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
        """The plan's decision matrix on the stored phase 4, 5 and zmq-only results: GO / DEBUG / NO-GO per row with the
        observed value, limit, confidence interval and sample size, plus ZMQ vs Redis with bootstrap CIs.
        Too little data is DEBUG, never GO. Exit code 0 GO, 2 DEBUG, 1 NO-GO."""
        if runs is not None and not runs.is_dir():
            fail(f"--runs {runs}: no such folder (stored runs are in .arbees/runs)", as_json=as_json)
        code = run_decide(_load(phase4, "phase4", runs), _load(phase5, "phase5", runs), threshold or [],
                          thresholds_file, as_json, _load(None, "zmq_only", runs))
        raise typer.Exit(code)
