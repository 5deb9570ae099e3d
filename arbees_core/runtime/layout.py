"""Where the local stack's services live: each publisher's port, the HTTP and metrics ports, the endpoints that
wire them, the start order, and the further game shards' ports (GAME_SHARDS)."""

from __future__ import annotations

from arbees_core.config import Env
from arbees_core.registry import SERVICES, shard_number, spec
from arbees_core.topics import METRICS_PORT_BASE, tcp_endpoint


def default_ports(env: Env) -> dict[str, int]:
    """The ZMQ PUB port of each publisher: the plan's ports, or `ARBEES_PORT_BASE` + 0..3 to run several stacks."""
    base = env.int("ARBEES_PORT_BASE", 0, minimum=0)
    publishers = [s for s in SERVICES if s.port is not None]
    if base:
        return {s.name: base + i for i, s in enumerate(publishers)}
    return {s.name: int(s.port) for s in publishers if s.port is not None}


#: With ARBEES_PORT_BASE: the api's HTTP port is base + HTTP_OFFSET, each service's metrics port base +
#: METRICS_OFFSET + its index in the registry (base + 4..7 stay free: tests plant wrong endpoints there).
HTTP_OFFSET, METRICS_OFFSET = 4, 8


def http_ports(env: Env) -> dict[str, int]:
    """The HTTP port of each service that serves one (the api): `API_PORT` when set, else its registry port
    (8000), or `ARBEES_PORT_BASE` + HTTP_OFFSET."""
    base = env.int("ARBEES_PORT_BASE", 0, minimum=0)
    chosen = env.int("API_PORT", 0, minimum=0)
    return {s.name: chosen or (base + HTTP_OFFSET if base else int(s.http_port))
            for s in SERVICES if s.http_port is not None}


def metrics_ports(env: Env) -> dict[str, int]:
    """The Prometheus port (METRICS_PORT) of every service: 9400 + its index in the registry, or `ARBEES_PORT_BASE`
    + METRICS_OFFSET + index."""
    base = env.int("ARBEES_PORT_BASE", 0, minimum=0)
    first = base + METRICS_OFFSET if base else METRICS_PORT_BASE
    return {s.name: first + i for i, s in enumerate(SERVICES)}


def wiring_env(ports: dict[str, int], host: str = "127.0.0.1") -> dict[str, str]:
    """The endpoints that connect the services on one machine, derived from the publishers' ports."""
    ep = {name: tcp_endpoint(host, port) for name, port in ports.items()}
    prices = f"{ep['kalshi_monitor']},{ep['polymarket_monitor']}"
    return {"ZMQ_SUB_ENDPOINTS": prices, "ZMQ_PRICE_ENDPOINTS": prices, "ZMQ_SUB_ENDPOINT": ep["game_shard"],
            "ZMQ_KALSHI_ENDPOINT": ep["kalshi_monitor"], "ZMQ_POLYMARKET_ENDPOINT": ep["polymarket_monitor"],
            "ZMQ_GAME_SHARD_ENDPOINT": ep["game_shard"], "ZMQ_EXECUTION_ENDPOINT": ep["execution_service"]}


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
SHARD_PORT_FIRST, SHARD_METRICS_FIRST, SHARD_OFFSET = 5570, 9450, 16


def shard_count(env: Env) -> int:
    """GAME_SHARDS: how many game shards the local stack runs (default 1)."""
    return env.int("GAME_SHARDS", 1, minimum=1)
