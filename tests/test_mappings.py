"""The stored cross-venue mapping: round trips, shard filter, stale games removed, unmatched listings."""

from __future__ import annotations

import psycopg

from arbees_core.store.mappings import load_mappings, load_unmatched, save_mappings
from arbees_core.store.schema import migrate
from arbees_core.venues.listing import GameMapping, MarketListing, OutcomePair, make_game_id


def _game(away: str, home: str, day: str = "2026-11-24", shard: str = "shard-1", league: str = "NBA") -> GameMapping:
    pairs = tuple(OutcomePair(outcome=team, kalshi_ticker=f"KX{league}GAME-{away}{home}-{team}", poly_token=f"tok-{team}")
                  for team in sorted((away, home)))
    return GameMapping(game_id=make_game_id(league, day, away, home), league=league, start_date=day, away=away,
                       home=home, pairs=pairs, shard_id=shard)


def test_save_then_load_round_trips(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    games = [_game("MIA", "BOS"), _game("LAL", "GSW", shard="shard-2"), _game("NYR", "BOS", league="NHL")]
    save_mappings(pg_conn, games, [])
    assert load_mappings(pg_conn) == sorted(games, key=lambda g: g.game_id)
    assert load_mappings(pg_conn, "shard-2") == [games[1]]
    assert load_mappings(pg_conn, "shard-9") == []


def test_second_save_removes_stale_games_and_updates_the_rest(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    save_mappings(pg_conn, [_game("MIA", "BOS"), _game("LAL", "GSW")], [])
    moved = _game("MIA", "BOS", shard="shard-3")
    save_mappings(pg_conn, [moved], [])
    assert load_mappings(pg_conn) == [moved]
    assert pg_conn.execute("SELECT count(*) FROM market_mappings").fetchone() == (2,)
    save_mappings(pg_conn, [], [])
    assert load_mappings(pg_conn) == []


def test_unmatched_round_trip_and_replacement(pg_conn: psycopg.Connection) -> None:
    migrate(pg_conn)
    first = [MarketListing(venue="kalshi", ticker="KXNBAGAME-X-DEN", event_id="KXNBAGAME-X", title="Denver at Utah?",
                           outcome="DEN", league="NBA", start_date="2026-11-25"),
             MarketListing(venue="polymarket", ticker="999", event_id="0xabc", title="Jazz vs. Nuggets",
                           outcome="Jazz", raw={"ignored": True})]
    save_mappings(pg_conn, [_game("MIA", "BOS")], first)
    assert load_unmatched(pg_conn) == first
    second = [first[1]]
    save_mappings(pg_conn, [_game("MIA", "BOS")], second)
    assert load_unmatched(pg_conn) == second
    assert len(load_mappings(pg_conn)) == 1
