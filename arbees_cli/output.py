"""Output shared by every command: Rich for people, one JSON object for machines, exit codes that mean something.

Exit codes: 0 pass / GO, 1 fail / NO-GO, 2 inconclusive / DEBUG, 3 usage or environment error (the command could
not run: bad option, stack not running, engine unreachable).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_ERROR = 0, 1, 2, 3

console = Console()
err_console = Console(stderr=True)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """`90`, `30s`, `5m`, `2h`, `1d` -> seconds."""
    m = _DURATION.match(text)
    if not m:
        raise typer.BadParameter(f"{text!r} is not a duration (examples: 30s, 5m, 2h, 1d)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = EXIT_ERROR, as_json: bool = False) -> NoReturn:
    """Stop the command with one clear error line (or a JSON error object) and `code`."""
    if as_json:
        print_json({"error": message, "passed": False})
    else:
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
