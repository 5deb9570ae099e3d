"""`python -m arbees_core.bench [options]` is `arbees bench [options]`: the same Typer command, the same exit codes
and error lines (the CLI's entry point maps them), for a machine where the `arbees` script is not on PATH."""

from __future__ import annotations

import sys


def main() -> None:
    from arbees_cli.main import main as arbees

    sys.argv[1:1] = ["bench"]
    arbees()


if __name__ == "__main__":
    main()
