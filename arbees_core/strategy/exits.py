"""Marking a pair to market and deciding an early exit: pure functions, no I/O.

A pair (the two legs one arbitrage signal bought: YES on one venue, NO on the other, for the same outcome) pays
100 cents per hedged contract at settlement whatever the result, so holding is worth `hold_cents` = 100 x the
hedged quantity, known in advance. Selling both legs now is worth what their bids bring after the venues' taker fees
(`exit_value`). An exit beats holding when it brings at least `min_gain_cents` per contract more than settlement:
it realises the gain now and frees the exposure at once instead of at the game's end. Only a pair with both legs open
at equal quantity is a candidate (a pair with one leg settled, or a naked residual, is left to settlement).

`joint_sell` is how execution_service fills an exit: like the joint fill of an entry, both legs sell the same
quantity, the least that both bids can take at or above their limits, or neither sells (no exit leaves a naked leg).
Units: prices in cents, quantities in contracts, values in cents, times in ns since the epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from arbees_core.messages import ExitLeg, ExitSignal, PriceUpdate
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.strategy.fill import FillOutcome, cancelled
from arbees_core.strategy.positions import QTY_EPSILON, LegPosition
from arbees_core.venues import taker_fee_cents

BookOf = Callable[[str, str], "PriceUpdate | None"]


def best_bid(book: PriceUpdate | None, side: str) -> tuple[float | None, float]:
    """(best bid in cents, size) of `side` of the book; (None, 0) when there is none."""
    if book is None:
        return None, 0.0
    bid, size = (book.yes_bid, book.yes_bid_size) if side == "yes" else (book.no_bid, book.no_bid_size)
    return (bid, size) if bid is not None and size > 0 else (None, 0.0)


def sale_value_cents(venue: str, qty: float, bid: float, fees: FeeSchedule) -> float:
    """What selling `qty` contracts at `bid` brings after the taker fee (a venue charges a sale as a purchase)."""
    return qty * bid - (taker_fee_cents(venue, qty, bid, fees) if qty > 0 and bid > 0 else 0.0)


@dataclass(frozen=True)
class LegMark:
    """One open leg at the current bid of its side: bid (None: no bid), value_cents (None: no bid) = qty x bid less
    the sell fee, unrealised_pnl_cents = value less the leg's open cost."""

    leg: LegPosition
    bid: float | None
    value_cents: float | None

    @property
    def unrealised_pnl_cents(self) -> float | None:
        return None if self.value_cents is None else self.value_cents - self.leg.cost_cents


@dataclass(frozen=True)
class PairMark:
    """A pair marked to market. legs: every leg (open ones with a mark); qty: the hedged quantity (0 unless both legs
    are open); mark_cents: the open legs' value now (None while one has no bid); hold_cents: what the open legs pay
    at settlement when hedged (100 x qty), else their cost (unknown: counted at cost); exit_gain_cents: mark less
    hold for a hedged pair, else None."""

    pair_id: str
    game_id: str
    legs: tuple[LegMark, ...]
    qty: float
    cost_cents: float
    mark_cents: float | None
    hold_cents: float
    realised_pnl_cents: float

    @property
    def hedged(self) -> bool:
        return self.qty > QTY_EPSILON

    @property
    def unrealised_pnl_cents(self) -> float | None:
        return None if self.mark_cents is None else self.mark_cents - self.cost_cents

    @property
    def exit_gain_cents(self) -> float | None:
        return self.mark_cents - self.hold_cents if self.hedged and self.mark_cents is not None else None


def mark_pair(legs: list[LegPosition], book_of: BookOf, fees: FeeSchedule) -> PairMark:
    """The pair of `legs` (its open and closed legs) marked at the current bids."""
    marks = []
    for leg in sorted(legs, key=lambda x: x.leg):
        if not leg.open:
            marks.append(LegMark(leg, None, None))
            continue
        bid, _ = best_bid(book_of(leg.venue, leg.ticker), leg.side)
        marks.append(LegMark(leg, bid, None if bid is None else sale_value_cents(leg.venue, leg.qty, bid, fees)))
    open_marks = [m for m in marks if m.leg.open]
    qty = 0.0
    if len(open_marks) == 2 and abs(open_marks[0].leg.qty - open_marks[1].leg.qty) <= QTY_EPSILON:
        qty = open_marks[0].leg.qty
    cost = sum(m.leg.cost_cents for m in open_marks)
    values = [m.value_cents for m in open_marks]
    mark = None if not open_marks or any(v is None for v in values) else sum(v or 0.0 for v in values)
    first = marks[0].leg if marks else None
    return PairMark(pair_id=first.pair_id if first else "", game_id=first.game_id if first else "", legs=tuple(marks),
                    qty=qty, cost_cents=cost, mark_cents=mark, hold_cents=100.0 * qty if qty > 0 else cost,
                    realised_pnl_cents=sum(m.leg.realised_pnl_cents for m in marks))


def exit_signal(mark: PairMark, min_gain_cents: float, now_ns: int) -> ExitSignal | None:
    """An exit of `mark`'s pair when selling both legs now beats settlement by at least `min_gain_cents` per
    contract, else None. Each leg's limit is the bid seen: execution sells only at that price or better."""
    gain = mark.exit_gain_cents
    if gain is None or gain < min_gain_cents * mark.qty:
        return None
    legs = [ExitLeg(leg=m.leg.leg, venue=m.leg.venue, ticker=m.leg.ticker, side=m.leg.side,  # type: ignore[arg-type]
                    qty=mark.qty, limit_price=float(m.bid or 0.0)) for m in mark.legs if m.leg.open]
    return ExitSignal(src="", seq=0, ts_detect_ns=now_ns, exit_id=f"{mark.pair_id}-x{now_ns}", pair_id=mark.pair_id,
                      game_id=mark.game_id, legs=legs, exit_value_cents=round(mark.mark_cents or 0.0, 6),
                      hold_value_cents=mark.hold_cents, gain_cents=round(gain, 6))


def _sellable(leg: ExitLeg, qty: float, book: PriceUpdate | None) -> tuple[float, float | None, str]:
    """(contracts the bid takes at or above the limit, that bid, why not all)."""
    bid, size = best_bid(book, leg.side)
    if book is None:
        return 0.0, None, f"no book for {leg.ticker}"
    if bid is None:
        return 0.0, None, f"no {leg.side} bid on the book to sell into"
    if bid < leg.limit_price:
        return 0.0, bid, f"{leg.side} bid {bid:g}c below the exit's limit {leg.limit_price:g}c"
    return min(qty, size), bid, "" if size >= qty else f"book had {size:g} bid at {bid:g}c of {qty:g} to sell"


def joint_sell(legs: list[ExitLeg], held: list[float], books: list[PriceUpdate | None],
               fees: FeeSchedule) -> tuple[FillOutcome, ...]:
    """Sell both legs of an exit IOC: each at most what the pair still holds (`held`, per leg), the same quantity on
    both, the least both bids take at or above their limits; or neither, with the reason."""
    wanted = min(min(leg.qty, h) for leg, h in zip(legs, held))
    if wanted <= QTY_EPSILON:
        return tuple(cancelled("nothing left to sell: the pair is closed") for _ in legs)
    alone = [_sellable(leg, wanted, book) for leg, book in zip(legs, books)]
    limiting = min(range(len(legs)), key=lambda i: alone[i][0])
    qty = alone[limiting][0]
    if qty <= QTY_EPSILON:
        why = f"leg {legs[limiting].leg} {legs[limiting].venue} {legs[limiting].ticker}: {alone[limiting][2]}"
        return tuple(cancelled(f"exit not sent (joint sell): {why}") for _ in legs)
    out = []
    for leg, (_, bid, _) in zip(legs, alone):
        assert bid is not None
        fee = taker_fee_cents(leg.venue, qty, bid, fees)
        status = "filled" if qty >= leg.qty - QTY_EPSILON else "partial"
        out.append(FillOutcome(status, qty, bid, fee, "" if status == "filled" else
                               f"sold {qty:g} of {leg.qty:g} (joint sell): {alone[limiting][2]}"))
    return tuple(out)
