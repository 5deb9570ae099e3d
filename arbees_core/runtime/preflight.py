"""Every setting checked before anything starts: one line naming the variable and where it was set.

A service reads its settings at start and exits with code 2 on a bad one (services/runner.py). Left to the
services, a typo in `.env` shows up as one service dying among several that started, behind its log lines. So
`up` and `restart` (both runtimes) first read each service's settings from the environment it would get, exactly
as the service does (every declared setting it reads, then `Service.from_env`), and stop at the first bad one with
`<.env path>: MIN_EDGE_PCT: expected a number, was 'abc' (read by game_shard); nothing was started`.

Settings are only read here: `from_env` runs on a stand-in class whose `__init__` does nothing, so no spool file,
socket or thread is made, and every argument `from_env` passes (every setting it reads) is still evaluated.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arbees_core.config import ConfigError, Env, read_dotenv
from arbees_core.registry import SERVICES, ServiceSpec, spec
from arbees_core.runtime.base import RuntimeError_

_VARIABLE = re.compile(r"^([A-Z][A-Z0-9_]*)\b")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
#: Stand-ins for the server URLs while the stack has not chosen them (the embedded servers' are made at start).
_SERVER_STANDINS = {"REDIS_URL": "redis://127.0.0.1:6379/0", "DATABASE_URL": "postgresql://127.0.0.1:5432/arbees"}


class SettingsError(RuntimeError_):
    """A setting a service would refuse; the message names the variable, where it was set, and the service."""


def service_class(entry: ServiceSpec) -> type:
    """The `Service` subclass that `python -m <entry.module>` runs (the one named `entry.name`)."""
    from arbees_core.services.runner import Service

    module = importlib.import_module(entry.module)
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Service) and getattr(value, "name", "") == entry.name:
            return value
    raise LookupError(f"{entry.module} defines no service named {entry.name}")


def read_settings(entry: ServiceSpec, environ: Mapping[str, str]) -> None:
    """Read every setting of `entry` from `environ` as the service does at start: each declared setting it reads
    (`Env.check`), then its `from_env` (what depends on several settings, a recording that must exist); ConfigError
    on a bad one."""
    cls = service_class(entry)
    stand_in = type(f"{cls.__name__}Settings", (cls,), {"__init__": lambda self, *args, **kwargs: None})
    env = Env(environ)
    env.check(entry.name)
    stand_in.from_env(env)


def local_environments(root: Path, names: list[str], environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """What each named service gets from the local supervisor (supervisor.child_env): the stack's wiring, the
    process environment, `.env` over it, the server URLs (stand-ins while unset: the embedded servers)."""
    from arbees_core.runtime.wiring import default_ports, wiring_env

    dotenv = read_dotenv(root / ".env")
    ports = default_ports(Env({**dotenv, **environ}))
    common = {**wiring_env(ports), **environ, **dotenv}
    for key, standin in _SERVER_STANDINS.items():
        common[key] = common.get(key) or standin
    return {n: {**common, **({"ZMQ_PUB_PORT": str(ports[n])} if n in ports else {})} for n in names}


def compose_environments(root: Path, compose_file: Path, names: list[str],
                         environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """What each named service's container gets: `.env` (env_file) under the compose file's own `environment:`,
    whose `${VAR:-default}` take the process environment, then `.env` (compose's interpolation order)."""
    import yaml

    dotenv = read_dotenv(root / ".env")
    scope = {**dotenv, **environ}
    doc = yaml.safe_load(compose_file.read_text()) or {}

    def interpolate(value: Any) -> str:
        return _INTERPOLATION.sub(lambda m: scope.get(m.group(1)) or (m.group(2) or ""), str(value))

    out = {}
    for name in names:
        pinned = (doc.get("services", {}).get(spec(name).compose_key) or {}).get("environment") or {}
        if isinstance(pinned, list):  # the `- KEY=value` spelling
            pinned = dict(item.partition("=")[::2] for item in pinned)
        out[name] = {**dotenv, **{k: interpolate(v) for k, v in pinned.items()}}
    return out


def check_settings(root: Path, environments: Mapping[str, Mapping[str, str]]) -> None:
    """Raise SettingsError for the first setting a service would refuse (services in registry order)."""
    dotenv = read_dotenv(root / ".env")
    with contextlib.chdir(root):  # relative paths (a replay file, a key file) are the services' working folder's
        for entry in SERVICES:
            if entry.name not in environments:
                continue
            try:
                read_settings(entry, environments[entry.name])
            except ConfigError as e:
                raise settings_error(e, entry.name, root, dotenv) from e


def settings_error(e: ConfigError, reader: str, root: Path, dotenv: Mapping[str, str]) -> SettingsError:
    """The one line: where the variable the error names was set (`.env` wins, as for the services), the error,
    who reads it."""
    m = _VARIABLE.match(str(e))
    name = m.group(1) if m else ""
    where = str(root / ".env") if name in dotenv else "the environment" if name in os.environ else ""
    return SettingsError(f"{where + ': ' if where else ''}{e} (read by {reader}); nothing was started")


def check_local(root: Path, names: list[str] | None = None) -> None:
    """The local runtime's check: the named services (default every one) as the supervisor would start them."""
    try:
        envs = local_environments(root, names or [s.name for s in SERVICES], os.environ)
    except ConfigError as e:  # the supervisor's own settings (ARBEES_PORT_BASE)
        raise settings_error(e, "the local supervisor", root, read_dotenv(root / ".env")) from e
    check_settings(root, envs)


def check_compose(root: Path, compose_file: Path, names: list[str] | None = None) -> None:
    """The compose runtime's check: the named services as their containers would get their settings."""
    if not compose_file.exists():
        return  # `docker compose` names the missing file itself
    check_settings(root, compose_environments(root, compose_file, names or [s.name for s in SERVICES], os.environ))
