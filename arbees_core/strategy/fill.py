"""The paper IOC fill model: an order fills against the book the service sees, never "at the limit" by assumption.

A buy of `leg.side` takes that side's best ask. Only the top level of the book is known (`PriceUpdate` carries
top of book), so at most the size shown there fills, at that price; the rest of an immediate-or-cancel order is
cancelled. Fees come from the same `taker_fee_cents` the arbitrage check used.

Units: prices in cents, quantities in contracts, fees in cents for the filled quantity.
"""

from __future__ import annotations

from dataclasses import dataclass

from arbees_core.messages import Leg, PriceUpdate
from arbees_core.strategy.fees import FeeSchedule, taker_fee_cents


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


def _cancelled(reason: str) -> FillOutcome:
    return FillOutcome("cancelled", 0.0, None, 0.0, reason)


def ioc_fill(leg: Leg, book: PriceUpdate | None, fees: FeeSchedule) -> FillOutcome:
    """Fill a buy of `leg.qty` contracts of `leg.side` at up to `leg.limit_price` cents against `book`.

    No book, or a book of another contract -> rejected. No ask, or the ask above the limit -> cancelled with nothing
    filled. Otherwise min(qty, size at the ask) fills at the ask: "filled" when complete, else "partial".
    """
    if book is None:
        return _rejected(f"no book for {leg.ticker}")
    if book.venue != leg.venue or book.ticker != leg.ticker:
        return _rejected(f"book is {book.venue}/{book.ticker}, order is for {leg.venue}/{leg.ticker}")
    if not leg.qty > 0.0:
        return _rejected(f"order qty {leg.qty:g} is not a positive number of contracts")
    ask, size = (book.yes_ask, book.yes_ask_size) if leg.side == "yes" else (book.no_ask, book.no_ask_size)
    if ask is None or size <= 0.0:
        return _cancelled(f"no {leg.side} ask on the book (limit {leg.limit_price:g}c)")
    if ask > leg.limit_price:
        return _cancelled(f"{leg.side} ask {ask:g}c above limit {leg.limit_price:g}c")
    filled = min(leg.qty, size)
    fee = taker_fee_cents(leg.venue, filled, ask, fees)
    if filled >= leg.qty:
        return FillOutcome("filled", filled, ask, fee, "")
    reason = f"book had {size:g} at {ask:g}c of {leg.qty:g} ordered; rest cancelled (IOC)"
    return FillOutcome("partial", filled, ask, fee, reason)
