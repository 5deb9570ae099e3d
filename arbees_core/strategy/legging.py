"""The sequential leg policy (`LEG_POLICY=sequential`): two orders, one after the other, as live order entry sends
them, and the unwind when the second misses.

Live, the two legs of an arbitrage go to two venues and the second order is sent when the first one's fill is
known; the book may move in between. So: send the leg less likely to fill first (a miss there costs nothing: the
second is never sent); size the second to what the first filled; if the second fills less, sell the first leg's
unhedged contracts back into the book it sees at once, and record what that cost (the realised legging loss).
Contracts that cannot be sold (no bid) stay an unhedged position, reported with their size and age.

Pure: the books come from `book_of`, and `between` runs after the first fill and before the second order (the
service reads the prices that arrived meanwhile there; a test moves a book). Units: cents and contracts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from msgspec.structs import replace as with_fields

from arbees_core.messages import Leg, PriceUpdate
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.strategy.fill import FillOutcome, cancelled, ioc_fill, ioc_sell, sized_to

BookOf = Callable[[Leg], "PriceUpdate | None"]


@dataclass(frozen=True)
class SequentialOutcome:
    """outcomes: the two legs' fills, in the signal's order; first: the leg sent first; unwind: the sale of the
    first leg's contracts the second did not hedge (None when nothing was left unhedged); legging_loss_cents: what
    the sold contracts cost (price and buy fees) minus what they brought (price less sell fees); residual_qty:
    contracts of the first leg neither hedged nor sold (an unhedged position); missed_leg: the leg that did not
    fill what its partner did or could (a leg miss), else None."""

    outcomes: tuple[FillOutcome, FillOutcome]
    first: int
    unwind: FillOutcome | None
    legging_loss_cents: float
    residual_qty: float
    missed_leg: int | None


def fill_share(leg: Leg, book: PriceUpdate | None, fees: FeeSchedule) -> float:
    """The share (0..1) of `leg.qty` the book's top level would fill within the limit: how likely the order is to
    fill. 0 without a book, without an ask, or with the ask above the limit."""
    return ioc_fill(leg, book, fees).filled_qty / leg.qty if leg.qty > 0 else 0.0


def first_leg(legs: list[Leg], books: list[PriceUpdate | None], fees: FeeSchedule) -> int:
    """The index of the leg less likely to fill (the smaller `fill_share`; the first leg on a tie)."""
    shares = [fill_share(leg, book, fees) for leg, book in zip(legs, books)]
    return min(range(len(legs)), key=lambda i: shares[i])


def legging_loss_cents(bought: FillOutcome, sold: FillOutcome) -> float:
    """Realised loss of selling `sold.filled_qty` of the contracts `bought` bought: their share of the purchase
    (price and buy fees) less the sale's proceeds net of its fees, cents. Negative when the sale made money."""
    if sold.filled_qty <= 0 or bought.filled_qty <= 0 or bought.avg_price is None or sold.avg_price is None:
        return 0.0
    cost_each = bought.avg_price + bought.fees_cents / bought.filled_qty
    return sold.filled_qty * (cost_each - sold.avg_price) + sold.fees_cents


def sequential_fill(legs: list[Leg], book_of: BookOf, fees: FeeSchedule,
                    between: Callable[[], None] = lambda: None) -> SequentialOutcome:
    """The two orders in turn (module docstring). The first leg fills against its book; after `between`, the second
    is sent for what the first filled, against the book seen then; any shortfall is sold back at once."""
    i = first_leg(legs, [book_of(leg) for leg in legs], fees)
    j = 1 - i
    first = ioc_fill(legs[i], book_of(legs[i]), fees)
    outs: list[FillOutcome] = [first, first]
    if first.filled_qty <= 0.0:
        could = ioc_fill(legs[j], book_of(legs[j]), fees).filled_qty > 0.0
        outs[j] = cancelled(f"not sent (sequential): leg {i} filled nothing: {first.reason}")
        return SequentialOutcome((outs[0], outs[1]), i, None, 0.0, 0.0, i if could else None)
    between()
    second = ioc_fill(with_fields(legs[j], qty=first.filled_qty), book_of(legs[j]), fees)
    outs[j] = sized_to(second, legs[j].qty, f"sized to leg {i}'s fill: {first.filled_qty:g} of {legs[j].qty:g}")
    short = first.filled_qty - second.filled_qty
    if short <= 0.0:
        return SequentialOutcome((outs[0], outs[1]), i, None, 0.0, 0.0, None)
    unwind = ioc_sell(legs[i], short, book_of(legs[i]), fees)
    return SequentialOutcome((outs[0], outs[1]), i, unwind, legging_loss_cents(first, unwind),
                             short - unwind.filled_qty, j)
