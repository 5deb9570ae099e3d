"""`arbees`: run the pipeline stack and validate the Redis -> ZeroMQ move the way the operators' plan does."""

from __future__ import annotations

import typer

from arbees_cli import bench, chaos, judge, stack, validate
from arbees_cli import venues as venue_commands

app = typer.Typer(
    name="arbees",
    help="Run the arbees pipeline (local processes or docker compose) and validate its ZeroMQ hot path. "
         "Exit codes: 0 pass/GO, 1 fail/NO-GO, 2 inconclusive/DEBUG, 3 could not run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stack.register(app)
validate.register(app)
judge.register(app)
bench.register(app)
venue_commands.register(app)
chaos.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
