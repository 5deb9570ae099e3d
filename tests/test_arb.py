"""Cross-venue arbitrage detection: both directions, both fees, sizes from both books, and the safety rules."""

from __future__ import annotations

import dataclasses
import random

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from arbees_core.config import ConfigError, Env
from arbees_core.messages import PriceUpdate, TradingSignal, check, decode_as, encode
from arbees_core.strategy.arb import (
    ArbConfig,
    ArbOpportunity,
    GameCooldown,
    best_arb,
    find_arbs,
    signal_id_for,
)
from arbees_core.strategy.fees import FeeSchedule, kalshi_taker_fee_cents, polymarket_taker_fee_cents

NOW = 1_800_000_000_000_000_000
MS = 1_000_000
GAME = "NBA-2026-11-24-MIA-BOS"
K_TICKER = "KXNBAGAME-26NOV24MIABOS-BOS"
P_TOKEN = "7132045983104722901"
CFG = ArbConfig()


def _make_price(venue: str = "kalshi", ticker: str = K_TICKER, yes_ask: float | None = None,
                yes_ask_size: float = 0.0, no_ask: float | None = None, no_ask_size: float = 0.0,
                ts_ns: int = NOW, seq: int = 1, src: str = "") -> PriceUpdate:
    """A top-of-book update; a side given a price and no size gets 100 contracts."""
    if yes_ask is not None and not yes_ask_size:
        yes_ask_size = 100.0
    if no_ask is not None and not no_ask_size:
        no_ask_size = 100.0
    return PriceUpdate(src=src or f"{venue}_monitor-1", seq=seq, ts_origin_ns=ts_ns, venue=venue, ticker=ticker,
                       game_id=GAME, outcome="BOS", yes_ask=yes_ask, yes_ask_size=yes_ask_size, no_ask=no_ask,
                       no_ask_size=no_ask_size)


def _kalshi(**kw: object) -> PriceUpdate:
    return _make_price("kalshi", K_TICKER, **kw)  # type: ignore[arg-type]


def _poly(**kw: object) -> PriceUpdate:
    return _make_price("polymarket", P_TOKEN, **kw)  # type: ignore[arg-type]


def _find(kalshi: PriceUpdate, poly: PriceUpdate, cfg: ArbConfig = CFG, now: int = NOW,
          k_valid: int = NOW, p_valid: int = NOW) -> list[ArbOpportunity]:
    return find_arbs(GAME, "BOS", kalshi, poly, cfg, now, k_valid, p_valid)


def test_finds_arb_buying_kalshi_yes_and_polymarket_no() -> None:
    opps = _find(_kalshi(yes_ask=40, yes_ask_size=50), _poly(no_ask=55, no_ask_size=80))
    assert len(opps) == 1
    opp = opps[0]
    k_leg, p_leg = opp.legs
    assert (k_leg.venue, k_leg.ticker, k_leg.side, k_leg.limit_price, k_leg.qty) == ("kalshi", K_TICKER, "yes", 40, 50)
    assert (p_leg.venue, p_leg.ticker, p_leg.side, p_leg.limit_price) == ("polymarket", P_TOKEN, "no", 55)
    assert p_leg.qty == 50
    assert k_leg.fee_cents == 84.0  # ceil(0.07 x 50 x 0.40 x 0.60 x 100)
    assert p_leg.fee_cents == pytest.approx(37.13)  # 37.125c rounded up to 0.01c
    assert opp.qty == 50
    assert opp.gross_edge_cents == 5.0
    assert opp.cost_cents == pytest.approx(95 + (84 + 37.13) / 50)
    assert opp.edge_cents == pytest.approx(100 - opp.cost_cents)
    assert opp.edge_pct == pytest.approx(opp.edge_cents / opp.cost_cents * 100)
    assert (opp.game_id, opp.outcome) == (GAME, "BOS")


def test_finds_arb_buying_kalshi_no_and_polymarket_yes() -> None:
    opps = _find(_kalshi(yes_ask=70, no_ask=35), _poly(yes_ask=58, no_ask=45))
    assert [(o.legs[0].side, o.legs[1].side) for o in opps] == [("no", "yes")]
    assert opps[0].gross_edge_cents == 7.0


def test_no_arb_when_prices_sum_to_100_or_more() -> None:
    assert _find(_kalshi(yes_ask=45, no_ask=56), _poly(yes_ask=44, no_ask=55)) == []


def test_no_arb_when_fees_eat_the_gross_edge() -> None:
    # 49 + 50 = 99c gross, but 1.75c (Kalshi) + 0.75c (Polymarket) of fees per contract make it a loss.
    assert _find(_kalshi(yes_ask=49), _poly(no_ask=50)) == []


def test_no_arb_when_edge_below_min_edge_pct() -> None:
    kalshi, poly = _kalshi(yes_ask=40), _poly(no_ask=55)
    [opp] = _find(kalshi, poly)
    assert _find(kalshi, poly, dataclasses.replace(CFG, min_edge_pct=opp.edge_pct + 0.01)) == []
    assert _find(kalshi, poly, dataclasses.replace(CFG, min_edge_pct=opp.edge_pct)) == [opp]


def test_min_edge_pct_is_a_percent_of_cost_not_cents() -> None:
    # A 2c net edge on a ~97c cost is ~2.1 %: it passes MIN_EDGE_PCT=2 and fails MIN_EDGE_PCT=3, whatever it is
    # in cents (the original compared cents with a percent threshold, so a 1-14c arb never traded).
    kalshi, poly = _kalshi(yes_ask=40, yes_ask_size=1000), _poly(no_ask=55.33, no_ask_size=1000)
    [opp] = _find(kalshi, poly)
    assert 2.0 <= opp.edge_pct < 3.0
    assert _find(kalshi, poly, dataclasses.replace(CFG, min_edge_pct=2.0))
    assert not _find(kalshi, poly, dataclasses.replace(CFG, min_edge_pct=3.0))


def test_stale_price_is_not_traded_on() -> None:
    kalshi, poly = _kalshi(yes_ask=40), _poly(no_ask=55)
    limit = int(CFG.max_price_age_ms * MS)
    assert _find(kalshi, poly, now=NOW + limit) != []  # exactly max_price_age_ms old: still valid
    assert _find(kalshi, poly, now=NOW + limit + 1) == []
    assert _find(kalshi, poly, now=NOW + limit + 1, k_valid=NOW + limit) == []  # the Polymarket price is stale
    assert _find(kalshi, poly, now=NOW + limit + 1, p_valid=NOW + limit) == []  # the Kalshi price is stale
    assert _find(kalshi, poly, k_valid=0) == []


def test_heartbeat_keeps_a_quiet_book_tradeable() -> None:
    # The book has not changed for a minute, but the monitor's heartbeat says the feed was intact 100 ms ago.
    kalshi, poly = _kalshi(yes_ask=40, ts_ns=NOW - 60_000 * MS), _poly(no_ask=55, ts_ns=NOW - 60_000 * MS)
    assert _find(kalshi, poly, k_valid=kalshi.ts_origin_ns, p_valid=poly.ts_origin_ns) == []
    assert _find(kalshi, poly, k_valid=NOW - 100 * MS, p_valid=NOW - 100 * MS) != []


def test_qty_is_capped_by_the_thinner_book_and_max_order_contracts() -> None:
    [opp] = _find(_kalshi(yes_ask=40, yes_ask_size=500), _poly(no_ask=55, no_ask_size=30.7))
    assert opp.qty == 30 and all(leg.qty == 30 for leg in opp.legs)
    [opp] = _find(_kalshi(yes_ask=40, yes_ask_size=500), _poly(no_ask=55, no_ask_size=500),
                  dataclasses.replace(CFG, max_order_contracts=25))
    assert opp.qty == 25


def test_no_arb_when_less_than_one_contract_is_available() -> None:
    assert _find(_kalshi(yes_ask=40, yes_ask_size=0.5), _poly(no_ask=55, no_ask_size=100)) == []


def test_no_leg_is_sized_from_the_no_side_of_the_book() -> None:
    # The original sized the NO leg from the YES side's depth.
    kalshi = _kalshi(yes_ask=70, yes_ask_size=1000, no_ask=35, no_ask_size=7)
    [opp] = _find(kalshi, _poly(yes_ask=58, yes_ask_size=1000))
    assert opp.qty == 7


def test_missing_ask_skips_that_direction() -> None:
    assert _find(_kalshi(yes_ask=None, no_ask=35), _poly(yes_ask=None, no_ask=55)) == []
    assert len(_find(_kalshi(yes_ask=40, no_ask=None), _poly(yes_ask=None, no_ask=55))) == 1


def test_find_arbs_refuses_prices_from_the_wrong_venues() -> None:
    with pytest.raises(ValueError, match="Kalshi and a Polymarket"):
        find_arbs(GAME, "BOS", _poly(no_ask=55), _kalshi(yes_ask=40), CFG, NOW, NOW, NOW)


def test_fees_in_the_legs_are_the_shared_fee_model() -> None:
    fees = FeeSchedule(kalshi_taker_rate=0.05, polymarket_taker_rate=0.02)
    [opp] = _find(_kalshi(yes_ask=40, yes_ask_size=33), _poly(no_ask=55), dataclasses.replace(CFG, fees=fees))
    assert opp.legs[0].fee_cents == kalshi_taker_fee_cents(33, 40, 0.05)
    assert opp.legs[1].fee_cents == polymarket_taker_fee_cents(33, 55, 0.02)


def test_best_arb_picks_the_largest_total_edge() -> None:
    [small] = _find(_kalshi(yes_ask=40, yes_ask_size=10), _poly(no_ask=50, no_ask_size=10))
    [large] = _find(_kalshi(yes_ask=40, yes_ask_size=100), _poly(no_ask=55, no_ask_size=100))
    assert small.edge_cents > large.edge_cents and small.edge_cents * small.qty < large.edge_cents * large.qty
    assert best_arb([small, large]) is large
    assert best_arb([]) is None


def test_best_arb_breaks_ties_the_same_way_whatever_the_order() -> None:
    a = _find(_kalshi(yes_ask=40), _poly(no_ask=55))[0]
    b = dataclasses.replace(a, legs=(a.legs[0], msgspec.structs.replace(a.legs[1], ticker="0999")))
    assert best_arb([a, b]) is best_arb([b, a]) is b


def test_signal_id_is_deterministic_and_names_its_inputs() -> None:
    kalshi, poly = _kalshi(yes_ask=40, seq=7), _poly(no_ask=55, seq=9)
    [first], [again] = _find(kalshi, poly), _find(kalshi, poly)
    sid = signal_id_for(first)
    assert sid == signal_id_for(again)
    assert sid.startswith("arb-") and len(sid) == 20 and int(sid[4:], 16) >= 0
    [newer] = _find(kalshi, msgspec.structs.replace(poly, seq=10))
    [bigger] = _find(_kalshi(yes_ask=40, seq=7, yes_ask_size=50), poly)
    assert len({sid, signal_id_for(newer), signal_id_for(bigger)}) == 3


def test_opportunity_makes_a_valid_trading_signal() -> None:
    [opp] = _find(_kalshi(yes_ask=40), _poly(no_ask=55))
    signal = TradingSignal(src="game_shard-1", seq=1, ts_origin_ns=NOW, ts_detect_ns=NOW, signal_id=signal_id_for(opp),
                           game_id=opp.game_id, legs=list(opp.legs), qty=opp.qty,
                           gross_edge_cents=opp.gross_edge_cents, edge_cents=opp.edge_cents, edge_pct=opp.edge_pct,
                           cost_cents=opp.cost_cents)
    assert check(signal) is None
    assert decode_as(encode(signal), TradingSignal) == signal


def test_cooldown_blocks_second_signal_for_same_game() -> None:
    cooldown = GameCooldown(10_000)
    assert cooldown.ready(GAME, NOW)
    cooldown.record(GAME, NOW)
    assert not cooldown.ready(GAME, NOW)
    assert not cooldown.ready(GAME, NOW + 10_000 * MS - 1)


def test_cooldown_lets_other_games_through_and_expires() -> None:
    cooldown = GameCooldown(10_000)
    cooldown.record(GAME, NOW)
    assert cooldown.ready("NBA-2026-11-24-LAL-GSW", NOW)
    assert cooldown.ready(GAME, NOW + 10_000 * MS)
    assert GameCooldown(0).ready(GAME, NOW)


def test_arb_config_reads_env() -> None:
    env = Env({"MIN_EDGE_PCT": "1.5", "MAX_PRICE_AGE_MS": "500", "GAME_COOLDOWN_MS": "3000",
               "MAX_ORDER_CONTRACTS": "10", "KALSHI_TAKER_FEE_RATE": "0.05"})
    cfg = ArbConfig.from_env(env)
    assert (cfg.min_edge_pct, cfg.max_price_age_ms, cfg.cooldown_ms, cfg.max_order_contracts) == (1.5, 500, 3000, 10)
    assert cfg.fees.kalshi_taker_rate == 0.05
    assert ArbConfig.from_env(Env({})) == ArbConfig()


@pytest.mark.parametrize(("name", "value"), [("MIN_EDGE_PCT", "15%"), ("MAX_PRICE_AGE_MS", "-1"),
                                             ("GAME_COOLDOWN_MS", "soon"), ("MAX_ORDER_CONTRACTS", "0")])
def test_arb_config_rejects_bad_values_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        ArbConfig.from_env(Env({name: value}))


asks = st.one_of(st.none(), st.floats(min_value=0.5, max_value=99.5).map(lambda p: round(p, 1)))
sizes = st.floats(min_value=0.0, max_value=500.0)


@st.composite
def books(draw: st.DrawFn) -> tuple[PriceUpdate, PriceUpdate]:
    kalshi = _kalshi(yes_ask=draw(asks), yes_ask_size=draw(sizes), no_ask=draw(asks), no_ask_size=draw(sizes))
    poly = _poly(yes_ask=draw(asks), yes_ask_size=draw(sizes), no_ask=draw(asks), no_ask_size=draw(sizes))
    return kalshi, poly


@given(pair=books(), min_edge=st.floats(min_value=0.0, max_value=5.0), cap=st.floats(min_value=1.0, max_value=200.0))
def test_every_opportunity_found_is_profitable_after_fees(pair: tuple[PriceUpdate, PriceUpdate], min_edge: float,
                                                          cap: float) -> None:
    kalshi, poly = pair
    cfg = dataclasses.replace(CFG, min_edge_pct=min_edge, max_order_contracts=cap)
    for opp in _find(kalshi, poly, cfg):
        assert opp.edge_cents > 0
        assert opp.edge_pct >= min_edge
        assert abs(opp.cost_cents + opp.edge_cents - 100.0) < 1e-9
        assert 1 <= opp.qty <= cap and opp.qty == int(opp.qty)
        k_leg, p_leg = opp.legs
        assert opp.qty <= (kalshi.yes_ask_size if k_leg.side == "yes" else kalshi.no_ask_size)
        assert opp.qty <= (poly.yes_ask_size if p_leg.side == "yes" else poly.no_ask_size)
        assert k_leg.side != p_leg.side
        assert opp.cost_cents == pytest.approx(k_leg.limit_price + p_leg.limit_price
                                               + (k_leg.fee_cents + p_leg.fee_cents) / opp.qty)


ages_ms = st.floats(min_value=0, max_value=10_000)


@given(pair=books(), k_age_ms=ages_ms, p_age_ms=ages_ms)
def test_find_arbs_never_returns_an_opportunity_on_a_stale_price(pair: tuple[PriceUpdate, PriceUpdate],
                                                                 k_age_ms: float, p_age_ms: float) -> None:
    assume(max(k_age_ms, p_age_ms) > CFG.max_price_age_ms + 1e-3)
    kalshi, poly = pair
    found = _find(kalshi, poly, k_valid=NOW - int(k_age_ms * MS), p_valid=NOW - int(p_age_ms * MS))
    assert found == []


@given(pair=books())
def test_best_arb_does_not_depend_on_input_order(pair: tuple[PriceUpdate, PriceUpdate]) -> None:
    opps = _find(*pair)
    shuffled = list(opps)
    random.Random(0).shuffle(shuffled)
    assert best_arb(opps) == best_arb(list(reversed(opps))) == best_arb(shuffled)
