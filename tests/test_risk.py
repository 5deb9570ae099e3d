"""Pre-trade risk limits: the cost of open positions in dollars and the largest order in contracts."""

from __future__ import annotations

import pytest

from arbees_core.config import ConfigError, Env
from arbees_core.messages import Leg, TradingSignal
from arbees_core.strategy.risk import REJECTION_KINDS, RiskLimits, check_limits


def _signal(qty: float = 10.0, cost_cents: float = 97.0, leg_qty: float | None = None) -> TradingSignal:
    legs = [Leg(venue="kalshi", ticker="KXNBAGAME-26NOV24MIABOS-BOS", side="yes", limit_price=40.0, qty=leg_qty or qty),
            Leg(venue="polymarket", ticker="7132045983104722901", side="no", limit_price=55.0, qty=qty)]
    return TradingSignal(src="game_shard-1", seq=1, ts_origin_ns=1, ts_detect_ns=1, signal_id="arb-0123456789abcdef",
                         game_id="NBA-2026-11-24-MIA-BOS", legs=legs, qty=qty, gross_edge_cents=5.0,
                         edge_cents=100.0 - cost_cents, edge_pct=(100.0 - cost_cents) / cost_cents * 100.0,
                         cost_cents=cost_cents)


def test_exposure_limit_rejects_a_signal_whose_cost_would_exceed_it() -> None:
    rejection = check_limits(_signal(qty=60, cost_cents=97.0), 0.0, RiskLimits(max_exposure_usd=50.0))  # $58.20
    assert rejection is not None and rejection.kind == "exposure"
    assert "MAX_EXPOSURE_USD" in rejection.reason and "$58.20" in rejection.reason


def test_signal_within_the_limit_passes_even_exactly_at_it() -> None:
    assert check_limits(_signal(qty=100, cost_cents=97.0), 0.0, RiskLimits(max_exposure_usd=97.0)) is None


def test_open_positions_count_towards_the_limit_and_freeing_them_lets_the_signal_trade() -> None:
    limits, signal = RiskLimits(max_exposure_usd=90.0), _signal(qty=50, cost_cents=97.0)  # $48.50
    rejection = check_limits(signal, 48.7113, limits)
    assert rejection is not None and "exposure $48.71 + signal $48.50" in rejection.reason
    assert check_limits(signal, 0.0, limits) is None  # the positions closed: the same signal trades


def test_order_size_limit_rejects_oversized_leg() -> None:
    limits = RiskLimits(max_exposure_usd=1e9, max_order_contracts=100.0)
    rejection = check_limits(_signal(qty=100, leg_qty=101), 0.0, limits)
    assert rejection is not None and rejection.kind == "order_size"
    assert "MAX_ORDER_CONTRACTS=100" in rejection.reason and "qty 101" in rejection.reason
    assert check_limits(_signal(qty=100), 0.0, limits) is None


def test_every_rejection_kind_is_a_known_counter_suffix() -> None:
    kinds = {check_limits(_signal(qty=100, leg_qty=101), 0.0, RiskLimits()).kind,  # type: ignore[union-attr]
             check_limits(_signal(qty=60), 0.0, RiskLimits(max_exposure_usd=1.0)).kind}  # type: ignore[union-attr]
    assert kinds <= set(REJECTION_KINDS)


def test_risk_limits_read_env() -> None:
    assert RiskLimits.from_env(Env({})) == RiskLimits(1000.0, 100.0)
    env = Env({"MAX_EXPOSURE_USD": "250", "MAX_ORDER_CONTRACTS": "20"})
    assert RiskLimits.from_env(env) == RiskLimits(250.0, 20.0)
    with pytest.raises(ConfigError, match="MAX_EXPOSURE_USD"):
        RiskLimits.from_env(Env({"MAX_EXPOSURE_USD": "$250"}))
