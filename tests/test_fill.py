"""The paper IOC fill model: fills come from the book, at the book's price, never more than it shows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbees_core.messages import Leg, PriceUpdate
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.venues import taker_fee_cents
from arbees_core.strategy.fill import ioc_fill, ioc_sell, joint_fill

FEES = FeeSchedule()
TICKER = "KXNBAGAME-26NOV24MIABOS-BOS"


def _make_price(venue: str = "kalshi", ticker: str = TICKER, yes_ask: float | None = None, yes_ask_size: float = 0.0,
                no_ask: float | None = None, no_ask_size: float = 0.0) -> PriceUpdate:
    return PriceUpdate(src=f"{venue}_monitor-1", seq=1, ts_origin_ns=1, venue=venue,  # type: ignore[arg-type]
                       ticker=ticker, game_id="NBA-2026-11-24-MIA-BOS", outcome="BOS", yes_ask=yes_ask,
                       yes_ask_size=yes_ask_size, no_ask=no_ask, no_ask_size=no_ask_size)


def _leg(side: str = "yes", limit: float = 50.0, qty: float = 10.0, venue: str = "kalshi",
         ticker: str = TICKER) -> Leg:
    return Leg(venue=venue, ticker=ticker, side=side, limit_price=limit, qty=qty)  # type: ignore[arg-type]


def test_ioc_fill_fills_at_the_book_ask_not_at_the_limit() -> None:
    out = ioc_fill(_leg(limit=50, qty=10), _make_price(yes_ask=45, yes_ask_size=100), FEES)
    assert (out.status, out.filled_qty, out.avg_price, out.reason) == ("filled", 10, 45, "")
    assert out.fees_cents == 18.0  # ceil(0.07 x 10 x 0.45 x 0.55 x 100)


def test_ioc_fill_partial_when_book_thinner_than_order() -> None:
    out = ioc_fill(_leg(limit=50, qty=10), _make_price(yes_ask=50, yes_ask_size=4), FEES)
    assert (out.status, out.filled_qty, out.avg_price) == ("partial", 4, 50)
    assert out.fees_cents == taker_fee_cents("kalshi", 4, 50, FEES)
    assert "book had 4" in out.reason and "IOC" in out.reason


def test_ioc_fill_cancelled_when_ask_above_limit() -> None:
    out = ioc_fill(_leg(limit=50, qty=10), _make_price(yes_ask=51, yes_ask_size=100), FEES)
    assert (out.status, out.filled_qty, out.avg_price, out.fees_cents) == ("cancelled", 0, None, 0)
    assert out.reason == "yes ask 51c above limit 50c"


def test_ioc_fill_cancelled_when_the_side_has_no_ask() -> None:
    out = ioc_fill(_leg(side="no"), _make_price(yes_ask=45, yes_ask_size=100), FEES)
    assert (out.status, out.filled_qty) == ("cancelled", 0)
    assert "no no ask" in out.reason


def test_ioc_fill_rejected_without_a_book() -> None:
    out = ioc_fill(_leg(), None, FEES)
    assert (out.status, out.filled_qty, out.reason) == ("rejected", 0, f"no book for {TICKER}")


@pytest.mark.parametrize(("venue", "ticker"), [("polymarket", TICKER), ("kalshi", "KXNBAGAME-26NOV24MIABOS-MIA")])
def test_ioc_fill_rejected_when_the_book_is_another_contract(venue: str, ticker: str) -> None:
    out = ioc_fill(_leg(), _make_price(venue=venue, ticker=ticker, yes_ask=45, yes_ask_size=100), FEES)
    assert (out.status, out.filled_qty) == ("rejected", 0)
    assert ticker in out.reason


def test_no_order_takes_the_no_side_of_the_book() -> None:
    book = _make_price(yes_ask=45, yes_ask_size=100, no_ask=57, no_ask_size=3)
    out = ioc_fill(_leg(side="no", limit=57, qty=10), book, FEES)
    assert (out.status, out.filled_qty, out.avg_price) == ("partial", 3, 57)


def test_polymarket_fill_pays_the_polymarket_fee() -> None:
    book = _make_price(venue="polymarket", ticker="7132045983104722901", no_ask=55, no_ask_size=100)
    out = ioc_fill(_leg(side="no", limit=55, qty=50, venue="polymarket", ticker="7132045983104722901"), book, FEES)
    assert out.status == "filled"
    assert out.fees_cents == pytest.approx(37.13)


prices = st.floats(min_value=0.0, max_value=100.0)


@given(side=st.sampled_from(["yes", "no"]), limit=prices, qty=st.floats(min_value=0.01, max_value=1000.0),
       ask=st.one_of(st.none(), prices), size=st.floats(min_value=0.0, max_value=1000.0))
def test_ioc_fill_never_fills_more_than_the_order_or_the_book_nor_above_the_limit(
    side: str, limit: float, qty: float, ask: float | None, size: float
) -> None:
    book = _make_price(yes_ask=ask, yes_ask_size=size) if side == "yes" else _make_price(no_ask=ask, no_ask_size=size)
    out = ioc_fill(_leg(side=side, limit=limit, qty=qty), book, FEES)
    assert 0.0 <= out.filled_qty <= min(qty, size)
    assert out.fees_cents >= 0.0
    if out.filled_qty > 0:
        assert out.avg_price is not None and out.avg_price <= limit
        assert out.status == ("filled" if out.filled_qty == qty else "partial")
    else:
        assert out.status in ("cancelled", "rejected") and out.avg_price is None and out.fees_cents == 0.0


# -- the joint fill: both legs or neither, at the same size ----------------------------------------------------

TOKEN = "7132045983104722901"


def _arb_legs(qty: float = 100.0) -> list[Leg]:
    """Buy YES on Kalshi at up to 40c and NO on Polymarket at up to 55c, `qty` contracts each."""
    return [_leg(side="yes", limit=40, qty=qty), _leg(side="no", limit=55, qty=qty, venue="polymarket", ticker=TOKEN)]


def _books(k_ask: float | None = 40, k_size: float = 500, p_ask: float | None = 55,
           p_size: float = 500) -> list[PriceUpdate | None]:
    return [_make_price(yes_ask=k_ask, yes_ask_size=k_size if k_ask is not None else 0.0),
            _make_price(venue="polymarket", ticker=TOKEN, no_ask=p_ask, no_ask_size=p_size if p_ask is not None else 0.0)]


def test_joint_fill_both_books_full_fills_both_legs_completely_at_their_asks() -> None:
    out = joint_fill(_arb_legs(), _books(k_ask=39), FEES)
    assert out.hedged_qty == 100 and out.missed_leg is None
    assert [(o.status, o.filled_qty, o.avg_price) for o in out.outcomes] == [("filled", 100, 39), ("filled", 100, 55)]
    assert [o.fees_cents for o in out.outcomes] == [taker_fee_cents("kalshi", 100, 39, FEES),
                                                    taker_fee_cents("polymarket", 100, 55, FEES)]


def test_joint_fill_one_thin_book_fills_both_legs_at_the_thin_size_with_fees_for_that_size() -> None:
    out = joint_fill(_arb_legs(), _books(p_size=40), FEES)
    assert out.hedged_qty == 40 and out.missed_leg is None
    (k, p) = out.outcomes
    assert (k.status, k.filled_qty, p.status, p.filled_qty) == ("partial", 40, "partial", 40)
    assert k.fees_cents == taker_fee_cents("kalshi", 40, 40, FEES)  # fees of what filled, not of the order
    assert "hedged to 40 of 100" in k.reason and f"leg 1 polymarket {TOKEN}" in k.reason
    assert "book had 40" in p.reason


def test_joint_fill_one_book_gone_above_the_limit_cancels_both_legs_with_the_reason() -> None:
    out = joint_fill(_arb_legs(), _books(k_ask=51), FEES)  # the Kalshi book moved: its ask is above the limit
    assert out.hedged_qty == 0 and out.missed_leg == 0
    assert [(o.status, o.filled_qty, o.fees_cents) for o in out.outcomes] == [("cancelled", 0, 0), ("cancelled", 0, 0)]
    assert out.outcomes[0].reason == "yes ask 51c above limit 40c"
    assert out.outcomes[1].reason.startswith("not sent (joint fill): leg 0 kalshi") and "51c" in out.outcomes[1].reason


def test_joint_fill_one_book_missing_cancels_the_other_and_neither_fills() -> None:
    books = _books()
    out = joint_fill(_arb_legs(), [books[0], None], FEES)
    assert [o.status for o in out.outcomes] == ["cancelled", "rejected"] and out.missed_leg == 1
    assert all(o.filled_qty == 0 for o in out.outcomes)


def test_joint_fill_partial_sizes_on_both_sides_hedge_at_the_smaller() -> None:
    out = joint_fill(_arb_legs(), _books(k_size=70, p_size=30.5), FEES)
    assert out.hedged_qty == 30.5 and [o.filled_qty for o in out.outcomes] == [30.5, 30.5]
    assert all(o.status == "partial" for o in out.outcomes)


def test_joint_fill_with_neither_side_fillable_is_no_leg_miss() -> None:
    out = joint_fill(_arb_legs(), _books(k_ask=None, p_ask=60), FEES)
    assert out.hedged_qty == 0 and out.missed_leg is None  # nothing could fill: no leg was at risk


@given(k_size=st.floats(min_value=0.0, max_value=300.0), p_size=st.floats(min_value=0.0, max_value=300.0),
       k_ask=st.one_of(st.none(), prices), p_ask=st.one_of(st.none(), prices))
def test_joint_fill_never_fills_unequal_quantities(k_size: float, p_size: float, k_ask: float | None,
                                                   p_ask: float | None) -> None:
    out = joint_fill(_arb_legs(), _books(k_ask, k_size, p_ask, p_size), FEES)
    assert out.outcomes[0].filled_qty == out.outcomes[1].filled_qty == out.hedged_qty


def test_ioc_sell_takes_the_bid_side_up_to_its_size() -> None:
    book = PriceUpdate(src="k", seq=1, ts_origin_ns=1, venue="kalshi", ticker=TICKER, game_id="g", outcome="BOS",
                       yes_bid=36.0, yes_bid_size=30.0, yes_ask=38.0, yes_ask_size=10.0)
    out = ioc_sell(_leg(side="yes"), 50, book, FEES)
    assert (out.status, out.filled_qty, out.avg_price) == ("partial", 30, 36)
    assert out.fees_cents == taker_fee_cents("kalshi", 30, 36, FEES)
    assert ioc_sell(_leg(side="no"), 5, book, FEES).status == "cancelled"  # no NO bid to sell into
