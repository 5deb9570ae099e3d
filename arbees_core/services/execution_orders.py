"""How execution_service turns one signal into orders under its leg policy, and what it reports about legging.

`LEG_POLICY=joint` (default): both legs judged against the books together, both fill the hedged quantity or both
are cancelled (`strategy/fill.joint_fill`). `LEG_POLICY=sequential`: the leg less likely to fill first, the second
sized to it, a shortfall sold back at once (`strategy/legging.sequential_fill`). Either way the outcome is one
`Execution`: the legs' fills, the unwind if any, and the leg miss if any, which the service counts and logs once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.messages import Leg, PriceUpdate, TradeResult, TradingSignal
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.strategy.fill import FillOutcome, joint_fill
from arbees_core.strategy.legging import sequential_fill
from arbees_core.strategy.positions import Unhedged

LEG_POLICIES = S.LEG_POLICY.choices


def leg_policy_from_env(env: Env) -> str:
    """LEG_POLICY: joint (default) or sequential."""
    return env.get(S.LEG_POLICY)


@dataclass(frozen=True)
class Execution:
    """outcomes: each signal leg's fill, in the signal's order; unwind: (the leg sold back, the sale) or None;
    legging_loss_cents: the sale's realised loss; missed_leg: the leg that could not fill what its partner did or
    could (a leg miss) or None; residual_qty: contracts left unhedged (a sale that found no bid)."""

    outcomes: tuple[FillOutcome, ...]
    unwind: tuple[int, FillOutcome] | None = None
    legging_loss_cents: float = 0.0
    missed_leg: int | None = None
    residual_qty: float = 0.0


def rejected(legs: list[Leg], reason: str) -> Execution:
    """Every leg rejected before any order, with `reason` (risk limits, kill switch, expiry)."""
    return Execution(tuple(FillOutcome("rejected", 0.0, None, 0.0, reason) for _ in legs))


def execute(policy: str, legs: list[Leg], book_of: Callable[[Leg], PriceUpdate | None], fees: FeeSchedule,
            between: Callable[[], None]) -> Execution:
    """The signal's legs under `policy`; `between` runs between the two orders of the sequential policy (the
    service reads the prices that arrived meanwhile)."""
    if policy == "sequential":
        seq = sequential_fill(legs, book_of, fees, between)
        unwind = (seq.first, seq.unwind) if seq.unwind is not None else None
        return Execution(seq.outcomes, unwind, seq.legging_loss_cents, seq.missed_leg, seq.residual_qty)
    joint = joint_fill(legs, [book_of(leg) for leg in legs], fees)
    return Execution(joint.outcomes, missed_leg=joint.missed_leg)


def leg_miss_line(sig: TradingSignal, policy: str, ex: Execution) -> str:
    """The one log line of a leg miss: which leg missed and why, and what was done about the other."""
    k = ex.missed_leg if ex.missed_leg is not None else 0
    leg, out = sig.legs[k], ex.outcomes[k]
    head = (f"Leg miss on {sig.signal_id} ({policy}): leg {k} {leg.venue} {leg.ticker} buy {leg.side} "
            f"@{leg.limit_price:g}c: {out.reason or out.status}")
    if ex.unwind is None:  # joint, or the sequential policy's first order missed: neither leg filled
        return f"{head}; both legs cancelled, nothing filled"
    i, sale = ex.unwind
    text = (f"{head}; leg {i} {sig.legs[i].venue} {sig.legs[i].ticker} sold back {sale.filled_qty:g} contracts"
            + (f" at {sale.avg_price:g}c" if sale.avg_price is not None else f" ({sale.reason})")
            + f", legging loss ${ex.legging_loss_cents / 100.0:.2f}")
    return text + (f"; {ex.residual_qty:g} contracts left unhedged" if ex.residual_qty > 0 else "")


def legging_report(sig: TradingSignal, policy: str, ex: Execution, residual: Unhedged | None) -> list[tuple[str, str]]:
    """(counter, log line) of what a signal left to report: its leg miss (`leg_misses`), and a pair whose legs
    hold different quantities after it (`unhedged_events`: the residual's size and where it is)."""
    out = []
    if ex.missed_leg is not None:
        out.append(("leg_misses", leg_miss_line(sig, policy, ex)))
    if residual is not None:
        leg = residual.leg
        out.append(("unhedged_events", f"Unhedged position {sig.signal_id}: {residual.contracts:g} contracts of "
                    f"{leg.venue} {leg.ticker} {leg.side} open (net open quantity of the pair is not zero); "
                    "reported until its market resolves"))
    return out


def _result(sig: TradingSignal, index: int, leg: Leg, qty: float, out: FillOutcome, transport: str, recv_ns: int,
            fill_ns: int, action: str = "buy", loss_cents: float = 0.0) -> TradeResult:
    return TradeResult(
        src="", seq=0, order_id=f"{sig.signal_id}-{index}", signal_id=sig.signal_id, game_id=sig.game_id, leg=index,
        venue=leg.venue, ticker=leg.ticker, side=leg.side, status=out.status,  # type: ignore[arg-type]
        action=action, legging_loss_cents=loss_cents,  # type: ignore[arg-type]
        limit_price=leg.limit_price, qty=qty, filled_qty=out.filled_qty, avg_price=out.avg_price,
        fees_cents=out.fees_cents, reason=out.reason, transport=transport, ts_origin_ns=sig.ts_origin_ns,
        ts_fill_ns=fill_ns, price_latency_ms=sig.price_latency_ms, signal_latency_ms=(recv_ns - sig.ts_pub_ns) / 1e6,
        execution_latency_ms=(fill_ns - recv_ns) / 1e6, latency_ms=(fill_ns - sig.ts_origin_ns) / 1e6,
    )


def trade_results(sig: TradingSignal, ex: Execution, transport: str, recv_ns: int, fill_ns: int) -> list[TradeResult]:
    """One result per leg (order `<signal>-<leg>`), then the unwind's sale (`<signal>-2`, action "sell", limit 0:
    at the bid, at any price, for the contracts left unhedged) with the realised legging loss."""
    results = [_result(sig, i, leg, leg.qty, out, transport, recv_ns, fill_ns)
               for i, (leg, out) in enumerate(zip(sig.legs, ex.outcomes))]
    if ex.unwind is not None:
        i, sale = ex.unwind
        sold = msgspec.structs.replace(sig.legs[i], limit_price=0.0)
        results.append(_result(sig, len(results), sold, sale.filled_qty + ex.residual_qty, sale, transport, recv_ns,
                               fill_ns, action="sell", loss_cents=ex.legging_loss_cents))
    return results
