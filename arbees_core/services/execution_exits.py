"""How execution_service carries out position_tracker's exit signals (`positions.exit.<pair>`).

The tracker decides that selling both legs of a pair beats holding them to settlement; execution_service, which
owns the orders, the books and the positions that its risk limit judges, does the selling: IOC sales of both legs
against the books it sees, the same quantity on both (`strategy/exits.joint_sell`), never more than the pair still
holds. The sales are recorded like an executed signal (spool, then `executed_signals` + `paper_trades` rows with
action "sell", order `<exit id>-<leg>`), and the record's `pair_id` makes the writer apply them to the pair's
`positions` rows in the same transaction, once; the in-memory book frees the exposure at once.
An exit that cannot be carried out (stale, the pair closed or unknown, kill switch) is counted per kind
(`exits_rejected.<kind>`) and logged, and nothing is recorded: the tracker signals again while the exit still pays.
"""

from __future__ import annotations

from arbees_core.messages import ExitSignal, TradeResult
from arbees_core.store.spool import SpoolRecord
from arbees_core.strategy.fill import FillOutcome
from arbees_core.strategy.positions import PositionBook
from arbees_core.strategy.risk import Rejection


def held_quantities(book: PositionBook, ex: ExitSignal) -> list[float] | None:
    """Contracts the pair still holds on each leg the exit names (0 for a closed leg), or None when the book does
    not have the pair or a leg is not the contract the exit names."""
    legs = {leg.leg: leg for leg in book.legs(ex.pair_id)}
    held = []
    for want in ex.legs:
        leg = legs.get(want.leg)
        if leg is None or (leg.venue, leg.ticker, leg.side) != (want.venue, want.ticker, want.side):
            return None
        held.append(leg.qty if leg.open else 0.0)
    return held


def exit_rejection(ex: ExitSignal, held: list[float] | None, age_ms: float, max_age_ms: float,
                   kill_switch: str, positions_known: bool) -> Rejection | None:
    """Why this exit is not carried out, or None. kill_switch: its source when on, else ""."""
    if kill_switch:
        return Rejection("kill_switch", f"kill switch on ({kill_switch})")
    if age_ms > max_age_ms:
        return Rejection("expired", f"expired: exit is {age_ms:.0f}ms old, SIGNAL_MAX_AGE_MS={max_age_ms:g}")
    if not positions_known:
        return Rejection("positions_unknown", "open positions unknown (PostgreSQL was away at start)")
    if held is None:
        return Rejection("unknown_pair", f"pair {ex.pair_id} is not open here (settled or exited already)")
    if min(held) <= 0.0:
        return Rejection("pair_closed", f"pair {ex.pair_id} has a closed leg: left to settlement")
    return None


def exit_results(ex: ExitSignal, outcomes: tuple[FillOutcome, ...], transport: str, recv_ns: int,
                 fill_ns: int) -> list[TradeResult]:
    """One sale per leg (order `<exit id>-<leg>`, action "sell", the pair's leg number)."""
    return [TradeResult(src="", seq=0, order_id=f"{ex.exit_id}-{leg.leg}", signal_id=ex.exit_id,
                        game_id=ex.game_id, leg=leg.leg, venue=leg.venue, ticker=leg.ticker, side=leg.side,
                        status=out.status, action="sell", limit_price=leg.limit_price,  # type: ignore[arg-type]
                        qty=leg.qty, filled_qty=out.filled_qty, avg_price=out.avg_price, fees_cents=out.fees_cents,
                        reason=out.reason, transport=transport, ts_origin_ns=ex.ts_detect_ns, ts_fill_ns=fill_ns,
                        signal_latency_ms=(recv_ns - ex.ts_pub_ns) / 1e6, execution_latency_ms=(fill_ns - recv_ns) / 1e6,
                        latency_ms=(fill_ns - ex.ts_detect_ns) / 1e6)
            for leg, out in zip(ex.legs, outcomes)]


def exit_record(ex: ExitSignal, results: list[TradeResult], transport: str, fill_ns: int) -> SpoolRecord:
    """The spool record of an exit: stored like a signal's, its sales applied to `pair_id`'s legs."""
    return SpoolRecord(signal_id=ex.exit_id, game_id=ex.game_id, transport=transport, executed_ns=fill_ns,
                       results=results, edge_cents=round(ex.gain_cents, 6), pair_id=ex.pair_id)


def sales(results: list[TradeResult]) -> list[tuple[int, float, float]]:
    """(leg, contracts sold, proceeds net of fees in cents) of the sales that filled."""
    return [(r.leg, r.filled_qty, r.filled_qty * float(r.avg_price or 0.0) - r.fees_cents) for r in results
            if r.filled_qty > 0 and r.avg_price is not None]
