"""Every service's health for the dashboard: its state, restarts, loss and reject counters, and its mode.

Two sources, both readable from inside the stack: each service's health key in Redis (`arbees:health:<service>`,
rewritten every heartbeat with a TTL of three: mode, counters, state, instance) and, under the local runtime, the
supervisor's `stack.json` (state, restarts, last exit code). Without a supervisor file (compose: the api has no
Docker socket) a service is `running` while its key is fresh and `down` once it expired, and restarts are the
instance changes the api has seen (`restarts_source` says which).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import redis

from arbees_core.dashboard.models import ServiceHealth
from arbees_core.registry import SERVICES
from arbees_core.runtime.local_stack import STACK_FILE
from arbees_core.topics import HEALTH_KEY_PREFIX
from arbees_core.transport.redis import make_client

log = logging.getLogger("api")


class HealthReader:
    """Reads the health keys and the supervisor's view; remembers instances to count restarts it sees."""

    def __init__(self, redis_url: str, state_folder: Path) -> None:
        self._redis_url = redis_url
        self._stack_file = state_folder / STACK_FILE
        self._client: redis.Redis | None = None
        self._instances: dict[str, str] = {}
        self._seen_restarts: dict[str, int] = {}
        self._redis_error = ""

    def read(self) -> list[ServiceHealth]:
        snaps = self._health_keys()
        stack = self._stack()
        return [self._row(s.name, snaps.get(s.name), stack) for s in SERVICES]

    def _health_keys(self) -> dict[str, dict[str, Any]]:
        try:
            self._client = self._client or make_client(self._redis_url, socket_timeout_s=1.0)
            values = self._client.mget([HEALTH_KEY_PREFIX + s.name for s in SERVICES])
        except (redis.RedisError, OSError) as e:
            if not self._redis_error:
                log.warning("Health keys unreadable (%s): the health panel shows the supervisor's view only",
                            type(e).__name__)
            self._redis_error, self._client = type(e).__name__, None
            return {}
        self._redis_error = ""
        out = {}
        for s, raw in zip(SERVICES, values):
            if raw:
                try:
                    out[s.name] = json.loads(raw)
                except ValueError:
                    continue
        return out

    def _stack(self) -> dict[str, Any] | None:
        """The supervisor's services view while it runs (status `running`), else None."""
        try:
            stack = json.loads(self._stack_file.read_text())
        except (OSError, ValueError):
            return None
        return stack.get("services", {}) if stack.get("status") == "running" else None

    def _row(self, name: str, snap: dict[str, Any] | None, stack: dict[str, Any] | None) -> ServiceHealth:
        counters = (snap or {}).get("counters", {})
        row = ServiceHealth(name=name, state="down", mode=(snap or {}).get("mode", ""),
                            lost=int(counters.get("lost", 0)), rejected=int(counters.get("rx_rejected", 0)),
                            rx=int(counters.get("rx", 0)), tx=int(counters.get("tx", 0)))
        if snap is not None:
            row.state = snap.get("state", "running")
            row.pid = snap.get("pid")
            row.heartbeat_age_s = round(max(0.0, time.time() - int(snap.get("ts_ns", 0)) / 1e9), 2)
            self._note_instance(name, str(snap.get("instance", "")))
        view = (stack or {}).get(name)
        if view is not None:
            row.state, row.restarts, row.exit_code = view.get("state", row.state), int(view.get("restarts", 0)), \
                view.get("exit_code")
            row.pid = view.get("pid") if row.state == "running" else None
            row.restarts_source = "supervisor"
        else:
            row.restarts, row.restarts_source = self._seen_restarts.get(name, 0), "seen by the api"
        return row

    def _note_instance(self, name: str, instance: str) -> None:
        before = self._instances.get(name)
        if before is not None and instance and before != instance:
            self._seen_restarts[name] = self._seen_restarts.get(name, 0) + 1
        if instance:
            self._instances[name] = instance
