"""Polling a condition until it holds or a timeout passes, for the playbook steps (validation/steps*.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll(timeout: float, fn: Callable[[], Any], interval: float = 0.25) -> Any:
    """`fn()`'s first truthy value within `timeout` seconds, else its last value (checked every `interval` s)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
