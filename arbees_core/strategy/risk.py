"""Pre-trade risk limits: total money committed and the size of one order.

Units: money in US dollars (`_usd`), prices and fees in cents, quantities in contracts. Exposure is the cost of
what has filled (price x contracts + fees), counted from the start of the process (or `initial_usd`); nothing
releases it, so `MAX_EXPOSURE_USD` caps what one run of the service may spend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from arbees_core.config import Env
from arbees_core.messages import TradingSignal

#: Slack for float sums: a signal that lands exactly on the limit is allowed.
_USD_EPSILON = 1e-9


@dataclass(frozen=True)
class RiskLimits:
    """max_exposure_usd: MAX_EXPOSURE_USD, total filled cost allowed, dollars (default 1000);
    max_order_contracts: MAX_ORDER_CONTRACTS, the largest leg, contracts (default 100)."""

    max_exposure_usd: float = 1000.0
    max_order_contracts: float = 100.0

    @classmethod
    def from_env(cls, env: Env) -> "RiskLimits":
        return cls(
            max_exposure_usd=env.float("MAX_EXPOSURE_USD", 1000.0, minimum=0.0),
            max_order_contracts=env.float("MAX_ORDER_CONTRACTS", 100.0, minimum=1.0),
        )


class Exposure:
    """The dollars committed by fills so far, and the check that a new signal stays within the limits."""

    def __init__(self, limits: RiskLimits, initial_usd: float = 0.0) -> None:
        self.limits = limits
        self._total_usd = initial_usd

    @property
    def total_usd(self) -> float:
        """Sum over fills of filled_qty x avg_price / 100 + fees / 100, dollars."""
        return self._total_usd

    def would_exceed(self, signal: TradingSignal) -> str | None:
        """Why `signal` must not trade, or None: a leg above `max_order_contracts`, or its full cost
        (qty x cost_cents / 100 dollars, both legs and fees) pushing the total over `max_exposure_usd`."""
        for leg in signal.legs:
            if leg.qty > self.limits.max_order_contracts:
                return (f"leg {leg.venue} {leg.ticker} qty {leg.qty:g} exceeds "
                        f"MAX_ORDER_CONTRACTS={self.limits.max_order_contracts:g}")
        cost_usd = signal.qty * signal.cost_cents / 100.0
        if not math.isfinite(cost_usd) or cost_usd < 0.0:
            return f"signal cost {cost_usd} is not a non-negative amount"
        if self._total_usd + cost_usd > self.limits.max_exposure_usd + _USD_EPSILON:
            return (f"exposure ${self._total_usd:.2f} + signal ${cost_usd:.2f} would exceed "
                    f"MAX_EXPOSURE_USD=${self.limits.max_exposure_usd:.2f}")
        return None

    def add_fill(self, filled_qty: float, avg_price_cents: float, fees_cents: float) -> None:
        """Count one fill: `filled_qty` contracts at `avg_price_cents` plus `fees_cents` of fees."""
        if filled_qty < 0.0 or avg_price_cents < 0.0 or fees_cents < 0.0:
            raise ValueError(f"fill of {filled_qty} @ {avg_price_cents}c, fees {fees_cents}c: negative amount")
        self._total_usd += (filled_qty * avg_price_cents + fees_cents) / 100.0
