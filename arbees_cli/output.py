"""Output shared by every command: Rich for people, one JSON object for machines, exit codes that mean something.

Exit codes: 0 pass / GO, 1 fail / NO-GO, 2 inconclusive / DEBUG, 3 usage or environment error (the command could
not run: bad option, stack not running, engine unreachable).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
        print_json({"error": message, "passed": False, "exit_code": code})
    else:
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def plain_line(text: str) -> None:
    """One progress line, time-stamped, never wrapped or styled (for a script or a log file)."""
    console.print(f"{time.strftime('%H:%M:%S')} {text}", markup=False, highlight=False, soft_wrap=True)


@contextmanager
def activity(text: str, quiet: bool = False) -> Iterator[None]:
    """While a command waits: a spinner in a terminal; one plain line when stdout is not one (a live display
    prints nothing there, so a script would see nothing for the whole wait); nothing when `quiet` (--json)."""
    if quiet:
        yield
    elif console.is_terminal:
        with console.status(text):
            yield
    else:
        plain_line(text)
        yield


_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


class PlainProgress:
    """Progress as plain lines when stdout is not a terminal: a line whenever the step changes (a playbook step, a
    latency window's restart, warm-up and measurement), and at most one per `every_s` while only its numbers
    change (a countdown; the soak reports once per sample)."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self._last, self._shape, self._at = "", "", 0.0

    def __call__(self, text: str, fraction: float | None) -> None:
        shape, now = _NUMBERS.sub("#", text), time.monotonic()
        if text == self._last or (shape == self._shape and now - self._at < self.every_s):
            return
        self._last, self._shape, self._at = text, shape, now
        plain_line(text + (f" ({fraction:.0%})" if fraction is not None else ""))
