"""execution_service's settings (`ExecutionConfig.from_env`), apart from the service itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arbees_core.config import ConfigError, Env, state_dir
from arbees_core.services.execution_orders import leg_policy_from_env
from arbees_core.store.recent_ids import DEFAULT_CAPACITY, DEFAULT_WINDOW_S
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.strategy.risk import RiskLimits
from arbees_core.topics import (
    EXECUTION_SERVICE_PORT,
    GAME_SHARD_PORT,
    KALSHI_MONITOR_PORT,
    POLYMARKET_MONITOR_PORT,
    tcp_endpoint,
)


@dataclass(frozen=True)
class ExecutionConfig:
    """signal_endpoints: ZMQ_SUB_ENDPOINT (game_shard's publisher; a comma list is accepted);
    price_endpoints: ZMQ_PRICE_ENDPOINTS (the monitors, for the books fills are made against);
    port / endpoint: ZMQ_PUB_PORT / ZMQ_PUB_ENDPOINT for trade results; database_url: DATABASE_URL (required);
    spool_path: SPOOL_PATH; spool_fsync: SPOOL_FSYNC (fsync each append: survives power loss, costs latency);
    signal_max_age_ms: SIGNAL_MAX_AGE_MS (older signals are rejected as expired, not traded);
    kill_switch_file: KILL_SWITCH_FILE (exists = halt; so does Redis key `arbees:kill_switch` = on);
    price_drain_ms: PRICE_DRAIN_MS (ZMQ mode, default 2, at most TRANSPORT_BLOCK_MS): how long queued prices may
    wait while no signal arrives. Prices are read when a signal arrives (before it is filled) and at least this
    often, not one wake-up per price: on a small machine each wake-up costs the hot path a share of a core.
    leg_policy: LEG_POLICY, joint (default) | sequential (`services/execution_orders.py`);
    executed_ids_window_s / executed_ids_max: EXECUTED_IDS_WINDOW_S (600, at least SIGNAL_MAX_AGE_MS) /
    EXECUTED_IDS_MAX (100000), the bounds of the executed signal ids kept in memory (`store/recent_ids.py`)."""

    signal_endpoints: list[str]
    price_endpoints: list[str]
    port: int
    endpoint: str
    database_url: str
    spool_path: Path
    spool_fsync: bool
    signal_max_age_ms: float
    kill_switch_file: Path
    fees: FeeSchedule
    risk: RiskLimits
    log_sample_per_s: float
    price_drain_ms: float = 2.0
    leg_policy: str = "joint"
    executed_ids_window_s: float = DEFAULT_WINDOW_S
    executed_ids_max: int = DEFAULT_CAPACITY

    @classmethod
    def from_env(cls, env: Env) -> "ExecutionConfig":
        if not env.bool("PAPER_TRADING", True):
            raise ConfigError("PAPER_TRADING=false: this build places paper orders only; live order entry is not built")
        database_url = env.database_url()
        if not database_url:
            raise ConfigError("DATABASE_URL is not set: execution_service records paper_trades in PostgreSQL")
        max_age_ms = env.float("SIGNAL_MAX_AGE_MS", 5000.0, minimum=1.0)
        window_s = env.float("EXECUTED_IDS_WINDOW_S", DEFAULT_WINDOW_S, minimum=max_age_ms / 1000)
        prices = [tcp_endpoint("127.0.0.1", KALSHI_MONITOR_PORT), tcp_endpoint("127.0.0.1", POLYMARKET_MONITOR_PORT)]
        return cls(
            signal_endpoints=env.endpoints("ZMQ_SUB_ENDPOINT", [tcp_endpoint("127.0.0.1", GAME_SHARD_PORT)]),
            price_endpoints=env.endpoints("ZMQ_PRICE_ENDPOINTS", prices),
            port=env.int("ZMQ_PUB_PORT", EXECUTION_SERVICE_PORT, minimum=0),
            endpoint=env.str("ZMQ_PUB_ENDPOINT"),
            database_url=database_url,
            spool_path=Path(env.str("SPOOL_PATH") or state_dir() / "spool" / "execution_service.jsonl"),
            spool_fsync=env.bool("SPOOL_FSYNC", False),
            signal_max_age_ms=max_age_ms, executed_ids_window_s=window_s,
            executed_ids_max=env.int("EXECUTED_IDS_MAX", DEFAULT_CAPACITY, minimum=1),
            kill_switch_file=Path(env.str("KILL_SWITCH_FILE") or state_dir() / "kill_switch"),
            fees=FeeSchedule.from_env(env),
            risk=RiskLimits.from_env(env),
            log_sample_per_s=env.float("LOG_SAMPLE_PER_SEC", 5.0, minimum=0.0),
            price_drain_ms=env.float("PRICE_DRAIN_MS", 2.0, minimum=0.1),
            leg_policy=leg_policy_from_env(env),
        )
