"""`arbees`: run the pipeline stack and validate the Redis -> ZeroMQ move the way the operators' plan does."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.markup import escape

from arbees_cli import bench, chaos, clients, decide, diagnose, metrics, phases, report, settings, stack
from arbees_cli import venues as venue_commands
from arbees_cli.output import EXIT_ERROR, err_console, print_json
from arbees_core.errors import ArbeesError

app = typer.Typer(
    name="arbees",
    help="Run the arbees pipeline (local processes or docker compose) and validate its ZeroMQ hot path. "
         "Exit codes: 0 pass/GO, 1 fail/NO-GO, 2 inconclusive/DEBUG, 3 could not run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # never print locals: they may hold credentials
)
_state = {"debug": False}
# A mistyped command, option or value is "could not run" (3), as README's exit codes say; click's own 2 would read
# as inconclusive / DEBUG to a script that checks the exit code.
# (click's UsageError, found through typer's BadParameter: typer ships its own copy of click in newer versions.)
next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError").exit_code = EXIT_ERROR


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show the traceback of an unexpected error.")) -> None:
    """Run the arbees pipeline and validate its ZeroMQ hot path."""
    _state["debug"] = debug


stack.register(app)
phases.register(app)
decide.register(app)
diagnose.register(app)
report.register(app)
bench.register(app)
venue_commands.register(app)
chaos.register(app)
clients.register(app)
metrics.register(app)
settings.register(app)


def main() -> None:
    """The `arbees` entry point: an unexpected error is one red line and exit code 3, not a traceback."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the one place that turns a bug or an environment problem into a line
        if _state["debug"] or "--debug" in sys.argv:
            raise
        if isinstance(e, ArbeesError):  # an operator-facing failure: its message already says what to do
            report_error(str(e), e.exit_code)
        report_error(f"{type(e).__name__}: {e} (run with --debug for the traceback)", EXIT_ERROR)


def report_error(message: str, code: int) -> NoReturn:
    """One red line (under --json one JSON object, as `output.fail` writes it), then the exit code."""
    if "--json" in sys.argv:
        print_json({"error": message, "passed": False, "exit_code": code})
    else:
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
