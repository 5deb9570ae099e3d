"""Log setup and rate limiting.

Log lines are the operators' first evidence: the plan greps them (`Mirrored ... to ...`, `Price latency: ...ms`).
Lines that carry a figure end with it, so the plan's `awk '{print $NF}' | sed 's/ms//'` keeps working.
Hot paths never log per message unconditionally: they go through `RateLimiter`, which lets the first events
through, then at most `per_second` per key, and counts what it suppressed.
Every handler carries the `SecretFilter` (telemetry/redact.py): no credential reaches the log at any level.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from types import TracebackType
from typing import Final

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env, is_secret_name
from arbees_core.telemetry import redact

LOG_FORMAT: Final = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"
DATE_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"


def setup_logging(service: str, level: str | None = None) -> logging.Logger:
    """Configure the root logger once for a service process: UTC timestamps with ms, one line per record, stdout.

    stdout, not stderr: the plan reads every service through `docker logs <service> | grep ...`, and `docker logs`
    replays a container's stderr on its own stderr, which a pipe never sees. Every handler gets the secret filter
    (the values of secret-named variables are registered with it first), and an uncaught exception is logged
    through it instead of printed raw by the interpreter."""
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(LOG_FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or _level_from_env()).upper())
    redact.SECRETS.register_env(os.environ, is_secret_name)
    redact.install([handler])
    log = logging.getLogger(service)
    sys.excepthook = lambda kind, value, tb: _log_uncaught(log, kind, value, tb)
    threading.excepthook = lambda args: _log_uncaught(log, args.exc_type, args.exc_value, args.exc_traceback)
    return log


def _level_from_env() -> str:
    """LOG_LEVEL; INFO when it is malformed, so that the service can log the configuration error itself."""
    try:
        return Env().get(S.LOG_LEVEL)
    except ConfigError:
        return S.LOG_LEVEL.default


def _log_uncaught(log: logging.Logger, kind: type[BaseException], value: BaseException | None,
                  tb: TracebackType | None) -> None:
    """An uncaught exception as one CRITICAL record (through the secret filter), not raw text on stderr."""
    log.critical("Uncaught %s", kind.__name__, exc_info=(kind, value or kind(), tb))  # type: ignore[arg-type]


def fmt_ms(ns: int | float) -> str:
    """Nanoseconds as milliseconds with sub-millisecond precision (`0.143ms`)."""
    return f"{ns / 1e6:.3f}ms"


class RateLimiter:
    """At most `per_second` events per key (burst of the same size, or `burst`), counting the ones it held back.
    `RateLimiter(1 / 60, burst=1)`: the first event, then one a minute. Its state is bounded: past `MAX_KEYS`
    keys, those idle long enough to have refilled (their state is the default again) are forgotten, then the
    least recently used, so a key made of message content cannot grow it without bound."""

    MAX_KEYS = 256

    def __init__(self, per_second: float = 10.0, burst: float | None = None) -> None:
        self.per_second = per_second
        self.burst = max(1.0, burst) if burst is not None else per_second
        self._tokens: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        """Whether an event under `key` may be logged now."""
        if self.per_second <= 0:
            return False
        now = time.monotonic()
        tokens = self._tokens.get(key, self.burst)
        tokens = min(self.burst, tokens + (now - self._last.get(key, now)) * self.per_second)
        self._last[key] = now
        if len(self._last) > self.MAX_KEYS:
            self._forget(now)
        if tokens >= 1.0:
            self._tokens[key] = tokens - 1.0
            return True
        self._tokens[key] = tokens
        self.suppressed[key] = self.suppressed.get(key, 0) + 1
        return False

    def _forget(self, now: float) -> None:
        """Forget refilled keys, then the least recently used ones down to half of MAX_KEYS."""
        refill_s = self.burst / self.per_second
        idle = [k for k, last in self._last.items() if now - last >= refill_s]
        if len(self._last) - len(idle) > self.MAX_KEYS // 2:
            idle = sorted(self._last, key=self._last.__getitem__)[:len(self._last) - self.MAX_KEYS // 2]
        for k in idle:
            self._last.pop(k, None)
            self._tokens.pop(k, None)
            self.suppressed.pop(k, None)

    def take_suppressed(self, key: str) -> int:
        """How many events under `key` were held back since the last call (and reset it)."""
        return self.suppressed.pop(key, 0)
