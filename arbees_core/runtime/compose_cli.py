"""The `docker compose` command line the compose runtime acts through: which executable (Compose v2 only), running
one command with its failure worded for the operator, and the host ports `up` would need that another program
holds."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env, read_dotenv
from arbees_core.runtime.base import RuntimeError_
from arbees_core.runtime.ports import port_holder

#: Compose services published on a host port (127.0.0.1) -> the variable that fixes that port (unset: any free one).
HOST_PORT_VARS: dict[str, str] = {"redis": S.ARBEES_REDIS_HOST_PORT.name,
                                  "timescaledb": S.ARBEES_POSTGRES_HOST_PORT.name, "api": S.ARBEES_API_HOST_PORT.name}

_COMPOSE_TIMEOUT_S = 1800.0


def compose_exe() -> list[str]:
    """`docker compose` (the plugin), else a standalone Compose v2 `docker-compose`; RuntimeError_ saying what to
    install otherwise."""
    docker_cli = shutil.which("docker")
    if docker_cli:
        probe = subprocess.run([docker_cli, "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return [docker_cli, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        probe = subprocess.run([standalone, "version", "--short"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0 and not probe.stdout.strip().startswith("1."):
            return [standalone]
    if not docker_cli:
        raise RuntimeError_("`docker` CLI not found on PATH: install Docker (with the compose plugin), "
                            "or use the local runtime (`--runtime local`)")
    raise RuntimeError_("`docker compose` (Compose v2) is not available: install the docker-compose-plugin "
                        "(Compose v1 `docker-compose` is not supported), or use `--runtime local`")


def run_compose(cmd: list[str], cwd: Path) -> None:
    """Run one `docker compose` command line; RuntimeError_ with its last output lines when it fails or hangs."""
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=_COMPOSE_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError_(f"`{' '.join(cmd)}` did not finish within {_COMPOSE_TIMEOUT_S:.0f}s") from e
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-15:])
        raise RuntimeError_(f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n{tail}")


def host_port_clash(root: Path, running: set[str]) -> str:
    """Why `up` would fail on a host port fixed by HOST_PORT_VARS (environment, then `root/.env`, as compose reads
    them) that is held (`runtime.ports`) while its service's container is not running (a running one holds its
    port itself); "" when none would."""
    env = Env({**read_dotenv(root / ".env"), **os.environ})
    for key, var in HOST_PORT_VARS.items():
        try:
            port = env.get(S.declared(var))
        except ConfigError as e:
            return str(e)
        holder = port_holder(port) if port and key not in running else None
        if holder is not None:
            return (f"host port {port} of {key} ({var}) is already in use by {holder}; stop it, or set {var} to "
                    "another port (unset: any free port)")
    return ""
