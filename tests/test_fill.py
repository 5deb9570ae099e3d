"""The paper IOC fill model: fills come from the book, at the book's price, never more than it shows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbees_core.messages import Leg, PriceUpdate
from arbees_core.strategy.fees import FeeSchedule, taker_fee_cents
from arbees_core.strategy.fill import ioc_fill

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
