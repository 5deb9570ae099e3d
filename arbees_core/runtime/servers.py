"""The servers a local stack needs: the configured Redis and PostgreSQL when `REDIS_URL` / `DATABASE_URL` are
set (checked to answer before any service starts), otherwise embedded ones under the stack's state folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbees_core import settings as S
from arbees_core.config import Env

log = logging.getLogger("supervisor")


@dataclass
class StackServers:
    """The Redis and PostgreSQL of one stack: their URLs, what was embedded (for the state file), and the embedded
    servers to stop with the stack."""

    state: Path
    urls: dict[str, str] = field(default_factory=dict)
    embedded: dict[str, Any] = field(default_factory=dict)
    _started: list[Any] = field(default_factory=list)

    def start(self, env: Env, taken: set[int]) -> None:
        """Start what is not configured (an embedded Redis on a free port outside `taken`) and check both answer.
        Raises SupervisorError; what was started so far is stopped by `stop`."""
        from arbees_core.runtime.embedded import EmbeddedPostgres, EmbeddedRedis
        from arbees_core.runtime.ports import free_port

        redis_url, database_url = env.get(S.REDIS_URL, ""), env.get(S.DATABASE_URL)
        if not redis_url:
            port = next(p for p in iter(free_port, None) if p not in taken)  # never a publisher's port
            server = EmbeddedRedis(self.state / "redis", port).start()
            self._started.append(server)
            redis_url = server.url
            self.embedded["redis"] = {"pid": server.process.pid if server.process else None, "url": redis_url}
            log.info("Embedded Redis started at %s", redis_url)
        check_redis(redis_url)
        if not database_url:
            pg = EmbeddedPostgres(self.state / "pg").start()
            self._started.append(pg)
            database_url = pg.url
            self.embedded["postgres"] = {"url": database_url, "folder": str(self.state / "pg")}
            log.info("Embedded PostgreSQL started at %s", self.state / "pg")
        check_postgres(database_url)
        self.urls = {"REDIS_URL": redis_url, "DATABASE_URL": database_url}

    def stop(self) -> None:
        """Stop the embedded servers, the last started first; a failure is logged and the rest still stopped."""
        for server in reversed(self._started):
            try:
                server.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the rest
                log.warning("Stopping %s failed: %s", type(server).__name__, e)
        self._started.clear()


class SupervisorError(Exception):
    """A reason the stack cannot start, worded for the operator."""


def check_redis(url: str) -> None:
    import redis

    from arbees_core.config import redact_value

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except (redis.RedisError, OSError, ValueError) as e:
        raise SupervisorError(f"REDIS_URL={redact_value('REDIS_URL', url)} does not answer: {e}") from e


def check_postgres(url: str) -> None:
    from arbees_core.store.db import StoreUnavailable, connect

    try:
        connect(url, retries=2).close()
    except (StoreUnavailable, Exception) as e:  # noqa: BLE001 - any failure means the same to the operator
        raise SupervisorError(str(e)) from e
