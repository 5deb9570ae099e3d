"""Where each service of the local stack listens and how the services find each other: the publishers' ZMQ ports,
the api's HTTP port and every service's metrics port (the plan's ports, or one block from `ARBEES_PORT_BASE` so
several stacks share a machine), further game shards' ports, and the endpoints every service is given."""

from __future__ import annotations

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.registry import SERVICES
from arbees_core.runtime.layout import SHARD_METRICS_FIRST, SHARD_OFFSET, SHARD_PORT_FIRST
from arbees_core.topics import METRICS_PORT_BASE, tcp_endpoint


#: With ARBEES_PORT_BASE: the api's HTTP port is base + HTTP_OFFSET, each service's metrics port base +
#: METRICS_OFFSET + its index in the registry (base + 6..7 stay free: tests plant wrong endpoints there).
HTTP_OFFSET, METRICS_OFFSET = 4, 8


def default_ports(env: Env) -> dict[str, int]:
    """The ZMQ PUB port of each publisher: the plan's ports, or `ARBEES_PORT_BASE` + 0..3 to run several stacks
    (a fifth publisher, position_tracker, at base + 5: base + 4 is the api's)."""
    base = env.get(S.ARBEES_PORT_BASE)
    publishers = [s for s in SERVICES if s.port is not None]
    if base:
        return {s.name: base + (i if i < HTTP_OFFSET else i + 1) for i, s in enumerate(publishers)}
    return {s.name: int(s.port) for s in publishers if s.port is not None}


def http_ports(env: Env) -> dict[str, int]:
    """The HTTP port of each service that serves one (the api): `API_PORT` when set, else its registry port
    (8000), or `ARBEES_PORT_BASE` + HTTP_OFFSET."""
    base = env.get(S.ARBEES_PORT_BASE)
    chosen = env.get(S.API_PORT, 0)
    return {s.name: chosen or (base + HTTP_OFFSET if base else int(s.http_port))
            for s in SERVICES if s.http_port is not None}


def metrics_ports(env: Env) -> dict[str, int]:
    """The Prometheus port (METRICS_PORT) of every service: 9400 + its index in the registry, or `ARBEES_PORT_BASE`
    + METRICS_OFFSET + index."""
    base = env.get(S.ARBEES_PORT_BASE)
    first = base + METRICS_OFFSET if base else METRICS_PORT_BASE
    return {s.name: first + i for i, s in enumerate(SERVICES)}


def wiring_env(ports: dict[str, int], host: str = "127.0.0.1") -> dict[str, str]:
    """The endpoints that connect the services on one machine, derived from the publishers' ports."""
    ep = {name: tcp_endpoint(host, port) for name, port in ports.items()}
    prices = f"{ep['kalshi_monitor']},{ep['polymarket_monitor']}"
    return {"ZMQ_SUB_ENDPOINTS": prices, "ZMQ_PRICE_ENDPOINTS": prices, "ZMQ_SUB_ENDPOINT": ep["game_shard"],
            "ZMQ_KALSHI_ENDPOINT": ep["kalshi_monitor"], "ZMQ_POLYMARKET_ENDPOINT": ep["polymarket_monitor"],
            "ZMQ_GAME_SHARD_ENDPOINT": ep["game_shard"], "ZMQ_EXECUTION_ENDPOINT": ep["execution_service"],
            "ZMQ_EXIT_ENDPOINT": ep["position_tracker"], "ZMQ_POSITION_TRACKER_ENDPOINT": ep["position_tracker"]}


def shard_ports(env: Env, k: int) -> tuple[int, int]:
    """(ZMQ port, metrics port) of game shard number `k` (2, 3, ...)."""
    base = env.get(S.ARBEES_PORT_BASE)
    if base:
        return base + SHARD_OFFSET + 2 * (k - 2), base + SHARD_OFFSET + 2 * (k - 2) + 1
    return SHARD_PORT_FIRST + k - 2, SHARD_METRICS_FIRST + k - 2
