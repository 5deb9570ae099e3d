"""What every runtime (local processes, docker compose) offers the CLI, so commands read the stack the same way.

The plan reads a running stack through `docker logs`, `docker-compose ps`, `docker exec ... env`; a runtime gives
the CLI those views (status, logs, env) and the actions (up, down, restart), whatever actually runs the services.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class RuntimeError_(Exception):
    """An operator-facing runtime failure: the message says what is wrong and what to do."""


@dataclass
class ServiceStatus:
    """One service as a runtime sees it.

    state: running | restarting | exited | failed (a configuration error: not restarted, it would fail the same
    way) | stopped | missing. pid (local) or container (compose) identify it; restarts counts unplanned restarts;
    exit_code is the last exit's; ports the ZMQ ports it binds; health: healthy | unhealthy | starting | ""
    (unknown); detail: why, in one line (the configuration error, a peer not usable yet, an OOM kill, ...).
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
