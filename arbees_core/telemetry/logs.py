"""Log setup and rate limiting.

Log lines are the operators' first evidence: the plan greps them (`Mirrored ... to ...`, `Price latency: ...ms`).
Lines that carry a figure end with it, so the plan's `awk '{print $NF}' | sed 's/ms//'` keeps working.
Hot paths never log per message unconditionally: they go through `RateLimiter`, which lets the first events
through, then at most `per_second` per key, and counts what it suppressed.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Final

LOG_FORMAT: Final = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"
DATE_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"


def setup_logging(service: str, level: str | None = None) -> logging.Logger:
    """Configure the root logger once for a service process: UTC timestamps with ms, one line per record, stdout.

    stdout, not stderr: the plan reads every service through `docker logs <service> | grep ...`, and `docker logs`
    replays a container's stderr on its own stderr, which a pipe never sees."""
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(LOG_FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("LOG_LEVEL", "INFO")).upper())
    return logging.getLogger(service)


def fmt_ms(ns: int | float) -> str:
    """Nanoseconds as milliseconds with sub-millisecond precision (`0.143ms`)."""
    return f"{ns / 1e6:.3f}ms"


class RateLimiter:
    """At most `per_second` events per key (burst of the same size), counting the ones it held back."""

    def __init__(self, per_second: float = 10.0) -> None:
        self.per_second = per_second
        self._tokens: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        """Whether an event under `key` may be logged now."""
        if self.per_second <= 0:
            return False
        now = time.monotonic()
        tokens = self._tokens.get(key, self.per_second)
        tokens = min(self.per_second, tokens + (now - self._last.get(key, now)) * self.per_second)
        self._last[key] = now
        if tokens >= 1.0:
            self._tokens[key] = tokens - 1.0
            return True
        self._tokens[key] = tokens
        self.suppressed[key] = self.suppressed.get(key, 0) + 1
        return False

    def take_suppressed(self, key: str) -> int:
        """How many events under `key` were held back since the last call (and reset it)."""
        return self.suppressed.pop(key, 0)
