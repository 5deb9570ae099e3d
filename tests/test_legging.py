"""The sequential leg policy: the less likely leg first, the second sized to it, and the unwind when it misses."""

from __future__ import annotations

import pytest

from arbees_core.messages import Leg, PriceUpdate
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.venues import taker_fee_cents
from arbees_core.strategy.legging import first_leg, legging_loss_cents, sequential_fill

FEES = FeeSchedule()
TICKER = "KXNBAGAME-26NOV24MIABOS-BOS"
TOKEN = "7132045983104722901"
LEGS = [Leg(venue="kalshi", ticker=TICKER, side="yes", limit_price=40.0, qty=100.0),
        Leg(venue="polymarket", ticker=TOKEN, side="no", limit_price=55.0, qty=100.0)]


def _kalshi(ask_size: float = 500.0, bid: float | None = 37.0, bid_size: float = 500.0) -> PriceUpdate:
    return PriceUpdate(src="k", seq=1, ts_origin_ns=1, venue="kalshi", ticker=TICKER, game_id="g", outcome="BOS",
                       yes_ask=40.0, yes_ask_size=ask_size, yes_bid=bid, yes_bid_size=bid_size if bid else 0.0)


def _poly(ask: float = 55.0, size: float = 500.0) -> PriceUpdate:
    return PriceUpdate(src="p", seq=1, ts_origin_ns=1, venue="polymarket", ticker=TOKEN, game_id="g", outcome="BOS",
                       no_ask=ask, no_ask_size=size)


class Venues:
    """The books each order meets; `move` changes them between the two orders, as a moving market does."""

    def __init__(self, kalshi: PriceUpdate, poly: PriceUpdate, move: dict[str, PriceUpdate] | None = None) -> None:
        self.books = {"kalshi": kalshi, "polymarket": poly}
        self.pending = move or {}
        self.moves = 0

    def book_of(self, leg: Leg) -> PriceUpdate | None:
        return self.books.get(leg.venue)

    def between(self) -> None:
        self.books.update(self.pending)
        self.moves += 1


def test_the_leg_less_likely_to_fill_goes_first() -> None:
    assert first_leg(LEGS, [_kalshi(ask_size=40), _poly()], FEES) == 0
    assert first_leg(LEGS, [_kalshi(), _poly(size=10)], FEES) == 1
    assert first_leg(LEGS, [_kalshi(), _poly(ask=56)], FEES) == 1  # above its limit: it would not fill at all


def test_second_leg_is_sized_to_what_the_first_filled_so_the_pair_is_hedged() -> None:
    venues = Venues(_kalshi(ask_size=40), _poly())
    out = sequential_fill(LEGS, venues.book_of, FEES, venues.between)
    assert out.first == 0 and out.unwind is None and out.missed_leg is None and out.legging_loss_cents == 0
    assert [(o.status, o.filled_qty) for o in out.outcomes] == [("partial", 40), ("partial", 40)]
    assert "sized to leg 0's fill: 40 of 100" in out.outcomes[1].reason


def test_a_second_leg_miss_is_unwound_at_once_into_the_bid_and_the_loss_recorded() -> None:
    venues = Venues(_kalshi(), _poly(), move={"polymarket": _poly(ask=60)})  # the NO ask moves past its limit
    out = sequential_fill(LEGS, venues.book_of, FEES, venues.between)
    assert venues.moves == 1 and out.first == 0 and out.missed_leg == 1
    assert [(o.status, o.filled_qty) for o in out.outcomes] == [("filled", 100), ("cancelled", 0)]
    assert out.unwind is not None and (out.unwind.status, out.unwind.filled_qty, out.unwind.avg_price) == (
        "filled", 100, 37)
    bought_fee, sold_fee = taker_fee_cents("kalshi", 100, 40, FEES), taker_fee_cents("kalshi", 100, 37, FEES)
    assert (bought_fee, sold_fee) == (168.0, 164.0)
    assert out.legging_loss_cents == pytest.approx(100 * (40 - 37) + bought_fee + sold_fee)  # 632c = $6.32
    assert out.residual_qty == 0


def test_an_unwind_into_a_thin_bid_leaves_the_rest_as_an_unhedged_residual() -> None:
    venues = Venues(_kalshi(bid_size=30), _poly(), move={"polymarket": _poly(size=20)})
    out = sequential_fill(LEGS, venues.book_of, FEES, venues.between)
    assert [o.filled_qty for o in out.outcomes] == [100, 20]  # the second leg hedged 20 of them
    assert out.unwind is not None and out.unwind.filled_qty == 30 and out.residual_qty == 50
    assert out.missed_leg == 1


def test_a_first_leg_that_fills_nothing_sends_no_second_order() -> None:
    venues = Venues(_kalshi(), _poly(ask=56))
    out = sequential_fill(LEGS, venues.book_of, FEES, venues.between)
    assert out.first == 1 and venues.moves == 0 and out.unwind is None
    assert [o.filled_qty for o in out.outcomes] == [0, 0] and out.outcomes[0].status == "cancelled"
    assert out.outcomes[0].reason.startswith("not sent (sequential): leg 1 filled nothing")
    assert out.missed_leg == 1  # Kalshi would have filled: the Polymarket leg missed, and nothing was at risk


def test_legging_loss_is_the_sold_share_of_the_purchase_less_the_sale() -> None:
    from arbees_core.strategy.fill import FillOutcome

    bought = FillOutcome("filled", 100, 40.0, 168.0, "")
    sold = FillOutcome("partial", 50, 42.0, 10.0, "")
    assert legging_loss_cents(bought, sold) == pytest.approx(50 * (40 + 1.68 - 42) + 10)  # -6c: a small gain
    assert legging_loss_cents(bought, FillOutcome("cancelled", 0, None, 0, "")) == 0
