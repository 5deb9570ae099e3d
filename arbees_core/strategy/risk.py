"""Pre-trade risk limits: the money at risk in open positions, and the size of one order.

Units: money in US dollars (`_usd`), prices and fees in cents, quantities in contracts. The exposure a signal is
judged against is the cost of the open positions (`strategy/positions.PositionBook.exposure_usd`, the one place it
is computed): it falls when a market resolves or a leg is sold, so `MAX_EXPOSURE_USD` caps what is at risk at
once, not what a run may ever spend.

A rejection here is the limits working, not an error: it is counted per kind (`REJECTION_KINDS`) so the soak and
`arbees decide` can report it on its own row and keep it out of the error rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.messages import TradingSignal

#: Slack for float sums: a signal that lands exactly on the limit is allowed.
_USD_EPSILON = 1e-9
#: Why execution refuses a signal before any order: the counter suffix (`signals_rejected.<kind>`) of each.
REJECTION_KINDS = ("kill_switch", "expired", "positions_unknown", "order_size", "exposure", "invalid")


@dataclass(frozen=True)
class RiskLimits:
    """max_exposure_usd: MAX_EXPOSURE_USD, cost of open positions allowed, dollars (default 1000);
    max_order_contracts: MAX_ORDER_CONTRACTS, the largest leg, contracts (default 100)."""

    max_exposure_usd: float = S.MAX_EXPOSURE_USD.default
    max_order_contracts: float = S.MAX_ORDER_CONTRACTS.default

    @classmethod
    def from_env(cls, env: Env) -> "RiskLimits":
        return cls(
            max_exposure_usd=env.get(S.MAX_EXPOSURE_USD),
            max_order_contracts=env.get(S.MAX_ORDER_CONTRACTS),
        )


@dataclass(frozen=True)
class Rejection:
    """kind: one of REJECTION_KINDS; reason: the sentence logged and stored with the rejected legs."""

    kind: str
    reason: str


def check_limits(signal: TradingSignal, open_exposure_usd: float, limits: RiskLimits) -> Rejection | None:
    """Why `signal` must not trade, or None: a leg above `max_order_contracts`, or its full cost (qty x cost_cents
    / 100 dollars, both legs and fees) on top of `open_exposure_usd` exceeding `max_exposure_usd`."""
    for leg in signal.legs:
        if leg.qty > limits.max_order_contracts:
            return Rejection("order_size", f"leg {leg.venue} {leg.ticker} qty {leg.qty:g} exceeds "
                                           f"MAX_ORDER_CONTRACTS={limits.max_order_contracts:g}")
    cost_usd = signal.qty * signal.cost_cents / 100.0
    if not math.isfinite(cost_usd) or cost_usd < 0.0:
        return Rejection("invalid", f"signal cost {cost_usd} is not a non-negative amount")
    if open_exposure_usd + cost_usd > limits.max_exposure_usd + _USD_EPSILON:
        return Rejection("exposure", f"exposure ${open_exposure_usd:.2f} + signal ${cost_usd:.2f} would exceed "
                                     f"MAX_EXPOSURE_USD=${limits.max_exposure_usd:.2f}")
    return None
