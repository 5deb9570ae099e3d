"""Faults a runtime can apply to its own stack, for `arbees chaos`: the same scenario runs on either runtime.

| fault | local runtime | compose runtime |
|---|---|---|
| kill a service | SIGKILL its process (the supervisor restarts it) | SIGKILL the container's main process from the host (the restart policy restarts it: `docker kill` is a manual stop, which it never restarts) |
| freeze a service or Redis | SIGSTOP / SIGCONT | `docker pause` / `docker unpause` |
| PostgreSQL outage | `pg_ctl stop` / `start` of the embedded server | `docker stop` / `docker start` |
| read a service's file (the spool) | read it | `docker exec cat` |
| publish in a publisher's place | a process bound to its port on 127.0.0.1 | a container on arbees-network with the publisher's name as network alias |

Faults are only applied to servers the stack itself runs (the local runtime's embedded Redis and PostgreSQL, or
the compose stack's containers), never to a REDIS_URL / DATABASE_URL the operator configured: those raise
`FaultUnavailable`.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from arbees_core.registry import spec
from arbees_core.runtime.base import RuntimeError_

#: The module that publishes in a stopped publisher's place (run as a process, or in a container).
INJECTOR_MODULE = "arbees_core.validation.chaos.injector"


class FaultUnavailable(RuntimeError_):
    """This stack cannot host the fault (a server it does not run, a service that is not running)."""


def faults_for(runtime: Any) -> "LocalFaults | ComposeFaults":
    """The fault interface of a runtime (`kind` local or compose)."""
    kind = getattr(runtime, "kind", "")
    if kind == "local":
        return LocalFaults(runtime)
    if kind in ("compose", "swarm"):  # a swarm task is a container on this node, as a compose service's
        return ComposeFaults(runtime)
    raise FaultUnavailable(f"no faults for a runtime of kind {kind!r}")


class LocalFaults:
    """Signals to the stack's processes and pg_ctl on its embedded PostgreSQL."""

    def __init__(self, runtime: Any) -> None:
        self.rt = runtime
        self._pg_socket = ""

    def _pid(self, target: str) -> int:
        if target == "redis":
            pid = self.rt.read_stack().get("embedded", {}).get("redis", {}).get("pid")
            if not pid:
                raise FaultUnavailable("this stack uses a configured REDIS_URL; a Redis fault needs the embedded "
                                       "Redis (unset REDIS_URL and `arbees up`), so a shared server is never touched")
            return int(pid)
        row = next((s for s in self.rt.status() if s.name == spec(target).name), None)
        if row is None or row.state != "running" or not row.pid:
            raise FaultUnavailable(f"{target} is not running; start it with `arbees up {target}`")
        return int(row.pid)

    def kill(self, service: str) -> None:
        os.kill(self._pid(service), signal.SIGKILL)

    def pause(self, target: str) -> None:
        os.kill(self._pid(target), signal.SIGSTOP)

    def resume(self, target: str) -> None:
        os.kill(self._pid(target), signal.SIGCONT)

    def _pg_folder(self) -> Path:
        folder = self.rt.read_stack().get("embedded", {}).get("postgres", {}).get("folder")
        if not folder:
            raise FaultUnavailable("this stack uses a configured DATABASE_URL; a PostgreSQL outage needs the "
                                   "embedded PostgreSQL (unset DATABASE_URL and `arbees up`), so a shared server is "
                                   "never stopped")
        return Path(folder)

    def stop_postgres(self) -> None:
        """Stop the cluster (fast: clients are disconnected), keeping its socket folder for the restart."""
        folder = self._pg_folder()
        lines = (folder / "postmaster.pid").read_text().splitlines()
        self._pg_socket = lines[4] if len(lines) > 4 else str(folder)
        _pg_ctl(folder, "-w", "-m", "fast", "stop")

    def start_postgres(self) -> None:
        """Start it again as pgserver does: no TCP listener, the same socket folder, so the URL is unchanged."""
        folder = self._pg_folder()
        _pg_ctl(folder, "-w", "-o", '-h ""', "-o", f"-k {self._pg_socket or folder}", "-l", str(folder / "log"),
                "start")

    def read_file(self, service: str, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return b""

    def injector(self, service: str, port: int) -> list[str]:
        """The command that publishes on `service`'s port in its place (the service stopped first)."""
        return [sys.executable, "-m", INJECTOR_MODULE, "--bind", f"tcp://127.0.0.1:{port}"]


def _pg_ctl(folder: Path, *args: str) -> None:
    from arbees_core.runtime.embedded import pg_ctl

    done = pg_ctl(folder, *args)
    if done.returncode != 0:
        raise FaultUnavailable(f"pg_ctl {args[-1]} failed for the embedded PostgreSQL in {folder}: "
                               f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")


class ComposeFaults:
    """The Docker engine's own operations on the stack's containers."""

    #: Servers by the name the scenarios use -> compose service key.
    SERVERS = {"redis": "redis", "postgres": "timescaledb"}

    def __init__(self, runtime: Any) -> None:
        self.rt = runtime

    def _running(self, target: str) -> Any:
        container = self.rt._container(self.SERVERS.get(target, target))
        if (container.attrs.get("State") or {}).get("Status") not in ("running", "paused"):
            raise FaultUnavailable(f"{target} is not running; start it with `arbees up --runtime compose`")
        return container

    def kill(self, service: str) -> None:
        """A crash, as the engine sees one (the OOM killer's SIGKILL): the container's main process killed from
        the host, so the restart policy restarts it and counts it. `docker kill` would be a manual stop, which
        Docker never restarts. Needs the engine on this machine and the right to signal its processes."""
        pid = int((self._running(service).attrs.get("State") or {}).get("Pid") or 0)
        try:
            if pid <= 0:
                raise ProcessLookupError(pid)
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError) as e:
            raise FaultUnavailable(f"cannot kill {service}'s process {pid} from here ({type(e).__name__}): a crash "
                                   "needs the Docker engine on this machine and root (or the engine's user)") from None

    def pause(self, target: str) -> None:
        self.rt._call(self._running(target).pause)

    def resume(self, target: str) -> None:
        self.rt._call(self.rt._container(self.SERVERS.get(target, target)).unpause)

    def stop_postgres(self) -> None:
        self.rt._call(self._running("postgres").stop, timeout=10)

    def start_postgres(self) -> None:
        self.rt._call(self.rt._container(self.SERVERS["postgres"]).start)

    def read_file(self, service: str, path: str) -> bytes:
        code, out = self.rt.exec(service, ["cat", path])
        return out.encode() if code == 0 else b""

    def injector(self, service: str, port: int) -> list[str]:
        """A container of the service's own image on arbees-network, answering to the service's name (its
        subscribers connect by name and re-resolve it when they reconnect), bound to the service's port."""
        container = self.rt._container(service)
        image = (container.attrs.get("Config") or {}).get("Image") or container.image.id
        networks = list(((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}))
        network = networks[0] if networks else "arbees-network"
        return ["docker", "run", "-i", "--rm", "--network", network, "--network-alias", spec(service).name,
                "--entrypoint", "python", image, "-m", INJECTOR_MODULE, "--bind", f"tcp://0.0.0.0:{port}"]
