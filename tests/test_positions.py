"""Positions per arbitrage pair: exposure rises with fills and is freed by settlement and by exit (a sale)."""

from __future__ import annotations

import pytest

from arbees_core.messages import TradeResult
from arbees_core.strategy.positions import PositionBook, legs_of

TICKER = "KXNBAGAME-26NOV24MIABOS-BOS"
TOKEN = "7132045983104722901"
T0 = 1_795_600_000_000_000_000


def _result(leg: int, venue: str, ticker: str, side: str, filled: float, price: float | None, fees: float,
            action: str = "buy") -> TradeResult:
    status = "filled" if filled else "cancelled"
    return TradeResult(src="", seq=0, order_id=f"arb-1-{leg}", signal_id="arb-1", game_id="g", leg=leg, venue=venue,  # type: ignore[arg-type]
                       ticker=ticker, side=side, status=status, action=action, limit_price=price or 0.0,  # type: ignore[arg-type]
                       qty=max(filled, 1.0), filled_qty=filled, avg_price=price if filled else None, fees_cents=fees,
                       ts_fill_ns=T0)


def _pair(pair_id: str = "arb-1", qty: float = 100.0) -> list[TradeResult]:
    """A hedged pair: YES BOS on Kalshi at 40c (fee 168c) and NO BOS on Polymarket at 55c (fee 37.13c)."""
    return [_result(0, "kalshi", TICKER, "yes", qty, 40.0, 168.0), _result(1, "polymarket", TOKEN, "no", qty, 55.0, 37.13)]


def test_a_hedged_pair_opens_two_legs_whose_cost_is_the_exposure() -> None:
    book = PositionBook()
    assert book.add(legs_of("arb-1", "g", _pair(), T0)) == 2
    assert book.exposure_usd == pytest.approx((4000 + 168 + 5500 + 37.13) / 100)
    assert book.residual("arb-1") is None and book.unhedged() == []


def test_settlement_frees_each_legs_exposure_and_realises_the_edge() -> None:
    book = PositionBook()
    book.add(legs_of("arb-1", "g", _pair(), T0))
    [kalshi] = book.settle_market("kalshi", TICKER, "yes", T0 + 1)  # BOS won: YES pays 100c
    assert (kalshi.close_reason, kalshi.payout_cents) == ("settled", 10_000.0)
    assert book.exposure_usd == pytest.approx(55.3713)  # the Polymarket leg is still open
    assert book.residual("arb-1") is None  # a settled leg still hedges its open partner
    [poly] = book.settle_market("polymarket", TOKEN, "yes", T0 + 2)  # BOS won there too: the NO held pays nothing
    assert poly.payout_cents == 0.0 and book.exposure_usd == 0.0 and "arb-1" not in book
    assert book.realised_pnl_cents == pytest.approx(10_000 - (4000 + 168 + 5500 + 37.13))  # 294.87c: the edge
    assert book.settle_market("kalshi", TICKER, "yes", T0 + 3) == []  # a repeated resolution changes nothing


def test_a_voided_market_refunds_the_cost() -> None:
    book = PositionBook()
    book.add(legs_of("arb-1", "g", _pair(), T0))
    [leg] = book.settle_market("kalshi", TICKER, "void", T0 + 1)
    assert leg.payout_cents == leg.cost_cents and leg.realised_pnl_cents == 0.0


def test_an_exit_sells_the_leg_and_frees_its_exposure_with_the_loss_realised() -> None:
    results = [_result(0, "kalshi", TICKER, "yes", 100, 40.0, 168.0), _result(1, "polymarket", TOKEN, "no", 0, None, 0),
               _result(2, "kalshi", TICKER, "yes", 100, 37.0, 164.0, action="sell")]
    book = PositionBook()
    book.add(legs_of("arb-1", "g", results, T0))
    assert book.exposure_usd == 0.0 and "arb-1" not in book  # nothing left open
    assert book.realised_pnl_cents == pytest.approx(-(100 * 3 + 168 + 164))  # the legging loss, 632c


def test_a_partial_unwind_leaves_an_unhedged_residual_with_its_size_and_age() -> None:
    results = [_result(0, "kalshi", TICKER, "yes", 100, 40.0, 168.0), _result(1, "polymarket", TOKEN, "no", 20, 55.0, 7.5),
               _result(2, "kalshi", TICKER, "yes", 30, 37.0, 50.0, action="sell")]
    book = PositionBook()
    book.add(legs_of("arb-1", "g", results, T0))
    [naked] = book.unhedged()
    assert (naked.pair_id, naked.contracts, naked.leg.venue, naked.leg.qty) == ("arb-1", 50, "kalshi", 70)
    assert naked.age_s(T0 + 90 * 10**9) == 90
    assert book.exposure_usd == pytest.approx((4168 * 70 / 100 + 20 * 55 + 7.5) / 100)  # the rest of the cost, pro rata
    summary = book.summary(T0 + 90 * 10**9)
    assert (summary["unhedged_pairs"], summary["unhedged_contracts"], summary["oldest_unhedged_s"]) == (1, 50, 90)
    book.settle_market("kalshi", TICKER, "no", T0 + 100)
    book.settle_market("polymarket", TOKEN, "yes", T0 + 100)
    assert book.unhedged() == [] and book.exposure_usd == 0.0


def test_the_same_legs_added_twice_count_once() -> None:
    book = PositionBook()
    legs = legs_of("arb-1", "g", _pair(), T0)
    book.add(legs)
    assert book.add(legs) == 0
    assert book.exposure_usd == pytest.approx(97.0513)


def test_rejected_or_cancelled_signals_open_nothing() -> None:
    results = [_result(0, "kalshi", TICKER, "yes", 0, None, 0), _result(1, "polymarket", TOKEN, "no", 0, None, 0)]
    assert legs_of("arb-1", "g", results, T0) == []
