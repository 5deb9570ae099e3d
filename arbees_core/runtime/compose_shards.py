"""Further game shards under docker compose: `game_shard_2` .. `game_shard_<N>` beside the compose file's own
`game_shard` (which keeps its name, so the plan's `docker logs game_shard` still works).

GAME_SHARDS=N (in `.env`, or `arbees up --shards N`) makes the compose runtime write `.arbees/compose-shards.yml`,
one service per further shard, each a copy of `game_shard`'s definition with its own container name, SHARD_ID and
advertised endpoint (`tcp://game_shard_<k>:5558` on the stack's network), and pass it as a second `-f` file. The
orchestrator spreads the games over them; execution_service and zmq_listener find each one in `game_shards`.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from arbees_core import settings as S
from arbees_core.config import Env, read_dotenv
from arbees_core.registry import shard_names

OVERRIDE_NAME = "compose-shards.yml"


def shard_count(root: Path) -> int:
    return Env({**read_dotenv(root / ".env"), **os.environ}).get(S.GAME_SHARDS)


def shard_services(base: dict[str, Any], count: int) -> dict[str, Any]:
    """The compose services of shards 2..count, each a copy of the base file's `game_shard` service."""
    first = base["services"]["game_shard"]
    out: dict[str, Any] = {}
    for name in shard_names(count)[1:]:
        svc = copy.deepcopy(first)
        svc["container_name"] = name
        env = dict(svc.get("environment") or {})
        env.update({"SHARD_ID": name.rsplit("_", 1)[1], "ZMQ_ADVERTISE_HOST": name, "ARBEES_SERVICE": "game_shard"})
        svc["environment"] = env
        out[name] = svc
    return out


def write_override(root: Path, base_file: Path, count: int, folder: Path | None = None) -> Path | None:
    """Write the override for `count` shards (None when one shard needs none)."""
    if count <= 1:
        return None
    base = yaml.safe_load(base_file.read_text())
    target = (folder or root / ".arbees") / OVERRIDE_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("# written by arbees (GAME_SHARDS): further game shards, copies of game_shard\n"
                      + yaml.safe_dump({"services": shard_services(base, count)}, sort_keys=False))
    return target
