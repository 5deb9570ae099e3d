"""The paper IOC fill model: an order fills against the book the service sees, never "at the limit" by assumption.

A buy of `leg.side` takes that side's best ask; a sale (the unwind of a leg whose partner missed) takes that side's
best bid. Only the top level of the book is known (`PriceUpdate` carries top of book), so at most the size shown
there fills, at that price; the rest of an immediate-or-cancel order is cancelled. Fees come from the same
`taker_fee_cents` the arbitrage check used (the venues charge a sale the same taker fee as a purchase).

`joint_fill` is the default leg policy (`LEG_POLICY=joint`): an arbitrage is two legs, and one filled without the
other is an open, one-sided position, so both legs are judged against their books together before either fills.
The hedged quantity is the least that both can fill within their limits; both legs fill exactly that, or both are
cancelled with the reason. (`strategy/legging.py` models the real sequence of two orders.)

Units: prices in cents, quantities in contracts, fees in cents for the filled quantity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from msgspec.structs import replace as with_fields

from arbees_core.messages import Leg, PriceUpdate
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.venues import taker_fee_cents


@dataclass(frozen=True)
class FillOutcome:
    """status: "filled" | "partial" | "cancelled" | "rejected"; filled_qty in contracts; avg_price in cents (None when
    nothing filled); fees_cents for the filled quantity; reason says why an order did not fill completely."""

    status: str
    filled_qty: float
    avg_price: float | None
    fees_cents: float
    reason: str


def _rejected(reason: str) -> FillOutcome:
    return FillOutcome("rejected", 0.0, None, 0.0, reason)


def cancelled(reason: str) -> FillOutcome:
    return FillOutcome("cancelled", 0.0, None, 0.0, reason)


def _book_problem(leg: Leg, book: PriceUpdate | None, qty: float) -> FillOutcome | None:
    """Why no order on this book can fill at all (rejected), or None."""
    if book is None:
        return _rejected(f"no book for {leg.ticker}")
    if book.venue != leg.venue or book.ticker != leg.ticker:
        return _rejected(f"book is {book.venue}/{book.ticker}, order is for {leg.venue}/{leg.ticker}")
    if not qty > 0.0:
        return _rejected(f"order qty {qty:g} is not a positive number of contracts")
    return None


def _take(venue: str, qty: float, price: float, size: float, fees: FeeSchedule, short: str) -> FillOutcome:
    """min(qty, size) contracts at `price`, with their taker fee: "filled", or "partial" with `short` as reason."""
    done = min(qty, size)
    fee = taker_fee_cents(venue, done, price, fees)
    return FillOutcome("filled", done, price, fee, "") if done >= qty else FillOutcome("partial", done, price, fee, short)


def ioc_fill(leg: Leg, book: PriceUpdate | None, fees: FeeSchedule) -> FillOutcome:
    """Fill a buy of `leg.qty` contracts of `leg.side` at up to `leg.limit_price` cents against `book`.

    No book, or a book of another contract -> rejected. No ask, or the ask above the limit -> cancelled with nothing
    filled. Otherwise min(qty, size at the ask) fills at the ask: "filled" when complete, else "partial".
    """
    problem = _book_problem(leg, book, leg.qty)
    if problem is not None:
        return problem
    assert book is not None
    ask, size = (book.yes_ask, book.yes_ask_size) if leg.side == "yes" else (book.no_ask, book.no_ask_size)
    if ask is None or size <= 0.0:
        return cancelled(f"no {leg.side} ask on the book (limit {leg.limit_price:g}c)")
    if ask > leg.limit_price:
        return cancelled(f"{leg.side} ask {ask:g}c above limit {leg.limit_price:g}c")
    return _take(leg.venue, leg.qty, ask, size, fees,
                 f"book had {size:g} at {ask:g}c of {leg.qty:g} ordered; rest cancelled (IOC)")


def ioc_sell(leg: Leg, qty: float, book: PriceUpdate | None, fees: FeeSchedule) -> FillOutcome:
    """Sell `qty` contracts of `leg.side` of `leg`'s contract into the best bid of `book`, at any price (an unwind
    gets out at once): min(qty, size at the bid) fills at the bid; no bid -> cancelled, nothing sold."""
    problem = _book_problem(leg, book, qty)
    if problem is not None:
        return problem
    assert book is not None
    bid, size = (book.yes_bid, book.yes_bid_size) if leg.side == "yes" else (book.no_bid, book.no_bid_size)
    if bid is None or size <= 0.0:
        return cancelled(f"no {leg.side} bid on the book to sell {qty:g} into")
    return _take(leg.venue, qty, bid, size, fees, f"book had {size:g} bid at {bid:g}c of {qty:g} to sell")


def sized_to(out: FillOutcome, ordered: float, why: str) -> FillOutcome:
    """An outcome of an order cut down from `ordered` contracts, stated against what was ordered: a complete fill
    of the smaller order is "partial" of the leg, with `why`."""
    if out.status != "filled" or out.filled_qty >= ordered:
        return out
    return replace(out, status="partial", reason=why)


@dataclass(frozen=True)
class JointOutcome:
    """Both legs judged together. outcomes: per leg, in the signal's order; hedged_qty: contracts each leg filled
    (equal by construction); missed_leg: the leg that could fill nothing while another could (a leg miss, so both
    were cancelled), else None."""

    outcomes: tuple[FillOutcome, ...]
    hedged_qty: float
    missed_leg: int | None


def joint_fill(legs: list[Leg], books: list[PriceUpdate | None], fees: FeeSchedule) -> JointOutcome:
    """Both legs fill the least quantity that each can fill within its limit, or both are cancelled with the reason.

    Each leg is first judged alone (`ioc_fill`); the hedged quantity is the smallest of those fills. A leg that
    could fill more is cut to it ("partial", naming the leg that limited it); when the hedged quantity is 0, the
    legs that could have filled are cancelled ("not sent"), naming the leg that could not.
    """
    alone = [ioc_fill(leg, book, fees) for leg, book in zip(legs, books)]
    limiting = min(range(len(legs)), key=lambda i: alone[i].filled_qty)
    hedged = alone[limiting].filled_qty
    why = f"leg {limiting} {legs[limiting].venue} {legs[limiting].ticker}: {alone[limiting].reason}"
    if hedged <= 0.0:
        outs = tuple(cancelled(f"not sent (joint fill): {why}") if o.filled_qty > 0.0 else o for o in alone)
        missed = limiting if any(o.filled_qty > 0.0 for o in alone) else None
        return JointOutcome(outs, 0.0, missed)
    outs = []
    for i, (leg, book) in enumerate(zip(legs, books)):
        out = alone[i] if alone[i].filled_qty == hedged else ioc_fill(with_fields(leg, qty=hedged), book, fees)
        note = alone[i].reason if i == limiting else f"hedged to {hedged:g} of {leg.qty:g} (joint fill): {why}"
        outs.append(sized_to(out, leg.qty, note))
    return JointOutcome(tuple(outs), hedged, None)
