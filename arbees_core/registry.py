"""The one registry of services: name, module, port, what it depends on, compose profile.

The local runtime, the compose file's test and the CLI all read this; nothing else lists the services by hand.
The settings each service reads are not listed here: they come from the declarations' readers
(`arbees_core/settings`), so `ServiceSpec.env` cannot drift from what the service reads.
"""

from __future__ import annotations

import re
from dataclasses import KW_ONLY, dataclass, field

from arbees_core import settings, topics



@dataclass(frozen=True)
class ServiceSpec:
    """One pipeline service as every runtime sees it.

    name: as the plan names it (also the compose service and container name). module: run with `python -m`.
    port: the ZMQ PUB port it binds in ZMQ mode (None: publishes nothing). depends_on: services that should be up
    first. compose_name: compose key where it differs. The rest is keyword-only.
    http_port: the HTTP port it serves operators on (the api's dashboard; None: none), on loopback locally and
    published on the host's loopback under compose.
    """

    name: str
    module: str
    port: int | None
    _: KW_ONLY
    depends_on: tuple[str, ...] = ()
    profile: str = "full"
    compose_name: str = ""
    description: str = ""
    http_port: int | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def compose_key(self) -> str:
        return self.compose_name or self.name

    @property
    def env(self) -> tuple[str, ...]:
        """Every setting this service reads (declared with it among their readers), in declaration order."""
        return tuple(s.name for s in settings.read_by(self.name))


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(topics.MARKET_DISCOVERY, "arbees_core.services.market_discovery", None,
                compose_name="market-discovery", description="finds both venues' markets, stores the game mapping"),
    ServiceSpec(topics.ZMQ_LISTENER, "arbees_core.services.zmq_listener", None,
                description="mirrors the ZMQ hot path into Redis streams"),
    ServiceSpec(topics.KALSHI_MONITOR, "arbees_core.services.kalshi_monitor", topics.KALSHI_MONITOR_PORT,
                depends_on=(topics.MARKET_DISCOVERY,), description="Kalshi books -> prices.kalshi.<ticker>"),
    ServiceSpec(topics.POLYMARKET_MONITOR, "arbees_core.services.polymarket_monitor", topics.POLYMARKET_MONITOR_PORT,
                depends_on=(topics.MARKET_DISCOVERY,), description="Polymarket books -> prices.poly.<asset>"),
    ServiceSpec(topics.GAME_SHARD, "arbees_core.services.game_shard", topics.GAME_SHARD_PORT,
                depends_on=(topics.MARKET_DISCOVERY, topics.KALSHI_MONITOR, topics.POLYMARKET_MONITOR),
                description="cross-venue arbitrage -> signals.trade.<id>"),
    ServiceSpec(topics.EXECUTION_SERVICE, "arbees_core.services.execution_service", topics.EXECUTION_SERVICE_PORT,
                depends_on=(topics.GAME_SHARD,), description="IOC paper orders -> paper_trades"),
    ServiceSpec(topics.API, "arbees_core.services.api", None,
                description="operators' live dashboard and JSON API (HTTP :8000)", http_port=topics.API_PORT),
    ServiceSpec(topics.POSITION_TRACKER, "arbees_core.services.position_tracker", topics.POSITION_TRACKER_PORT,
                depends_on=(topics.EXECUTION_SERVICE,),
                description="positions per pair and market, marked, settled -> positions.pair.<id>, exits"),
    ServiceSpec(topics.ORCHESTRATOR, "arbees_core.services.orchestrator", None, depends_on=(topics.MARKET_DISCOVERY,),
                description="assigns every game to one live game_shard, moves the games of dead shards"),
)

BY_NAME: dict[str, ServiceSpec] = {s.name: s for s in SERVICES}


#: A second, third, ... game shard's name (`game_shard_2`): the game_shard service, one more instance.
_SHARD_INSTANCE = re.compile(rf"^{topics.GAME_SHARD}_(\d+)$")


def shard_number(name: str) -> int | None:
    """2 for `game_shard_2`, 1 for `game_shard`, None for any other service."""
    key = name.replace("-", "_")
    if key == topics.GAME_SHARD:
        return 1
    m = _SHARD_INSTANCE.match(key)
    return int(m.group(1)) if m else None


def shard_names(count: int) -> list[str]:
    """The names of `count` game shards: `game_shard`, `game_shard_2`, ..."""
    return [topics.GAME_SHARD] + [f"{topics.GAME_SHARD}_{k}" for k in range(2, count + 1)]


def instance_name(name: str) -> str:
    """A service's name as runtimes key it: the registry name, or `game_shard_<n>` for a further shard."""
    n = shard_number(name)
    return shard_names(n)[-1] if n else spec(name).name


def spec(name: str) -> ServiceSpec:
    """The service called `name` (plan spelling; `-` and `_` are interchangeable; `game_shard_<n>` is a further
    game shard)."""
    key = name.replace("-", "_")
    if shard_number(key):
        return BY_NAME[topics.GAME_SHARD]
    if key not in BY_NAME:
        raise KeyError(f"unknown service {name!r}: expected one of {', '.join(BY_NAME)}")
    return BY_NAME[key]
