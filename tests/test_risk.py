"""Pre-trade risk limits: total exposure in dollars and the largest order in contracts."""

from __future__ import annotations

import pytest

from arbees_core.config import ConfigError, Env
from arbees_core.messages import Leg, TradingSignal
from arbees_core.strategy.risk import Exposure, RiskLimits


def _signal(qty: float = 10.0, cost_cents: float = 97.0, leg_qty: float | None = None) -> TradingSignal:
    legs = [Leg(venue="kalshi", ticker="KXNBAGAME-26NOV24MIABOS-BOS", side="yes", limit_price=40.0, qty=leg_qty or qty),
            Leg(venue="polymarket", ticker="7132045983104722901", side="no", limit_price=55.0, qty=qty)]
    return TradingSignal(src="game_shard-1", seq=1, ts_origin_ns=1, ts_detect_ns=1, signal_id="arb-0123456789abcdef",
                         game_id="NBA-2026-11-24-MIA-BOS", legs=legs, qty=qty, gross_edge_cents=5.0,
                         edge_cents=100.0 - cost_cents, edge_pct=(100.0 - cost_cents) / cost_cents * 100.0,
                         cost_cents=cost_cents)


def test_exposure_limit_rejects_signal() -> None:
    exposure = Exposure(RiskLimits(max_exposure_usd=50.0))
    reason = exposure.would_exceed(_signal(qty=60, cost_cents=97.0))  # $58.20
    assert reason is not None and "MAX_EXPOSURE_USD" in reason and "$58.20" in reason


def test_signal_within_the_limit_passes_even_exactly_at_it() -> None:
    exposure = Exposure(RiskLimits(max_exposure_usd=97.0))
    assert exposure.would_exceed(_signal(qty=100, cost_cents=97.0)) is None


def test_fills_count_towards_the_exposure_limit() -> None:
    exposure = Exposure(RiskLimits(max_exposure_usd=90.0))
    signal = _signal(qty=50, cost_cents=97.0)  # $48.50
    assert exposure.would_exceed(signal) is None
    exposure.add_fill(50, 40.0, 84.0)  # $20 + $0.84
    exposure.add_fill(50, 55.0, 37.13)  # $27.50 + $0.3713
    assert exposure.total_usd == pytest.approx(48.7113)
    assert exposure.would_exceed(signal) is not None


def test_order_size_limit_rejects_oversized_leg() -> None:
    exposure = Exposure(RiskLimits(max_exposure_usd=1e9, max_order_contracts=100.0))
    reason = exposure.would_exceed(_signal(qty=100, leg_qty=101))
    assert reason is not None and "MAX_ORDER_CONTRACTS=100" in reason and "qty 101" in reason
    assert exposure.would_exceed(_signal(qty=100)) is None


def test_exposure_starts_from_initial_usd() -> None:
    exposure = Exposure(RiskLimits(max_exposure_usd=100.0), initial_usd=95.0)
    assert exposure.total_usd == 95.0
    assert exposure.would_exceed(_signal(qty=10, cost_cents=97.0)) is not None


def test_add_fill_rejects_negative_amounts() -> None:
    exposure = Exposure(RiskLimits())
    with pytest.raises(ValueError):
        exposure.add_fill(-1, 40.0, 0.0)
    assert exposure.total_usd == 0.0


def test_risk_limits_read_env() -> None:
    assert RiskLimits.from_env(Env({})) == RiskLimits(1000.0, 100.0)
    env = Env({"MAX_EXPOSURE_USD": "250", "MAX_ORDER_CONTRACTS": "20"})
    assert RiskLimits.from_env(env) == RiskLimits(250.0, 20.0)
    with pytest.raises(ConfigError, match="MAX_EXPOSURE_USD"):
        RiskLimits.from_env(Env({"MAX_EXPOSURE_USD": "$250"}))
