"""What every runtime (local processes, docker compose) offers the CLI, so commands read the stack the same way.

The plan reads a running stack through `docker logs`, `docker-compose ps`, `docker exec ... env`; a runtime gives
the CLI those views (status, logs, env) and the actions (up, down, restart), whatever actually runs the services.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from arbees_core.errors import ArbeesError

_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(.*)$")


def parse_utc(text: str) -> datetime | None:
    """An ISO timestamp (a log line's, a supervisor's, or Docker's nanosecond `StartedAt`) as aware UTC;
    fractions beyond microseconds are dropped. None when `text` is empty or not a timestamp."""
    if not text:
        return None
    m = _ISO.match(text.strip().replace("Z", "+00:00"))
    if not m:
        return None
    try:
        dt = datetime.fromisoformat(m.group(1) + (m.group(2) or "")[:7] + (m.group(3) or ""))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class PortProbe:
    """The plan's `nc -zv <service> <port>` from the network's point of view.

    ok: the TCP connection succeeded; evidence: what an operator would see (nc's line, or the error);
    connect_ms: the connect time when measured directly (None when run through `docker exec`)."""

    ok: bool
    evidence: str
    connect_ms: float | None = None


def tcp_probe(host: str, port: int, timeout_s: float = 2.0) -> PortProbe:
    """A TCP connect to host:port from this process, timed, with nc's wording."""
    import socket
    import time

    t0 = time.perf_counter()
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            ms = (time.perf_counter() - t0) * 1000
    except OSError as e:
        return PortProbe(False, f"nc: connect to {host} port {port} (tcp) failed: {e.strerror or e}")
    return PortProbe(True, f"Connection to {host} {port} port [tcp] succeeded! ({ms:.2f}ms)", round(ms, 3))


class RuntimeError_(ArbeesError):
    """An operator-facing runtime failure: the message says what is wrong and what to do."""


@dataclass
class ServiceStatus:
    """One service as a runtime sees it.

    state: running | restarting | exited | failed (a configuration error: not restarted, it would fail the same
    way) | stopped | missing. pid (local) or container (compose) identify it; restarts counts unplanned restarts;
    exit_code is the last exit's; ports the ZMQ ports it binds; health: healthy | unhealthy | starting | ""
    (unknown); detail: why, in one line (the configuration error, a peer not usable yet, an OOM kill, ...).
    http_port: where it serves HTTP (the api); metrics_port: its Prometheus endpoint (None when not known or off).
    """

    name: str
    state: str
    pid: int | None = None
    container: str = ""
    started_at: str = ""
    restarts: int = 0
    exit_code: int | None = None
    ports: list[int] = field(default_factory=list)
    health: str = ""
    detail: str = ""
    http_port: int | None = None
    metrics_port: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def started(self) -> datetime | None:
        """When the current process (or container) started, while it runs; None otherwise."""
        return parse_utc(self.started_at) if self.state == "running" else None


class Runtime(Protocol):
    """The operations `arbees up/down/restart/status/logs/env` need."""

    kind: str

    def is_up(self) -> bool: ...

    def up(self, services: list[str] | None = None) -> list[ServiceStatus]: ...

    def down(self) -> None: ...

    def restart(self, services: list[str] | None = None) -> list[ServiceStatus]:
        """Restart with the current `.env` (recreate, never reuse the old environment)."""
        ...

    def status(self) -> list[ServiceStatus]: ...

    def logs(self, service: str, since_s: float | None = None, tail: int | None = None) -> str: ...

    def follow(self, service: str) -> Iterator[str]: ...

    def env(self, service: str) -> dict[str, str]: ...

    def metrics(self, service: str) -> dict[str, Any]:
        """The service's latest metrics snapshot (see telemetry/metrics.py), {} when none."""
        ...

    def resources(self, service: str) -> dict[str, float]:
        """{"rss_mb", "cpu_pct"} of the running service, {} when not running."""
        ...

    def urls(self) -> dict[str, str]:
        """REDIS_URL / DATABASE_URL this stack uses, as reachable from the operator's machine."""
        ...

    def probe_port(self, service: str, port: int, timeout_s: float = 2.0) -> PortProbe:
        """Whether `service`'s port answers where its subscribers connect from (loopback locally; inside
        arbees-network under compose, as the plan's `docker exec zmq_listener nc -zv kalshi_monitor 5555`)."""
        ...

    def run_settings(self, settings: dict[str, str]) -> AbstractContextManager[None]:
        """`settings` for the services this runtime starts or restarts until the context ends, below `.env` (a
        value the operator set there wins), and `.env` untouched: `validate --quick`'s settings for its own run."""
        ...


@contextmanager
def process_environment(settings: dict[str, str]) -> Iterator[None]:
    """`settings` in this process's environment until the context ends, then the environment as it was."""
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
