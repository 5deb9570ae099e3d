"""`arbees diagnose <target>`: the plan's troubleshooting probes against the running stack, with the fixes."""

from __future__ import annotations

import typer
from rich.markup import escape

from arbees_cli.output import activity, console, fail, parse_duration
from arbees_cli.phases import store_and_show
from arbees_cli.stack import JsonOpt, RuntimeOpt, get_runtime
from arbees_core.runtime.base import RuntimeError_
from arbees_core.validation.results import new_run_dir


def register(app: typer.Typer) -> None:
    @app.command()
    def diagnose(target: str = typer.Argument(..., help="zmq-listener | game-shard | execution-service | latency"),
                 since: str = typer.Option("10m", "--since", help="How far back logs and counters are read."),
                 runtime: str = RuntimeOpt, as_json: bool = JsonOpt) -> None:
        """The plan's troubleshooting section as probes: each prints what it found and, for a fault, the
        plan's fix. Exit code 0 when every probe passes, 1 when a fault was found."""
        from arbees_core.validation.diagnose import PlaybookError, diagnose as run_diagnose

        rt = get_runtime(runtime, as_json)
        try:
            with activity(f"diagnosing {target}…", as_json):
                result = run_diagnose(rt, target, parse_duration(since))
        except (ValueError, PlaybookError, RuntimeError_) as e:
            fail(str(e), as_json=as_json)
        result.finish()
        store_and_show(result, new_run_dir(f"diagnose-{target.replace('_', '-')}"), as_json,
                       f"{result.command}: {'no fault found' if result.passed else 'FAULT'}")
        if not as_json:
            for f in result.data.get("findings", []):
                console.print(f"[red]fault[/] ({escape(f['probe'])}): {escape(f['fault'])}\n  [bold]fix:[/] "
                              f"{escape(f['fix'])}")
        raise typer.Exit(result.exit_code)
