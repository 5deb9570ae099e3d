"""Taker fees of both venues, one model used everywhere (arbitrage detection and paper fills alike).

Detection and the fill model must agree on fees, or a "profitable" arb and its fills disagree: both call the
venue registry's `taker_fee_cents` (venues/__init__.py), which picks the venue's model below, with the same
`FeeSchedule`.

Units: prices in **cents** (0..100) of a $1 contract, quantities in **contracts**, fees in **cents** for the
whole order (not per contract).

Sources (checked on `FeeSchedule.as_of`):
- Kalshi taker fee = round **up** to the next cent of 0.07 x C x P x (1 - P), P in dollars
  (https://docs.kalshi.com/getting_started/fee_rounding; 1.75c -> 2c per contract at 50c).
- Polymarket taker fee = C x rate x p x (1 - p), p in dollars, rate per category, sports 0.03
  (https://docs.polymarket.com/trading/fees), rounded up to $0.0001 (0.01 cent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from arbees_core import settings as S
from arbees_core.config import Env

KALSHI_TAKER_RATE: Final = S.KALSHI_TAKER_FEE_RATE.default
POLYMARKET_SPORTS_TAKER_RATE: Final = S.POLYMARKET_TAKER_FEE_RATE.default
RATES_AS_OF: Final = S.FEE_RATES_AS_OF.default
#: Products like 0.07 x 100 x 50 x 50 / 100 are 175.00000000000003 in binary floating point; rounding to this
#: many decimals before `ceil` keeps an exact cent exact instead of charging one more.
_FLOAT_GUARD_DECIMALS: Final = 9


@dataclass(frozen=True)
class FeeSchedule:
    """Taker fee rates (fractions, not percent) and the date they were checked against the venues' docs.

    kalshi_taker_rate: KALSHI_TAKER_FEE_RATE, default 0.07 (fee = ceil-to-cent of rate x C x P x (1-P)).
    polymarket_taker_rate: POLYMARKET_TAKER_FEE_RATE, default 0.03 (sports category; C x rate x p x (1-p)).
    as_of: FEE_RATES_AS_OF, the date the rates were last checked (both venues have changed them before).
    """

    kalshi_taker_rate: float = KALSHI_TAKER_RATE
    polymarket_taker_rate: float = POLYMARKET_SPORTS_TAKER_RATE
    as_of: str = RATES_AS_OF

    @classmethod
    def from_env(cls, env: Env) -> "FeeSchedule":
        return cls(
            kalshi_taker_rate=env.get(S.KALSHI_TAKER_FEE_RATE),
            polymarket_taker_rate=env.get(S.POLYMARKET_TAKER_FEE_RATE),
            as_of=env.get(S.FEE_RATES_AS_OF),
        )


def _check_order(qty: float, price_cents: float) -> None:
    if not (math.isfinite(qty) and qty >= 0.0):
        raise ValueError(f"qty {qty} is not a non-negative number of contracts")
    if not (math.isfinite(price_cents) and 0.0 <= price_cents <= 100.0):
        raise ValueError(f"price {price_cents} is outside 0..100 cents")


def _ceil(value: float) -> float:
    """`ceil` that does not round an exact integer up because of float noise in the product."""
    return float(math.ceil(round(value, _FLOAT_GUARD_DECIMALS)))


def _variance_cents(qty: float, price_cents: float) -> float:
    """C x P x (1 - P) with P in dollars, expressed in cents: qty x p x (100 - p) / 100."""
    return qty * price_cents * (100.0 - price_cents) / 100.0


def kalshi_taker_fee_cents(qty: float, price_cents: float, rate: float = KALSHI_TAKER_RATE) -> float:
    """Kalshi taker fee in cents for an order of `qty` contracts at `price_cents`: a whole number of cents,
    rounded up (100 @ 50c -> 175c; 1 @ 50c -> 2c; 10 @ 45c -> 18c)."""
    _check_order(qty, price_cents)
    return _ceil(rate * _variance_cents(qty, price_cents))


def polymarket_taker_fee_cents(qty: float, price_cents: float, rate: float = POLYMARKET_SPORTS_TAKER_RATE) -> float:
    """Polymarket taker fee in cents for `qty` contracts at `price_cents`, rounded up to 0.01 cent ($0.0001)."""
    _check_order(qty, price_cents)
    return _ceil(rate * _variance_cents(qty, price_cents) * 100.0) / 100.0
