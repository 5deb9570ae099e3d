"""The compose runtime: `docker-compose.yml`'s stack, read through the Docker SDK, changed through `docker compose`.

Reads (status, env, logs, follow) go to the Docker Engine API through the `docker` SDK, finding containers by the
labels compose puts on them (`com.docker.compose.project=<project>`, `com.docker.compose.service=<key>`), so they
work whoever started the stack (`arbees up`, or an operator's `docker compose up` as in the plan). Actions (up,
down, restart) shell out to `docker compose -f <file> -p <project> --profile full ...`, so the compose file stays
the single description of the stack.

Restart means RECREATE: `restart()` runs `up -d --force-recreate <services>`, never `docker compose restart`.
A restarted container keeps the environment it was created with, so the plan's rollback
(`echo ZMQ_ENABLED=false >> .env; docker-compose --profile full restart`) left every service in ZMQ mode; only a
recreated container reads the current `.env`.

Service names: the registry's (plan) names (`kalshi_monitor`, `market_discovery`) or compose keys
(`market-discovery`); `-` and `_` are interchangeable. Other services of the compose file (`redis`,
`timescaledb`, `orchestrator`, `vpn`) are addressed by their compose key.
"""

from __future__ import annotations

import codecs
import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from arbees_core import settings as S
from arbees_core.config import Env, project_root
from arbees_core.registry import SERVICES, ServiceSpec
from arbees_core.runtime.base import PortProbe, RuntimeError_, ServiceStatus
from arbees_core.runtime.compose_cli import compose_exe, host_port_clash, run_compose
from arbees_core.runtime.compose_shards import shard_count, write_override
from arbees_core.runtime.docker_engine import (
    ONEOFF_LABEL,
    PROJECT_LABEL,
    SDK_TIMEOUT_S,
    SERVICE_LABEL,
    WORKDIR_LABEL,
    client_from_env,
    container_status,
    engine_available,
    engine_error,
    env_dict,
    stats_resources,
)
from arbees_core.runtime.preflight import check_compose

#: Profiles the pipeline runs under (`docker compose --profile full ...`, as in the plan).
DEFAULT_PROFILES: tuple[str, ...] = ("full",)
#: Every profile of docker-compose.yml; `down` names them all so optional services (vpn) go down too.
ALL_PROFILES: tuple[str, ...] = ("full", "vpn")

#: Settings for one run (`validate --quick`), read by every container before `.env`; removed after the run.
RUN_ENV_FILE = ".arbees/run.env"


class ComposeRuntime:
    """Runtime for the docker-compose stack (kind `compose`); see the module docstring."""

    kind = "compose"

    def __init__(self, root: Path | str | None = None, compose_file: Path | str | Sequence[Path | str] | None = None,
                 project: str = "arbees", client: Any = None, profiles: Sequence[str] = DEFAULT_PROFILES,
                 services: Sequence[ServiceSpec] = SERVICES) -> None:
        """root: project root (where `.env` is; default `project_root()`); compose_file: the compose file, or
        several (e.g. with docker-compose.vpn.yml), relative to root (default `docker-compose.yml`);
        project: compose project name (`-p`, the `com.docker.compose.project` label); client: a
        `docker.DockerClient` (default `docker.from_env()`, made on first use)."""
        self.root = Path(root) if root is not None else project_root()
        files = compose_file if compose_file is not None else "docker-compose.yml"
        if isinstance(files, (str, Path)):
            files = [files]
        self.compose_files = [p if Path(p).is_absolute() else self.root / p for p in map(Path, files)]
        self.project = project
        self.profiles = tuple(profiles)
        self.specs = tuple(services)
        self._client = client

    # ---- names

    def compose_key(self, service: str) -> str:
        """The compose service key of a registry name or compose key (`market_discovery` -> `market-discovery`)."""
        norm = service.replace("-", "_")
        for s in self.specs:
            if norm in (s.name, s.compose_key.replace("-", "_")):
                return s.compose_key
        return service

    def _name_of(self, key: str) -> str:
        """The name ServiceStatus uses: the registry name for pipeline services, else the compose key."""
        for s in self.specs:
            if s.compose_key == key:
                return s.name
        return key

    # ---- engine access

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                self._client = client_from_env(SDK_TIMEOUT_S)
            except Exception as e:  # noqa: BLE001 - DockerException, missing socket, bad DOCKER_HOST
                raise engine_error(e, Env().get(S.DOCKER_HOST)) from e
        return self._client

    def _base_url(self) -> str:
        try:
            return str(self._client.api.base_url) if self._client is not None else ""
        except AttributeError:
            return ""

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one SDK call; engine failures become RuntimeError_ with what to do."""
        import docker.errors
        import requests

        try:
            return fn(*args, **kwargs)
        except docker.errors.NotFound as e:
            raise RuntimeError_(f"container vanished while reading it ({e.explanation or e})") from e
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            raise engine_error(e, self._base_url()) from e

    def _containers(self, key: str | None = None) -> list[Any]:
        """Containers of the project (optionally of one compose service), one-off `compose run` ones excluded,
        running ones first, then the most recently created."""
        labels = [f"{PROJECT_LABEL}={self.project}"]
        if key is not None:
            labels.append(f"{SERVICE_LABEL}={key}")
        found = self._call(self.client.containers.list, all=True, filters={"label": labels}, ignore_removed=True)
        found = [c for c in found if (c.labels or {}).get(ONEOFF_LABEL, "False") != "True"]
        found.sort(key=lambda c: str(c.attrs.get("Created", "")), reverse=True)
        found.sort(key=lambda c: (c.attrs.get("State") or {}).get("Status") != "running")
        return found

    def _container(self, service: str) -> Any:
        key = self.compose_key(service)
        found = self._containers(key)
        if not found:
            raise RuntimeError_(
                f"no container for service {service!r} (compose service {key!r}) in project {self.project!r}: "
                f"start it with `arbees up {service}` or `docker compose --profile full up -d {key}`")
        return found[0]

    def _pipeline(self, services: list[str] | None) -> list[str]:
        """The registry names among `services` (default: every pipeline service); redis, timescaledb, vpn... have
        no arbees settings to check."""
        keys = {self.compose_key(s) for s in services} if services else {s.compose_key for s in self.specs}
        return [s.name for s in self.specs if s.compose_key in keys]

    # ---- Runtime protocol: reads

    def is_up(self) -> bool:
        """True when the engine answers and at least one container of the project exists (in any state)."""
        try:
            if not engine_available(self.client):
                return False
            return bool(self._containers())
        except RuntimeError_:
            return False

    def is_ours(self) -> bool:
        """True when the project's containers were created from this checkout (compose's working-dir label is
        this root): `--runtime auto` picks compose only then, never another checkout's stack on the same engine."""
        try:
            if not engine_available(self.client):
                return False
            dirs = {(c.labels or {}).get(WORKDIR_LABEL, "") for c in self._containers()}
        except RuntimeError_:
            return False
        return any(d and Path(d).resolve() == self.root.resolve() for d in dirs)

    def status(self) -> list[ServiceStatus]:
        """Every registry service (state `missing` when it has no container), then any other service of the
        project that has a container (redis, timescaledb, orchestrator, vpn), named by compose key.

        state: running | restarting | exited (also `dead`) | stopped (created, paused, removing; see detail);
        health: the container healthcheck's; restarts: the engine's RestartCount (restarts by the restart
        policy since the container was created; recreating resets it); ports: the ZMQ PUB port, only when the
        container runs in ZMQ mode (its env); detail: OOM kill, engine error, last failing healthcheck line."""
        by_key: dict[str, Any] = {}
        for c in self._containers():
            key = (c.labels or {}).get(SERVICE_LABEL, "")
            by_key.setdefault(key, c)  # first = preferred (running, newest)
        out: list[ServiceStatus] = []
        for s in self.specs:
            c = by_key.pop(s.compose_key, None)
            out.append(container_status(s.name, c, s) if c is not None else
                       ServiceStatus(name=s.name, state="missing",
                                     detail=f"no container for compose service {s.compose_key!r}"))
        for key in sorted(by_key):
            out.append(container_status(self._name_of(key), by_key[key], None))
        return out

    def env(self, service: str) -> dict[str, str]:
        """The container's environment (`docker exec <c> env`, from its config: image ENV, env_file, environment).
        Values are not redacted; show them through `arbees_core.config.redact_env`."""
        return env_dict(self._container(service).attrs)

    def logs(self, service: str, since_s: float | None = None, tail: int | None = None) -> str:
        """The container's log (stdout and stderr interleaved, as `docker logs`): the last `since_s` seconds
        (like `docker logs --since 5m`) and/or the last `tail` lines; everything when both are None."""
        c = self._container(service)
        kwargs: dict[str, Any] = {"stdout": True, "stderr": True}
        if since_s is not None:
            kwargs["since"] = max(time.time() - float(since_s), 0.000001)
        if tail is not None:
            kwargs["tail"] = max(int(tail), 0)
        data = self._call(c.logs, **kwargs)
        return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)

    def follow(self, service: str, tail: int | str = "all", since_s: float | None = None) -> Iterator[str]:
        """Log lines as they come (`docker logs -f`), without line endings; ends when the container stops."""
        c = self._container(service)
        kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "stream": True, "follow": True, "tail": tail}
        if since_s is not None:
            kwargs["since"] = max(time.time() - float(since_s), 0.000001)
        chunks = self._call(c.logs, **kwargs)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        try:
            for chunk in chunks:
                pending += decoder.decode(chunk)
                *lines, pending = pending.split("\n")
                for line in lines:
                    yield line.rstrip("\r")
        except Exception as e:  # noqa: BLE001 - the engine went away mid-stream
            import docker.errors
            import requests

            if isinstance(e, (docker.errors.DockerException, requests.exceptions.RequestException)):
                raise engine_error(e, self._base_url()) from e
            raise
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending.rstrip("\r")

    def metrics(self, service: str) -> dict[str, Any]:
        """The service's latest metrics snapshot, read inside its container (`/app/.arbees/metrics/<svc>.json`)."""
        import json

        name = self._name_of(self.compose_key(service))
        try:
            code, out = self._call(self._container(service).exec_run,
                                   ["cat", f"/app/.arbees/metrics/{name}.json"], demux=False)
        except RuntimeError_:
            return {}
        if code != 0:
            return {}
        try:
            return json.loads(out)
        except ValueError:
            return {}

    def resources(self, service: str) -> dict[str, float]:
        """Memory (MB) and CPU (% of one core) of the container, from one `docker stats` sample."""
        try:
            stats = self._call(self._container(service).stats, stream=False)
        except RuntimeError_:
            return {}
        return stats_resources(stats)

    def urls(self) -> dict[str, str]:
        """Redis and PostgreSQL as reachable from this machine: the loopback ports compose published for them
        (any free port unless ARBEES_REDIS_HOST_PORT / ARBEES_POSTGRES_HOST_PORT fix one); {} for a server whose
        container is not running."""
        out: dict[str, str] = {}
        redis_port = self._published("redis", 6379)
        if redis_port:
            out["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        pg_port = self._published("timescaledb", 5432)
        if pg_port:
            out["DATABASE_URL"] = f"postgresql://arbees:arbees@127.0.0.1:{pg_port}/arbees"
        api_port = self._published("api", 8000)
        if api_port:
            out["API_URL"] = f"http://127.0.0.1:{api_port}"
        return out

    def _published(self, key: str, port: int) -> int | None:
        """The host port the running container of compose service `key` publishes its `port` on."""
        found = [c for c in self._containers(key) if (c.attrs.get("State") or {}).get("Status") == "running"]
        if not found:
            return None
        bindings = ((found[0].attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp") or []
        host_ports = [int(b["HostPort"]) for b in bindings if str(b.get("HostPort", "")).isdigit()]
        return host_ports[0] if host_ports else None

    def exec(self, service: str, cmd: Sequence[str], timeout_s: float = 30.0) -> tuple[int, str]:
        """`docker exec <container> <cmd>`: exit code and output (stdout and stderr together), as the plan's
        probes run them inside the stack's network."""
        container = self._container(service)
        result = self._call(container.exec_run, list(cmd), stdout=True, stderr=True, demux=False)
        out = result.output.decode("utf-8", errors="replace") if isinstance(result.output, bytes) else str(result.output)
        return int(result.exit_code if result.exit_code is not None else 1), out

    def probe_port(self, service: str, port: int, timeout_s: float = 2.0, via: str = "zmq_listener") -> PortProbe:
        """The plan's `docker exec zmq_listener nc -zv kalshi_monitor 5555`: whether `service`'s port answers
        from inside arbees-network (container names resolve only there). Runs from `via`, or from any other
        running container of the stack when `via` is not running."""
        target = self._name_of(self.compose_key(service))
        runner = self._probe_runner(via, exclude=target)
        if runner is None:
            return PortProbe(False, "no running container of the stack to probe from (is it up?)")
        code, out = self.exec(runner, ["nc", "-zv", "-w", str(max(1, round(timeout_s))), target, str(port)])
        line = next((ln.strip() for ln in reversed(out.splitlines()) if ln.strip()), f"nc exited {code}")
        return PortProbe(code == 0, f"docker exec {runner} nc -zv {target} {port}: {line}")

    def _probe_runner(self, preferred: str, exclude: str) -> str | None:
        running = [st.name for st in self.status() if st.state == "running" and st.name != exclude]
        if preferred in running:
            return preferred
        pipeline = [n for n in running if n in {s.name for s in self.specs}]
        return (pipeline or running or [None])[0]

    # ---- Runtime protocol: actions (docker compose CLI)

    def compose_command(self, *args: str, profiles: Sequence[str] | None = None) -> list[str]:
        """The full `docker compose` command line for `args` (also what `arbees` prints for the operator)."""
        cmd = self._compose_exe() + ["-p", self.project, "--project-directory", str(self.root)]
        for f in self.compose_files + self._shard_files():
            cmd += ["-f", str(f)]
        for p in self.profiles if profiles is None else profiles:
            cmd += ["--profile", p]
        return cmd + list(args)

    def _shard_files(self) -> list[Path]:
        """GAME_SHARDS > 1: the generated file of the further shards (`runtime/compose_shards.py`)."""
        override = write_override(self.root, self.compose_files[0], shard_count(self.root))
        return [override] if override is not None else []

    def _compose_exe(self) -> list[str]:
        return compose_exe()

    def _run(self, *args: str, profiles: Sequence[str] | None = None) -> None:
        missing = [str(f) for f in self.compose_files if not f.exists()]
        if missing:
            raise RuntimeError_(f"compose file not found: {', '.join(missing)}")
        run_compose(self.compose_command(*args, profiles=profiles), self.root)

    @contextlib.contextmanager
    def run_settings(self, settings: dict[str, str]) -> Iterator[None]:
        """Containers read `.arbees/run.env` before `.env` (docker-compose.yml's env_file list), so these settings
        hold for containers created until the context ends, and `.env` wins where it sets them too."""
        path = self.root / RUN_ENV_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def up(self, services: list[str] | None = None, build: bool = False) -> list[ServiceStatus]:
        """`docker compose --profile full up -d [--build] [services]`; returns status(). Without `build` the image
        is built only when missing; `build` rebuilds it first (after a code change). A setting a service would refuse
        (preflight.py) and a fixed host port another program holds (naming the holder: Docker's own error names no
        process) are refused first."""
        check_compose(self.root, self.compose_files[0], self._pipeline(services))
        running = {(c.labels or {}).get(SERVICE_LABEL, "") for c in self._containers()
                   if (c.attrs.get("State") or {}).get("Status") == "running"}
        clash = host_port_clash(self.root, running)
        if clash:
            raise RuntimeError_(clash)
        self._run("up", "-d", *(["--build"] if build else []), *[self.compose_key(s) for s in services or []])
        return self.status()

    def down(self) -> None:
        """`docker compose down --remove-orphans` over every profile. Volumes (database, Redis, the execution
        spool) are kept: nothing recorded is lost."""
        self._run("down", "--remove-orphans", profiles=ALL_PROFILES)

    def stop(self, services: list[str]) -> None:
        """`docker compose stop <services>` (the containers stay, `up` starts them again)."""
        self._run("stop", *[self.compose_key(s) for s in services])

    def restart(self, services: list[str] | None = None) -> list[ServiceStatus]:
        """Recreate the services with the current `.env`: `up -d --force-recreate <services>` (default: every
        registry service; redis and timescaledb are recreated only if their own config changed).
        Not `docker compose restart`, which keeps each container's old environment (the original's rollback
        stayed in ZMQ mode that way)."""
        keys = [self.compose_key(s) for s in services] if services else [s.compose_key for s in self.specs]
        check_compose(self.root, self.compose_files[0], self._pipeline(services))
        self._run("up", "-d", "--force-recreate", *keys)
        return self.status()

