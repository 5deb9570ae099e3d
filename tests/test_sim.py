"""The simulated venues: what the validation relies on them for.

Separate processes agree on prices (same seed, same wall clock), normal traffic is never an arbitrage after fees,
an injected mispricing is an arbitrage on exactly one game for exactly its window, every listing matches across
venues, and everything the simulator emits parses with the production venue parsers without an error.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from arbees_core.config import Env
from arbees_core.messages import PriceUpdate
from arbees_core.strategy.arb import ArbConfig, find_arbs
from arbees_core.strategy.matching import match_markets
from arbees_core.venues.book import TopOfBook
from arbees_core.venues.kalshi.feed import KalshiFeed
from arbees_core.venues.polymarket.feed import PolymarketFeed
from arbees_core.venues.sim import SimConfig, SimVenue
from arbees_core.venues.sim_schedule import GameSchedule, poly_token_id

T0 = 1_795_600_000.0  # a fixed wall clock, so the test does not depend on when it runs


def _update(venue: str, ticker: str, top: TopOfBook) -> PriceUpdate:
    return PriceUpdate(src="t", seq=1, ts_origin_ns=1, venue=venue, ticker=ticker, game_id="g", outcome="X",  # type: ignore[arg-type]
                       yes_bid=top.yes_bid, yes_bid_size=top.yes_bid_size, yes_ask=top.yes_ask,
                       yes_ask_size=top.yes_ask_size, no_bid=top.no_bid, no_bid_size=top.no_bid_size,
                       no_ask=top.no_ask, no_ask_size=top.no_ask_size)


class _Pair:
    """Both simulated venues fed into the production parsers, stepped on a controlled clock."""

    def __init__(self, cfg: SimConfig) -> None:
        self.k, self.p = SimVenue("kalshi", cfg), SimVenue("polymarket", cfg)
        self.kf, self.pf = KalshiFeed(), PolymarketFeed()
        self.games, self.unmatched = match_markets(self.k.listings(), self.p.listings())
        for raw in self.k.snapshots():
            self.kf.handle(raw, 1)
        for raw in self.p.snapshots():
            self.pf.handle(raw, 1)

    def step(self, wall: float, elapsed: float, skew: float = 0.0) -> None:
        for _ in range(len(self.k.games)):
            for raw in self.k.step(wall, elapsed):
                self.kf.handle(raw, 1)
            for raw in self.p.step(wall + skew, elapsed + skew):
                self.pf.handle(raw, 1)

    def arbs(self) -> dict[str, float]:
        """game_id -> best edge % of any arbitrage (fees included, no minimum edge)."""
        cfg = ArbConfig(min_edge_pct=0.0)
        found: dict[str, float] = {}
        for g in self.games:
            for pair in g.pairs:
                k = _update("kalshi", pair.kalshi_ticker, self.kf.books[pair.kalshi_ticker].top())
                p = _update("polymarket", pair.poly_token, self.pf.books[pair.poly_token].top())
                for opp in find_arbs(g.game_id, pair.outcome, k, p, cfg, 1, 1, 1):
                    found[g.game_id] = max(found.get(g.game_id, 0.0), opp.edge_pct)
        return found


def test_same_seed_same_markets_in_separate_instances() -> None:
    cfg = SimConfig(seed=3, games=5, start_date="2026-11-25")
    a, b = SimVenue("polymarket", cfg), SimVenue("polymarket", cfg)
    assert a.listings() == b.listings()
    assert [m.ticker for m in a.markets] != [m.ticker for m in SimVenue("polymarket", SimConfig(seed=4, games=5)).markets]
    assert a.games[0].fair_home(T0) == b.games[0].fair_home(T0)


def test_every_listing_matches_across_venues() -> None:
    for seed in range(6):
        pair = _Pair(SimConfig(seed=seed, games=12, start_date="2026-11-25"))
        assert len(pair.games) == 12 and pair.unmatched == []
        assert all(len(token.poly_token) == 77 for g in pair.games for token in g.pairs)


def test_normal_traffic_is_never_an_arbitrage() -> None:
    pair = _Pair(SimConfig(seed=11, games=4, mispricing_every_s=0, start_date="2026-11-25"))
    for i in range(600):  # ten minutes of fair-value path, the venues 50 ms apart
        pair.step(T0 + i, float(i), skew=0.05)
        assert pair.arbs() == {}, i
    for g in pair.games:
        for p in g.pairs:
            k, q = pair.kf.books[p.kalshi_ticker].top(), pair.pf.books[p.poly_token].top()
            assert not k.crossed and not q.crossed
    assert pair.kf.errors == {} and pair.pf.errors == {} and pair.kf.gaps == 0


def test_injected_mispricing_is_one_arbitrage_for_its_window_only() -> None:
    cfg = SimConfig(seed=11, games=3, mispricing_every_s=0, mispricing_at_s=(4.0,), mispricing_cents=12,
                    mispricing_duration_ms=800, start_date="2026-11-25")
    pair = _Pair(cfg)
    pair.step(T0 + 3.9, 3.9)
    assert pair.arbs() == {}
    pair.step(T0 + 4.1, 4.1)
    found = pair.arbs()
    g0 = pair.k.games[0]  # the first injection hits the simulator's first game, and only it
    assert list(found) == [f"{g0.league}-{g0.day}-{g0.away.code}-{g0.home.code}"]
    assert 4.0 < max(found.values()) < 12.0  # 12c gross minus the spread and both venues' fees
    pair.step(T0 + 4.9, 4.9)
    assert pair.arbs() == {}
    assert pair.k.injections == 1 and pair.p.injections == 0


def test_periodic_injections_rotate_through_games() -> None:
    venue = SimVenue("kalshi", SimConfig(seed=1, games=3, mispricing_every_s=10, mispricing_duration_ms=500))
    assert [venue.injected_game(t) for t in (5.0, 10.1, 10.6, 20.2, 30.3, 40.4)] == [None, 0, None, 1, 2, 0]
    assert SimVenue("polymarket", venue.cfg).injected_game(10.1) is None  # only the mispriced venue is wrong


def test_stream_emits_snapshots_then_updates_at_the_configured_rate() -> None:
    venue = SimVenue("polymarket", SimConfig(seed=2, games=2, rate_per_s=200))

    async def collect() -> list[bytes]:
        stop, out = asyncio.Event(), []
        async for raw in venue.stream(stop):
            out.append(raw)
            if len(out) >= 40:
                stop.set()
        return out

    frames = asyncio.run(collect())
    first = orjson.loads(frames[0])
    assert isinstance(first, list) and {e["event_type"] for e in first} == {"book"} and len(first) == 4
    assert all(orjson.loads(f)["event_type"] == "price_change" for f in frames[1:])
    feed = PolymarketFeed()
    assert sum(len(feed.handle(f, 1)) for f in frames) >= 4 and feed.errors == {}


def test_config_from_env_reads_the_plan_style_names() -> None:
    cfg = SimConfig.from_env(Env({"SIM_SEED": "11", "SIM_GAMES": "3", "SIM_RATE": "200", "SIM_MISPRICE_AT_S": "4,9.5",
                                  "SIM_MISPRICE_VENUE": "poly", "SIM_DATE": "2026-12-01"}))
    assert (cfg.seed, cfg.games, cfg.rate_per_s, cfg.mispricing_at_s, cfg.mispricing_venue, cfg.start_date) == \
        (11, 3, 200.0, (4.0, 9.5), "polymarket", "2026-12-01")


def test_an_injected_sequence_gap_is_detected_and_healed_by_fresh_snapshots() -> None:
    feed = KalshiFeed()
    venue = SimVenue("kalshi", SimConfig(seed=2, games=2, rate_per_s=200, fault_gap_at_s=(0.05,)),
                     resync=feed.take_resync)

    async def run() -> int:
        stop, n = asyncio.Event(), 0
        async for raw in venue.stream(stop):
            feed.handle(raw, 1)
            n += 1
            if venue.resubscribes and n > 60:
                stop.set()
        return n

    asyncio.run(run())
    assert venue.gaps_injected == 1 and feed.gaps == 1  # the lost delta is seen as a gap, once
    assert venue.resubscribes == 1  # the feed asked, the venue sent every book again
    assert all(book.ready for book in feed.books.values()) and feed.errors == {}


def test_gap_fault_setting_is_read_from_env() -> None:
    assert SimConfig.from_env(Env({"SIM_FAULT_GAP_AT_S": "5,2"})).fault_gap_at_s == (2.0, 5.0)
    assert SimVenue("polymarket", SimConfig(fault_gap_at_s=(1.0,)))._gaps_due == []  # Kalshi only has seq


def test_a_consumer_slower_than_the_rate_still_gives_the_loop_turns_and_can_stop_the_stream() -> None:
    """Every step stays due when the monitor parses slower than the simulator's rate; the stream must still let
    the loop run (heartbeats, the stop request) instead of spinning until the monitor is killed."""
    venue = SimVenue("kalshi", SimConfig(seed=2, games=2, rate_per_s=100_000))
    cap = 5000

    async def run() -> tuple[int, bool]:
        stop, steps = asyncio.Event(), 0
        stopper = asyncio.get_running_loop().call_later(0.05, stop.set)
        async for _ in venue.stream_batches(stop):
            steps += 1
            time.sleep(0.0005)  # slower than 100 000 steps/s
            if steps >= cap:  # without loop turns the timer never fires: end the test instead of hanging
                break
        stopper.cancel()
        return steps, stop.is_set()

    steps, stopped = asyncio.run(run())
    assert stopped and steps < cap


# -- games end: results, new games, listings ahead ---------------------------------------------------------------


def _play(venue: str, cfg: SimConfig, start: float, seconds: float) -> tuple[list, object]:
    """Every frame of `seconds` of one simulated venue, through the production parser: (resolutions, feed)."""
    feed = KalshiFeed() if venue == "kalshi" else PolymarketFeed()
    resolutions = []
    for _, batch in SimVenue(venue, cfg).prebuilt(seconds, start):
        feed.handle_many(batch, 1)
        resolutions += feed.take_resolutions()
    return resolutions, feed


def test_games_end_with_one_result_that_both_venues_agree_on_and_new_games_take_their_place() -> None:
    cfg = SimConfig(seed=5, games=3, rate_per_s=50, mispricing_every_s=0, start_date="2026-11-25", game_length_s=30)
    start = T0 + 1.0
    k_res, k_feed = _play("kalshi", cfg, start, 61.0)
    p_res, p_feed = _play("polymarket", cfg, start, 61.0)
    ended = {g.event_ticker: g for g in GameSchedule(cfg).listed(start, 0.0)}  # the games playing at the start
    schedule = GameSchedule(cfg)
    assert len(k_res) == len(p_res) == 2 * 6  # 3 slots x 2 games each ended within 61 s (one every 10 s), 2 markets
    assert len({r.ticker for r in k_res if r.result == "yes"}) == 6  # one winner per game
    assert len({r.ticker for r in p_res if r.result == "yes"}) == 6 and all(r.result in ("yes", "no") for r in k_res)
    for g in ended.values():  # the same team won on both venues
        team = g.home if schedule.home_wins(g) else g.away
        assert g.kalshi_ticker(team) in {r.ticker for r in k_res if r.result == "yes"}
        assert poly_token_id(cfg.seed, g, team) in {r.ticker for r in p_res if r.result == "yes"}
    now = {g.event_ticker for g in schedule.current(start + 61.0)}
    assert {t.rsplit("-", 1)[0] for t in k_feed.books} == now  # only the games being played have books
    assert len(p_feed.books) == 6 and k_feed.errors == {} and p_feed.errors == {}  # type: ignore[attr-defined]


def test_the_schedule_staggers_the_slots_and_is_the_same_in_every_process() -> None:
    cfg = SimConfig(seed=5, games=4, start_date="2026-11-25", game_length_s=600)
    a, b = GameSchedule(cfg), GameSchedule(cfg)
    ends = sorted(a.ends_at(g) for g in a.current(T0))
    assert [round(later - earlier) for earlier, later in zip(ends, ends[1:])] == [150, 150, 150]
    assert [g.event_ticker for g in a.current(T0)] == [g.event_ticker for g in b.current(T0)]
    before, after = a.current(ends[0] - 1), a.current(ends[0] + 1)
    assert [x.generation - y.generation for x, y in zip(after, before)].count(1) == 1  # one game ended, one began
    assert GameSchedule(SimConfig(seed=5, games=4, start_date="2026-11-25")).ends_at(a.current(T0)[0]) == float("inf")


def test_listings_name_the_next_games_ahead_and_every_one_matches_across_venues() -> None:
    cfg = SimConfig(seed=7, games=4, start_date="2026-11-25", game_length_s=60)
    k, p = SimVenue("kalshi", cfg), SimVenue("polymarket", cfg)
    games, unmatched = match_markets(k.listings(150, T0), p.listings(150, T0))
    assert unmatched == [] and len(games) == len(GameSchedule(cfg).listed(T0, 150)) >= 4 * 3
    assert {g.game_id for g in games} >= {f"{g.league}-{g.day}-{g.away.code}-{g.home.code}"
                                          for g in GameSchedule(cfg).current(T0 + 120)}


def test_game_length_and_leg_miss_settings_are_read_from_env() -> None:
    cfg = SimConfig.from_env(Env({"SIM_LEG_MISS_AT_S": "6,3", "SIM_LEG_MISS_HOLD_MS": "0,0.5,2"}))
    assert (cfg.game_length_s, cfg.leg_miss_at_s, cfg.leg_miss_hold_ms) == (600.0, (3.0, 6.0), (0.0, 0.5, 2.0))
    assert SimConfig.from_env(Env({})).leg_miss_hold_ms == (0.0,)
    assert SimConfig.from_env(Env({"SIM_GAME_LENGTH_S": "0"})).game_length_s == 0.0


def test_a_leg_miss_injection_shows_an_arbitrage_for_one_read_then_takes_it_back() -> None:
    cfg = SimConfig(seed=11, games=3, mispricing_every_s=0, leg_miss_at_s=(2.0,), start_date="2026-11-25")
    pair = _Pair(cfg)
    assert pair.k.take_leg_miss(1.0) is None and SimVenue("polymarket", cfg).take_leg_miss(5.0) is None
    slot = pair.k.take_leg_miss(2.5)
    assert slot == 0 and pair.k.take_leg_miss(3.0) is None  # once
    for raw in pair.k.flash(slot, True):
        pair.kf.handle(raw, 1)
    g0 = pair.k.games[0]
    assert list(pair.arbs()) == [f"{g0.league}-{g0.day}-{g0.away.code}-{g0.home.code}"]
    for raw in pair.k.flash(slot, False):
        pair.kf.handle(raw, 1)
    assert pair.arbs() == {} and pair.k.leg_misses_injected == 1


def test_a_full_sports_day_of_400_games_spreads_over_days_and_every_game_matches_across_venues() -> None:
    from arbees_core.venues.sim_schedule import days_per_generation, make_games

    cfg = SimConfig(seed=3, games=400, start_date="2026-12-04", game_length_s=0)
    games = make_games(cfg)
    assert len({(g.league, g.day, g.away.code) for g in games} | {(g.league, g.day, g.home.code) for g in games}) == 800
    assert 1 < len({g.day for g in games}) <= days_per_generation(400)  # each team plays once a day
    matched, unmatched = match_markets(SimVenue("kalshi", cfg).listings(), SimVenue("polymarket", cfg).listings())
    assert len(matched) == 400 and not unmatched
    later = make_games(cfg, generation=1)  # the next generation's days follow this one's: no ticker is reused
    assert not {g.event_ticker for g in games} & {g.event_ticker for g in later}
    assert make_games(SimConfig(seed=3, games=40, start_date="2026-12-04"))[0].day == "2026-12-04"
