"""Waiting for a condition: the one polling loop of arbees, for the tests, the process-stack harness, the playbook
steps and the chaos scenarios.

A condition is a function of no arguments, called until it returns something truthy; that value is the answer.
When the time is up the caller decides what a miss means: by default it is an error (`NotReached`, for a test or
a harness step that cannot go on); with `raises=False` the last (falsy) value is returned, for a check that
reports a failed criterion with what it saw. `eventually_async` is the same loop for code on an asyncio loop,
whose conditions only change while the loop runs (a blocking wait would freeze what it waits for).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from arbees_core.errors import ArbeesError

#: How long a missed condition's last value may be in the message: the rest is noise in a failure report.
_LAST_CHARS = 300


class NotReached(ArbeesError):
    """A condition that did not hold within its time; `last` is the condition's last value."""

    def __init__(self, message: str, last: object = None) -> None:
        super().__init__(message)
        self.last = last


def eventually(condition: Callable[[], Any], timeout: float = 20.0, what: str = "", *, interval: float = 0.1,
               details: Callable[[], str] | None = None, raises: bool = True) -> Any:
    """The first truthy value of `condition()` within `timeout` seconds (checked every `interval` s, at least once).

    On a miss: `NotReached` naming `what` (the condition itself when empty), with its last value and, after it,
    `details()` (e.g. the services' log tails); or, with `raises=False`, the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            break
        time.sleep(interval)
    if value or not raises:
        return value
    raise _missed(condition, timeout, what, value, details)


async def eventually_async(condition: Callable[[], Any], timeout: float = 10.0, what: str = "", *,
                           interval: float = 0.01, details: Callable[[], str] | None = None,
                           raises: bool = True) -> Any:
    """`eventually` for a coroutine: the loop runs (`asyncio.sleep`) between checks."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval)
    if value or not raises:
        return value
    raise _missed(condition, timeout, what, value, details)


def _missed(condition: Callable[[], Any], timeout: float, what: str, last: object,
            details: Callable[[], str] | None) -> NotReached:
    shown = repr(last)
    shown = shown if len(shown) <= _LAST_CHARS else shown[:_LAST_CHARS] + "..."
    message = f"not reached within {timeout:g}s: {what or getattr(condition, '__qualname__', condition)} " \
              f"(last value: {shown})"
    return NotReached(message + (f"\n{details()}" if details is not None else ""), last)
