"""What the local runtime reads off `.arbees/stack.json` and the project's settings: the stack's services (further
game shards included), its ports, a whole-number setting as the supervisor reads it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from arbees_core.registry import SERVICES

#: The stack's state file under the state folder, written by the supervisor, read by every command.
STACK_FILE = "stack.json"


def game_shards(root: Path) -> int:
    """GAME_SHARDS from the environment over the project's `.env` (as the supervisor reads it)."""
    from arbees_core import settings as S
    from arbees_core.config import Env, read_dotenv

    return Env({**read_dotenv(root / ".env"), **os.environ}).get(S.GAME_SHARDS)


def stack_names(stack: dict[str, Any]) -> list[str]:
    """Every service of the registry, with the stack's further game shards right after game_shard."""
    extra = sorted((n for n in stack.get("services", {}) if n not in {s.name for s in SERVICES}),
                   key=lambda n: (len(n), n))
    names: list[str] = []
    for s in SERVICES:
        names.append(s.name)
        if s.name == "game_shard":
            names += extra
    return names


def stack_ports(stack: dict[str, Any]) -> list[int]:
    """The TCP ports a stack binds: its publishers', HTTP and metrics ports and the embedded Redis's (PostgreSQL uses
    a socket file)."""
    ports = [int(v[key]) for v in stack.get("services", {}).values() for key in ("port", "http_port", "metrics_port")
             if v.get(key)]
    redis_url = stack.get("embedded", {}).get("redis", {}).get("url", "")
    if redis_url:
        ports.append(int(urlsplit(redis_url).port or 6379))
    return ports
