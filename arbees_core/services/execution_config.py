"""execution_service's settings, read once at start (`ExecutionConfig.from_env`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env, state_dir
from arbees_core.services.execution_orders import leg_policy_from_env
from arbees_core.services.shards import ShardingConfig
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.store.recent_ids import DEFAULT_CAPACITY, DEFAULT_WINDOW_S
from arbees_core.strategy.risk import RiskLimits
from arbees_core.topics import EXECUTION_SERVICE_PORT


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
    price_catchup_ms: PRICE_CATCHUP_MS (5, ZMQ mode), how long a signal waits at most for the prices it was
    derived from (`TradingSignal.inputs`) to reach the books: they come straight from the monitors, the signal
    through game_shard, so a price can arrive a moment after its signal;
    order_latency_ms: PAPER_ORDER_LATENCY_MS (0), the modeled venue round trip of each IOC order: the fill meets the
    book as it stands that long after the signal (prices read meanwhile), as a live order would;
    exit_endpoints: ZMQ_EXIT_ENDPOINT (position_tracker's publisher of exit signals, `services/execution_exits.py`);
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
    order_latency_ms: float = 0.0
    price_catchup_ms: float = 5.0
    sharding: ShardingConfig = ShardingConfig()
    exit_endpoints: tuple[str, ...] = ()
    executed_ids_window_s: float = DEFAULT_WINDOW_S
    executed_ids_max: int = DEFAULT_CAPACITY

    @classmethod
    def from_env(cls, env: Env) -> "ExecutionConfig":
        if not env.get(S.PAPER_TRADING):
            raise ConfigError("PAPER_TRADING=false: this build places paper orders only; live order entry is not built")
        database_url = env.get(S.DATABASE_URL)
        if not database_url:
            raise ConfigError("DATABASE_URL is not set: execution_service records paper_trades in PostgreSQL")
        window_s = env.get(S.EXECUTED_IDS_WINDOW_S)
        if window_s * 1000 < env.get(S.SIGNAL_MAX_AGE_MS):
            raise ConfigError(f"EXECUTED_IDS_WINDOW_S: expected at least SIGNAL_MAX_AGE_MS ({env.get(S.SIGNAL_MAX_AGE_MS):g} "
                              f"ms), was {window_s:g} s")
        return cls(
            signal_endpoints=list(env.get(S.ZMQ_SUB_ENDPOINT)),
            price_endpoints=list(env.get(S.ZMQ_PRICE_ENDPOINTS)),
            port=env.get(S.ZMQ_PUB_PORT, EXECUTION_SERVICE_PORT),
            endpoint=env.get(S.ZMQ_PUB_ENDPOINT),
            database_url=database_url,
            spool_path=Path(env.get(S.SPOOL_PATH) or state_dir() / "spool" / "execution_service.jsonl"),
            spool_fsync=env.get(S.SPOOL_FSYNC),
            signal_max_age_ms=env.get(S.SIGNAL_MAX_AGE_MS),
            kill_switch_file=Path(env.get(S.KILL_SWITCH_FILE) or state_dir() / "kill_switch"),
            fees=FeeSchedule.from_env(env),
            risk=RiskLimits.from_env(env),
            log_sample_per_s=env.get(S.LOG_SAMPLE_PER_SEC),
            price_drain_ms=env.get(S.PRICE_DRAIN_MS),
            leg_policy=leg_policy_from_env(env),
            order_latency_ms=env.get(S.PAPER_ORDER_LATENCY_MS),
            price_catchup_ms=env.get(S.PRICE_CATCHUP_MS),
            sharding=ShardingConfig.from_env(env),
            exit_endpoints=tuple(env.get(S.ZMQ_EXIT_ENDPOINT)),
            executed_ids_window_s=window_s, executed_ids_max=env.get(S.EXECUTED_IDS_MAX),
        )
