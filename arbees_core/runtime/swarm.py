"""The swarm runtime: a `docker stack deploy -c docker-stack.yml <stack>` deployment, read on one of its nodes.

What `arbees chaos`, `status`, `logs` and `env` need from a stack, for the swarm: its task containers on this node,
found by the labels swarm puts on them (`com.docker.stack.namespace=<stack>`,
`com.docker.swarm.service.name=<stack>_<service>`), with the game_shard replicas named as shards by their task
slot (slot 1 is `game_shard`, slot N `game_shard_N`: the slot is the replica's SHARD_ID). A killed task is
replaced by a new container in the same slot, so a slot's restarts are its ended containers (as many as the
swarm's task history keeps, 5 by default). Redis and PostgreSQL are reached at their containers' addresses on
`docker_gwbridge`, the node's own bridge to its swarm tasks (the stack publishes no port for them): from this
node only, which must be the one that runs them (`arbees.db=true`). Deploying, scaling and removing the stack stay
`docker stack` / `docker service` commands; `up`, `down` and `restart` say so. Faults are the compose runtime's
(`runtime/faults.py`): a kill is SIGKILL of the task's main process from the host, which swarm reschedules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arbees_core.registry import SERVICES, ServiceSpec, shard_names, shard_number
from arbees_core.runtime.base import RuntimeError_, ServiceStatus
from arbees_core.runtime.compose import ComposeRuntime
from arbees_core.runtime.docker_engine import container_status, engine_available
from arbees_core.topics import GAME_SHARD

STACK_LABEL = "com.docker.stack.namespace"
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
TASK_NAME_LABEL = "com.docker.swarm.task.name"
#: The node's bridge to its swarm tasks' containers (each task has an address on it besides the overlay's).
GWBRIDGE = "docker_gwbridge"
DEFAULT_STACK = "arbees"


class SwarmRuntime(ComposeRuntime):
    """Runtime for a deployed swarm stack (kind `swarm`); see the module docstring."""

    kind = "swarm"

    def __init__(self, root: Path | str | None = None, stack: str = DEFAULT_STACK, client: Any = None,
                 services: Sequence[ServiceSpec] = SERVICES) -> None:
        super().__init__(root, project=stack, client=client, services=services)
        self.stack = stack

    # ---- containers

    def _containers(self, key: str | None = None) -> list[Any]:
        """The stack's task containers on this node (of one stack service), running first, then the newest."""
        labels = [f"{STACK_LABEL}={self.stack}"]
        if key is not None:
            labels.append(f"{SWARM_SERVICE_LABEL}={self.stack}_{key}")
        found = self._call(self.client.containers.list, all=True, filters={"label": labels}, ignore_removed=True)
        found.sort(key=lambda c: str(c.attrs.get("Created", "")), reverse=True)
        found.sort(key=lambda c: (c.attrs.get("State") or {}).get("Status") != "running")
        return found

    def _slot_of(self, container: Any) -> int | None:
        """The task slot of a replicated service's container (`<stack>_game_shard.<slot>.<task id>`)."""
        m = re.match(r"^[^.]+\.(\d+)\.", (container.labels or {}).get(TASK_NAME_LABEL, ""))
        return int(m.group(1)) if m else None

    def _slot_containers(self, service: str) -> list[Any]:
        """The containers of `service`: a stack service's, or one game_shard slot's for `game_shard[_N]`."""
        slot = shard_number(service)
        if slot is None:
            return self._containers(self.compose_key(service))
        return [c for c in self._containers(GAME_SHARD) if self._slot_of(c) == slot]

    def _container(self, service: str) -> Any:
        found = self._slot_containers(service)
        if not found:
            raise RuntimeError_(f"no task container of {service!r} in stack {self.stack!r} on this node: "
                                f"`docker stack ps {self.stack}` shows where its tasks run")
        return found[0]

    def shard_slots(self) -> list[int]:
        """The game_shard task slots that have a container on this node."""
        return sorted({s for c in self._containers(GAME_SHARD) if (s := self._slot_of(c)) is not None})

    # ---- reads

    def is_up(self) -> bool:
        try:
            return engine_available(self.client) and bool(self._containers())
        except RuntimeError_:
            return False

    def is_ours(self) -> bool:
        return self.is_up()

    def status(self) -> list[ServiceStatus]:
        """Every registry service, the game shards by slot (`game_shard`, `game_shard_2`, ...), then the stack's
        other services (redis, timescaledb, orchestrator); restarts: the ended containers of the slot."""
        out: list[ServiceStatus] = []
        slots = self.shard_slots()
        names = [n for s in self.specs for n in (shard_names(max(slots or [1])) if s.name == GAME_SHARD else [s.name])]
        for name in names:
            out.append(self._row(name, self._slot_containers(name), self._spec(name)))
        known = {self.compose_key(n) for n in names} | {GAME_SHARD}
        others = sorted({(c.labels or {}).get(SWARM_SERVICE_LABEL, "")[len(self.stack) + 1:]
                         for c in self._containers()} - known - {""})
        for key in others:
            out.append(self._row(key, self._containers(key), None))
        return out

    def _spec(self, name: str) -> ServiceSpec | None:
        key = GAME_SHARD if shard_number(name) else name
        return next((s for s in self.specs if s.name == key), None)

    @staticmethod
    def _row(name: str, found: list[Any], spec: ServiceSpec | None) -> ServiceStatus:
        if not found:
            return ServiceStatus(name=name, state="missing", detail="no task container on this node")
        row = container_status(name, found[0], spec)
        ended = [c for c in found[1:] if (c.attrs.get("State") or {}).get("Status") in ("exited", "dead")]
        row.restarts = len(ended)
        return row

    def urls(self) -> dict[str, str]:
        """Redis and PostgreSQL at their running containers' addresses on docker_gwbridge (this node only)."""
        out: dict[str, str] = {}
        redis_ip = self._gwbridge_ip("redis")
        if redis_ip:
            out["REDIS_URL"] = f"redis://{redis_ip}:6379/0"
        pg_ip = self._gwbridge_ip("timescaledb")
        if pg_ip:
            out["DATABASE_URL"] = f"postgresql://arbees:arbees@{pg_ip}:5432/arbees"
        return out

    def _gwbridge_ip(self, key: str) -> str:
        running = [c for c in self._containers(key) if (c.attrs.get("State") or {}).get("Status") == "running"]
        if not running:
            return ""
        try:
            network = self._call(self.client.networks.get, GWBRIDGE)
        except RuntimeError_:
            return ""
        for cid, info in ((network.attrs or {}).get("Containers") or {}).items():
            if cid == running[0].id:
                return str(info.get("IPv4Address", "")).split("/")[0]
        return ""

    # ---- actions: the stack's own commands

    def _not_here(self, what: str) -> RuntimeError_:
        return RuntimeError_(f"{what} a swarm stack with `docker stack deploy -c docker-stack.yml {self.stack}`, "
                             f"`docker service scale {self.stack}_game_shard=N` or `docker stack rm {self.stack}`")

    def up(self, services: list[str] | None = None, build: bool = False) -> list[ServiceStatus]:
        raise self._not_here("start")

    def down(self) -> None:
        raise self._not_here("stop")

    def stop(self, services: list[str]) -> None:
        raise self._not_here("stop")

    def restart(self, services: list[str] | None = None) -> list[ServiceStatus]:
        raise self._not_here("restart")
