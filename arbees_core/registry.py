"""The one registry of services: name, module, port, the env it reads, what it depends on, compose profile.

The local runtime, the compose file's test and the CLI all read this; nothing else lists the services by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arbees_core import topics

#: Settings every pipeline service reads.
COMMON_ENV: tuple[str, ...] = (
    "ZMQ_ENABLED", "REDIS_URL", "ARBEES_WIRE", "ZMQ_BIND_HOST", "ZMQ_SNDHWM", "ZMQ_RCVHWM", "REDIS_STREAM_MAXLEN",
    "HEARTBEAT_INTERVAL_SECS", "LOG_LEVEL", "LOG_SAMPLE_PER_SEC", "TRANSPORT_BLOCK_MS", "ARBEES_HOME",
    "ARBEES_STATE_DIR", "ARBEES_ENV_FILE", "ARBEES_RT_PRIORITY", "ZMQ_SEND_YIELD", "ZMQ_SPIN_US", "ARBEES_CONFIG_ERROR",
    "METRICS_PORT", "METRICS_HOST", "ARBEES_TRACEMALLOC",
)
#: Live venue adapters (KALSHI_SOURCE / POLYMARKET_SOURCE = live) and the stale-feed detector.
KALSHI_LIVE_ENV: tuple[str, ...] = (
    "KALSHI_ENV", "KALSHI_WS_URL", "KALSHI_REST_URL", "KALSHI_API_KEY_ID", "KALSHI_PRIVATE_KEY_PATH",
    "KALSHI_PRIVATE_KEY", "KALSHI_PROXY", "KALSHI_SERIES", "KALSHI_REST_MIN_INTERVAL_MS", "KALSHI_REST_MAX_RETRIES",
    "KALSHI_HEARTBEAT_S",
)
POLYMARKET_LIVE_ENV: tuple[str, ...] = (
    "POLYMARKET_WS_URL", "POLYMARKET_GAMMA_URL", "POLYMARKET_GEOBLOCK_URL", "POLYMARKET_PROXY", "POLYMARKET_PING_S",
    "POLYMARKET_LEAGUES", "POLYMARKET_SNAPSHOT_TIMEOUT_S", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
)
FEED_ENV: tuple[str, ...] = ("VENUE_BACKOFF_MIN_S", "VENUE_BACKOFF_MAX_S", "STALE_FEED_S")
SIM_ENV: tuple[str, ...] = (
    "SIM_SEED", "SIM_GAMES", "SIM_RATE", "SIM_MISPRICE_EVERY_S", "SIM_MISPRICE_AT_S", "SIM_MISPRICE_CENTS",
    "SIM_MISPRICE_DURATION_MS", "SIM_MISPRICE_VENUE", "SIM_DATE", "SIM_FAULT_GAP_AT_S", "SIM_GAME_LENGTH_S",
    "SIM_LEG_MISS_AT_S", "SIM_LEG_MISS_HOLD_MS",
)


@dataclass(frozen=True)
class ServiceSpec:
    """One pipeline service as every runtime sees it.

    name: as the plan names it (also the compose service and container name). module: run with `python -m`.
    port: the ZMQ PUB port it binds in ZMQ mode (None: publishes nothing). env: variables it reads beyond
    COMMON_ENV. depends_on: services that should be up first. compose_name: compose key where it differs.
    http_port: the HTTP port it serves operators on (the api's dashboard; None: none), on loopback locally and
    published on the host's loopback under compose.
    """

    name: str
    module: str
    port: int | None
    env: tuple[str, ...]
    depends_on: tuple[str, ...] = ()
    profile: str = "full"
    compose_name: str = ""
    description: str = ""
    http_port: int | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def compose_key(self) -> str:
        return self.compose_name or self.name


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(topics.MARKET_DISCOVERY, "arbees_core.services.market_discovery", None,
                ("DATABASE_URL", "DISCOVERY_INTERVAL_S", "DISCOVERY_RETRY_S", "SHARD_ID", "KALSHI_SOURCE",
                 "POLYMARKET_SOURCE", *SIM_ENV, *KALSHI_LIVE_ENV, *POLYMARKET_LIVE_ENV),
                compose_name="market-discovery", description="finds both venues' markets, stores the game mapping"),
    ServiceSpec(topics.ZMQ_LISTENER, "arbees_core.services.zmq_listener", None,
                ("ZMQ_KALSHI_ENDPOINT", "ZMQ_POLYMARKET_ENDPOINT", "ZMQ_GAME_SHARD_ENDPOINT", "ZMQ_EXECUTION_ENDPOINT",
                 "ZMQ_LISTENER_ENDPOINTS", "MIRROR_BUFFER_MAX", "MIRROR_LOG_PER_SEC", "MIRROR_FLUSH_MS",
                 "MIRROR_BATCH_MAX", "MIRROR_NICE"),
                description="mirrors the ZMQ hot path into Redis streams"),
    ServiceSpec(topics.KALSHI_MONITOR, "arbees_core.services.kalshi_monitor", topics.KALSHI_MONITOR_PORT,
                ("ZMQ_PUB_PORT", "ZMQ_PUB_ENDPOINT", "KALSHI_SOURCE", "DATABASE_URL", *SIM_ENV, *KALSHI_LIVE_ENV,
                 *FEED_ENV),
                depends_on=(topics.MARKET_DISCOVERY,), description="Kalshi books -> prices.kalshi.<ticker>"),
    ServiceSpec(topics.POLYMARKET_MONITOR, "arbees_core.services.polymarket_monitor", topics.POLYMARKET_MONITOR_PORT,
                ("ZMQ_PUB_PORT", "ZMQ_PUB_ENDPOINT", "POLYMARKET_SOURCE", "DATABASE_URL", *SIM_ENV,
                 *POLYMARKET_LIVE_ENV, *FEED_ENV),
                depends_on=(topics.MARKET_DISCOVERY,), description="Polymarket books -> prices.poly.<asset>"),
    ServiceSpec(topics.GAME_SHARD, "arbees_core.services.game_shard", topics.GAME_SHARD_PORT,
                ("ZMQ_SUB_ENDPOINTS", "ZMQ_PUB_PORT", "ZMQ_PUB_ENDPOINT", "DATABASE_URL", "SHARD_ID", "MIN_EDGE_PCT",
                 "MAX_PRICE_AGE_MS", "GAME_COOLDOWN_MS", "MAX_ORDER_CONTRACTS", "KALSHI_TAKER_FEE_RATE",
                 "POLYMARKET_TAKER_FEE_RATE", "FEE_RATES_AS_OF"),
                depends_on=(topics.MARKET_DISCOVERY, topics.KALSHI_MONITOR, topics.POLYMARKET_MONITOR),
                description="cross-venue arbitrage -> signals.trade.<id>"),
    ServiceSpec(topics.EXECUTION_SERVICE, "arbees_core.services.execution_service", topics.EXECUTION_SERVICE_PORT,
                ("ZMQ_SUB_ENDPOINT", "ZMQ_PRICE_ENDPOINTS", "ZMQ_PUB_PORT", "ZMQ_PUB_ENDPOINT", "DATABASE_URL",
                 "SPOOL_PATH", "SPOOL_FSYNC", "SIGNAL_MAX_AGE_MS", "EXECUTED_IDS_WINDOW_S", "EXECUTED_IDS_MAX", "PRICE_DRAIN_MS", "KILL_SWITCH_FILE",
                 "PAPER_TRADING", "MAX_EXPOSURE_USD", "MAX_ORDER_CONTRACTS", "LEG_POLICY", "KALSHI_TAKER_FEE_RATE",
                 "POLYMARKET_TAKER_FEE_RATE", "FEE_RATES_AS_OF"),
                depends_on=(topics.GAME_SHARD,), description="IOC paper orders -> paper_trades"),
    ServiceSpec(topics.API, "arbees_core.services.api", None,
                ("API_HOST", "API_PORT", "API_PUSH_MS", "API_CLIENT_QUEUE", "API_WINDOW_S", "DATABASE_URL",
                 "ZMQ_KALSHI_ENDPOINT", "ZMQ_POLYMARKET_ENDPOINT", "ZMQ_GAME_SHARD_ENDPOINT", "ZMQ_EXECUTION_ENDPOINT",
                 "MIN_EDGE_PCT", "MAX_PRICE_AGE_MS", "MAX_ORDER_CONTRACTS", "KALSHI_TAKER_FEE_RATE",
                 "POLYMARKET_TAKER_FEE_RATE", "FEE_RATES_AS_OF"),
                description="operators' live dashboard and JSON API (HTTP :8000)", http_port=topics.API_PORT),
)

BY_NAME: dict[str, ServiceSpec] = {s.name: s for s in SERVICES}


def spec(name: str) -> ServiceSpec:
    """The service called `name` (plan spelling; `-` and `_` are interchangeable)."""
    key = name.replace("-", "_")
    if key not in BY_NAME:
        raise KeyError(f"unknown service {name!r}: expected one of {', '.join(BY_NAME)}")
    return BY_NAME[key]
