"""Both venues' taker fees: the one fee model that arbitrage detection and paper fills share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbees_core.config import ConfigError, Env
from arbees_core.strategy.fees import (
    FeeSchedule,
    kalshi_taker_fee_cents,
    polymarket_taker_fee_cents,
)
from arbees_core.venues import taker_fee_cents

quantities = st.floats(min_value=0.0, max_value=10_000.0, allow_nan=False)
prices = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


@pytest.mark.parametrize(
    ("qty", "price", "fee"),
    [
        (100, 50, 175.0),  # 0.07 x 100 x 0.5 x 0.5 = $1.75 exactly: no extra cent from float noise
        (1, 50, 2.0),  # 1.75c -> 2c
        (10, 45, 18.0),  # 17.325c -> 18c
        (1, 1, 1.0),  # 0.0693c -> 1c
        (0, 50, 0.0),
        (100, 0, 0.0),
        (100, 100, 0.0),
    ],
)
def test_kalshi_fee_rounds_up_to_the_cent(qty: float, price: float, fee: float) -> None:
    assert kalshi_taker_fee_cents(qty, price) == fee


@pytest.mark.parametrize(
    ("qty", "price", "fee"),
    [
        (100, 50, 75.0),  # 0.03 x 100 x 0.25 = $0.75
        (1, 50, 0.75),
        (3, 33, 1.99),  # 1.9899c -> 1.99c
        (0, 50, 0.0),
    ],
)
def test_polymarket_fee_uses_the_sports_rate_and_rounds_up_to_a_hundredth_of_a_cent(
    qty: float, price: float, fee: float
) -> None:
    assert polymarket_taker_fee_cents(qty, price) == pytest.approx(fee, abs=1e-12)


def test_taker_fee_dispatches_on_venue_with_the_schedule_rates() -> None:
    fees = FeeSchedule(kalshi_taker_rate=0.035, polymarket_taker_rate=0.0)
    assert taker_fee_cents("kalshi", 100, 50, fees) == kalshi_taker_fee_cents(100, 50, 0.035) == 88.0
    assert taker_fee_cents("polymarket", 100, 50, fees) == 0.0
    with pytest.raises(ValueError, match="unknown venue"):
        taker_fee_cents("betfair", 1, 50, fees)


@pytest.mark.parametrize(("qty", "price"), [(-1, 50), (1, -0.5), (1, 100.5), (float("nan"), 50), (1, float("inf"))])
def test_fee_of_an_impossible_order_is_an_error_not_a_number(qty: float, price: float) -> None:
    with pytest.raises(ValueError):
        kalshi_taker_fee_cents(qty, price)
    with pytest.raises(ValueError):
        polymarket_taker_fee_cents(qty, price)


def test_fee_schedule_defaults_are_the_checked_rates() -> None:
    fees = FeeSchedule()
    assert (fees.kalshi_taker_rate, fees.polymarket_taker_rate, fees.as_of) == (0.07, 0.03, "2026-11-24")
    assert FeeSchedule.from_env(Env({})) == fees


def test_fee_schedule_reads_rates_from_env() -> None:
    env = Env({"KALSHI_TAKER_FEE_RATE": "0.05", "POLYMARKET_TAKER_FEE_RATE": "0.04", "FEE_RATES_AS_OF": "2027-01-01"})
    assert FeeSchedule.from_env(env) == FeeSchedule(0.05, 0.04, "2027-01-01")


@pytest.mark.parametrize("value", ["seven", "-0.07"])
def test_fee_schedule_rejects_a_bad_rate_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="KALSHI_TAKER_FEE_RATE"):
        FeeSchedule.from_env(Env({"KALSHI_TAKER_FEE_RATE": value}))


@given(qty=quantities, price=prices)
def test_fee_is_never_negative(qty: float, price: float) -> None:
    assert kalshi_taker_fee_cents(qty, price) >= 0.0
    assert polymarket_taker_fee_cents(qty, price) >= 0.0


@given(qty=quantities, extra=quantities, price=prices)
def test_fee_is_monotone_in_qty(qty: float, extra: float, price: float) -> None:
    assert kalshi_taker_fee_cents(qty, price) <= kalshi_taker_fee_cents(qty + extra, price)
    assert polymarket_taker_fee_cents(qty, price) <= polymarket_taker_fee_cents(qty + extra, price)


@given(qty=quantities, price=prices)
def test_kalshi_fee_is_whole_cents_and_at_least_the_exact_fee(qty: float, price: float) -> None:
    fee = kalshi_taker_fee_cents(qty, price)
    exact = 0.07 * qty * (price / 100.0) * (1.0 - price / 100.0) * 100.0
    assert fee == int(fee)
    assert exact - 1e-6 <= fee < exact + 1.0 + 1e-6


@given(qty=quantities, price=prices)
def test_polymarket_fee_is_at_least_the_exact_fee_and_within_a_hundredth_of_a_cent(qty: float, price: float) -> None:
    fee = polymarket_taker_fee_cents(qty, price)
    exact = 0.03 * qty * (price / 100.0) * (1.0 - price / 100.0) * 100.0
    assert exact - 1e-6 <= fee < exact + 0.01 + 1e-6
