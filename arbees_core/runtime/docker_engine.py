"""The Docker engine as the compose runtime reads it: whether one answers, the labels compose puts on containers,
and a container's state as a `ServiceStatus` (engine state, restarts, healthcheck line, ZMQ port)."""

from __future__ import annotations

import os
from typing import Any

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env
from arbees_core.registry import ServiceSpec
from arbees_core.runtime.base import RuntimeError_, ServiceStatus

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
WORKDIR_LABEL = "com.docker.compose.project.working_dir"

#: Docker container state -> ServiceStatus.state.
_STATES = {"running": "running", "restarting": "restarting", "exited": "exited", "dead": "exited",
           "created": "stopped", "paused": "stopped", "removing": "stopped"}

SDK_TIMEOUT_S = 30


def engine_error(e: BaseException, where: str = "") -> RuntimeError_:
    at = f" at {where}" if where else ""
    return RuntimeError_(
        f"Docker engine not reachable{at} ({type(e).__name__}: {e}). Start Docker (or set DOCKER_HOST), "
        "or use the local runtime (`--runtime local`).")


def client_from_env(timeout: float) -> Any:
    """`docker.from_env()`, except that a unix socket that does not exist (DOCKER_HOST, or the default
    /var/run/docker.sock) is refused at once: no engine can answer there, and docker-py's version probe, which
    runs while the client is built, leaves the socket it failed to connect open (a ResourceWarning on a machine
    without Docker)."""
    import docker

    host = Env().get(S.DOCKER_HOST) or "unix:///var/run/docker.sock"
    if host.startswith("unix://") and not os.path.exists(host[len("unix://"):]):
        raise docker.errors.DockerException(f"no Docker socket at {host[len('unix://'):]}")
    return docker.from_env(timeout=timeout)


def engine_available(client: Any = None, timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers `GET /_ping` within `timeout` seconds. False on any error, never raises.

    client: a `docker.DockerClient`; None builds one from the environment (DOCKER_HOST, the default socket).
    """
    own = None
    try:
        if client is None:
            client = own = client_from_env(max(1, int(timeout)))
        api = client.api
        old = api.timeout
        api.timeout = min(old, timeout) if old else timeout
        try:
            return bool(client.ping())
        finally:
            api.timeout = old
    except Exception:  # noqa: BLE001 - "is there an engine?" has only a yes/no answer
        return False
    finally:
        if own is not None:
            own.close()


def container_status(name: str, container: Any, spec: ServiceSpec | None) -> ServiceStatus:
    """One container as a ServiceStatus: the engine's state and restart count, its healthcheck's last line (a
    service holding after a configuration error is `failed`), the ZMQ port it binds in ZMQ mode."""
    attrs = container.attrs
    st = attrs.get("State", {}) or {}
    raw = st.get("Status", "")
    state = _STATES.get(raw, raw or "stopped")
    health = ((st.get("Health") or {}).get("Status") or "") if st.get("Health") else ""
    details: list[str] = []
    if raw in ("created", "paused", "removing", "dead"):
        details.append(raw)
    if st.get("OOMKilled"):
        details.append("OOM-killed")
    if st.get("Error"):
        details.append(str(st["Error"]))
    last = _last_health_line(st)
    if last.startswith(CONFIG_ERROR_PREFIX):  # the service holds after its one line (ARBEES_CONFIG_ERROR=hold)
        state = "failed"
        details.append(last[len(CONFIG_ERROR_PREFIX):].strip())
    elif health == "unhealthy" and last:
        details.append(f"healthcheck: {last[:200]}")
    ports: list[int] = []
    if spec is not None and spec.port:
        env = env_dict(attrs)
        try:
            zmq_mode = Env(env).get(S.ZMQ_ENABLED)
        except ConfigError:
            zmq_mode = False
        if zmq_mode:  # the PUB port is bound in ZMQ mode only
            try:
                ports = [Env(env).get(S.ZMQ_PUB_PORT, spec.port)]
            except ConfigError:
                ports = [spec.port]
    exit_code = st.get("ExitCode")
    return ServiceStatus(
        name=name,
        state=state,
        pid=None,
        container=(attrs.get("Name") or container.name or "").lstrip("/"),
        started_at=st.get("StartedAt", "") or "",
        restarts=int(attrs.get("RestartCount") or 0),
        exit_code=None if state == "running" or exit_code is None else int(exit_code),
        ports=ports,
        health=health,
        detail="; ".join(details),
    )


#: How the compose healthcheck reports a service holding after a configuration error (services/startup.py).
CONFIG_ERROR_PREFIX = "config_error:"


def _last_health_line(state: dict[str, Any]) -> str:
    """The last line the container's latest healthcheck printed (also during start_period, when failures are
    logged without counting), '' when there is none."""
    log = (state.get("Health") or {}).get("Log") or []
    lines = (log[-1].get("Output") or "").strip().splitlines() if log else []
    return lines[-1].strip() if lines else ""


def env_dict(attrs: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (attrs.get("Config") or {}).get("Env") or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def stats_resources(stats: dict[str, Any]) -> dict[str, float]:
    """Memory (MB) and CPU (% of one core) from one `docker stats` sample (the engine's stats document)."""
    mem = stats.get("memory_stats", {}).get("usage", 0) / 2**20
    cpu, pre = stats.get("cpu_stats", {}), stats.get("precpu_stats", {})
    d_cpu = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get("total_usage", 0)
    d_sys = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cores = cpu.get("online_cpus") or 1
    return {"rss_mb": round(mem, 2), "cpu_pct": round(d_cpu / d_sys * cores * 100, 1) if d_sys > 0 else 0.0}
