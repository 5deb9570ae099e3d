"""The local stack's start order, and where its further game shards (GAME_SHARDS) live."""

from __future__ import annotations

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.registry import SERVICES, shard_number, spec


def dependency_order(names: list[str]) -> list[str]:
    """`names` with each service after the ones it depends on (registry order breaks ties; every game shard
    where game_shard is)."""
    order: list[str] = []

    def visit(n: str) -> None:
        if n in order:
            return
        for dep in spec(n).depends_on:
            for d in [x for x in names if spec(x).name == dep]:
                visit(d)
        order.append(n)

    for s in SERVICES:
        for n in sorted((x for x in names if spec(x).name == s.name), key=lambda x: shard_number(x) or 0):
            visit(n)
    return order


#: Ports of further game shards (game_shard_2, ...): ZMQ SHARD_PORT_FIRST + k - 2 and metrics
#: SHARD_METRICS_FIRST + k - 2; with ARBEES_PORT_BASE, base + SHARD_OFFSET + 2 (k - 2) and the port after it.
SHARD_PORT_FIRST, SHARD_METRICS_FIRST, SHARD_OFFSET = 5570, 9450, 20


def shard_count(env: Env) -> int:
    """GAME_SHARDS: how many game shards the local stack runs (default 1)."""
    return env.get(S.GAME_SHARDS)
