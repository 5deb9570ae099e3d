"""`arbees report`: Markdown and HTML of the latest runs, with latency and soak plots and the decision."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from arbees_cli.output import activity, console, print_json
from arbees_cli.stack import JsonOpt
from arbees_core.validation.results import latest_result


def register(app: typer.Typer) -> None:
    @app.command()
    def report(out: Optional[Path] = typer.Option(None, "--out", help="Folder for report.md, report.html and the "
                                                 "PNGs (default .arbees/reports/<timestamp>/)."),
               as_json: bool = JsonOpt) -> None:
        """A Markdown and an HTML report of the latest runs: phase checks with evidence, latency CDFs and
        histograms per hop and mode (phase 4), the soak's time series (phase 5) and the decision table."""
        from arbees_core.validation.decide import decide as judge, load_thresholds
        from arbees_core.validation.report import build_report

        p4, p5 = latest_result("phase4"), latest_result("phase5")
        decision = judge(p4, p5, load_thresholds(), latest_result("zmq_only")) if (p4 or p5) else None
        with activity("building the report…", as_json):
            made = build_report(out=out, decision=decision)
        if as_json:
            print_json(made)
        else:
            console.print(f"report: {made['markdown']}\n        {made['html']}\n"
                          f"plots: {', '.join(made['images']) or 'none (no phase 4/5 results)'}")
