"""`arbees chaos <scenario>|all`: inject one fault into the running stack and check it is survived, with evidence.

Same conventions as `arbees phase`: a checks table (or one JSON object with --json), the result stored under
`.arbees/runs/<ts>-chaos-<scenario>/`, exit 0 pass, 1 fail, 3 could not run (stack not up, wrong runtime, or a
scenario that needs an embedded server this stack does not have).
"""

from __future__ import annotations

from typing import Optional

import typer

from arbees_cli.output import EXIT_ERROR, activity, fail, parse_duration
from arbees_cli.stack import JsonOpt, RuntimeOpt, get_runtime
from arbees_cli.phases import store_and_show
from arbees_core.config import project_root
from arbees_core.validation.chaos import ChaosUnavailable, run_chaos, scenario_names
from arbees_core.validation.results import new_run_dir


def register(app: typer.Typer) -> None:
    @app.command()
    def chaos(scenario: str = typer.Argument(..., help="One of: " + ", ".join(scenario_names()) + "."),
              runtime: str = RuntimeOpt, as_json: bool = JsonOpt,
              outage: Optional[str] = typer.Option(None, "--outage", help="Outage length for redis-outage and "
                                                   "postgres-outage (default 30s)."),
              flow_timeout: Optional[str] = typer.Option(None, "--flow-timeout", help="How long to wait for "
                                                         "traffic after a restart (default 45s).")) -> None:
        """Inject one fault into the running local stack (kill -9 a service, stop Redis or PostgreSQL, send bad
        frames, overflow a subscriber, move a book between a signal and its fill) and check that it is survived: restarts counted, nothing lost or duplicated,
        every reject and loss counted. Exit 0 pass, 1 fail, 3 could not run."""
        if scenario not in scenario_names():
            fail(f"unknown scenario {scenario!r}: expected one of {', '.join(scenario_names())}", as_json=as_json)
        rt = get_runtime(runtime, as_json)
        opts = {k: parse_duration(v) for k, v in (("outage_s", outage), ("flow_timeout_s", flow_timeout)) if v}
        try:
            with activity(f"chaos {scenario}…", as_json):
                result = run_chaos(rt, project_root(), scenario, **opts)
        except ChaosUnavailable as e:
            fail(f"cannot run chaos {scenario}: {e}", code=EXIT_ERROR, as_json=as_json)
        store_and_show(result, new_run_dir(f"chaos-{scenario}"), as_json,
                       f"chaos {scenario}: {result.verdict.upper()} ({result.duration_s:.1f}s)")
        raise typer.Exit(result.exit_code)
