"""The cross-venue market mapping in PostgreSQL: written by market_discovery, read by monitors and game shards.

Each discovery run replaces the mapping as a whole in one transaction, so readers (`MappingCache`) see either
the previous run's mapping or the new one, never a mix; rows of games that disappeared are deleted.
"""

from __future__ import annotations

from datetime import date

import psycopg

from arbees_core.venues.listing import GameMapping, MarketListing, OutcomePair

_UPSERT_MAPPING = """
INSERT INTO market_mappings (game_id, outcome, league, start_date, away, home, kalshi_ticker, poly_token, shard_id,
                             updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (game_id, outcome) DO UPDATE SET
    league = EXCLUDED.league, start_date = EXCLUDED.start_date, away = EXCLUDED.away, home = EXCLUDED.home,
    kalshi_ticker = EXCLUDED.kalshi_ticker, poly_token = EXCLUDED.poly_token, shard_id = EXCLUDED.shard_id,
    updated_at = EXCLUDED.updated_at"""

_DELETE_STALE = """
DELETE FROM market_mappings m
 WHERE NOT EXISTS (SELECT 1 FROM unnest(%s::text[], %s::text[]) AS k(game_id, outcome)
                    WHERE k.game_id = m.game_id AND k.outcome = m.outcome)"""

_INSERT_UNMATCHED = """
INSERT INTO unmatched_markets (venue, ticker, event_id, title, outcome, league, start_date, seen_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, now())"""


def _to_date(iso: str) -> date | None:
    """`start_date` as a SQL date; "" (unknown) or an unparsable value becomes NULL rather than failing the run."""
    try:
        return date.fromisoformat(iso) if iso else None
    except ValueError:
        return None


def save_mappings(conn: psycopg.Connection, games: list[GameMapping], unmatched: list[MarketListing]) -> None:
    """Make the tables hold exactly `games` and `unmatched` (one transaction)."""
    rows: dict[tuple[str, str], tuple] = {}
    for g in games:
        start = _to_date(g.start_date)
        for p in g.pairs:
            rows[(g.game_id, p.outcome)] = (g.game_id, p.outcome, g.league, start, g.away, g.home, p.kalshi_ticker,
                                            p.poly_token, g.shard_id)
    listings = {(m.venue, m.ticker): (m.venue, m.ticker, m.event_id, m.title, m.outcome, m.league, m.start_date)
                for m in unmatched}
    with conn.transaction():
        with conn.cursor() as cur:
            if rows:
                cur.executemany(_UPSERT_MAPPING, list(rows.values()))
            cur.execute(_DELETE_STALE, ([k[0] for k in rows], [k[1] for k in rows]))
            cur.execute("DELETE FROM unmatched_markets")
            if listings:
                cur.executemany(_INSERT_UNMATCHED, list(listings.values()))


def load_mappings(conn: psycopg.Connection, shard_id: str | None = None) -> list[GameMapping]:
    """The stored games (all, or one shard's), sorted by game id, each with its pairs sorted by outcome."""
    query = ("SELECT game_id, outcome, league, start_date, away, home, kalshi_ticker, poly_token, shard_id "
             "FROM market_mappings")
    params: tuple = ()
    if shard_id is not None:
        query += " WHERE shard_id = %s"
        params = (shard_id,)
    # sorted in Python: the database collation may order text differently from `sorted()` callers compare with
    rows = sorted(conn.execute(query, params).fetchall(), key=lambda r: (r[0], r[1]))
    games: list[GameMapping] = []
    current: list[tuple] = []
    for row in rows:
        if current and current[0][0] != row[0]:
            games.append(_game(current))
            current = []
        current.append(row)
    if current:
        games.append(_game(current))
    return games


def _game(rows: list[tuple]) -> GameMapping:
    game_id, _, league, start, away, home, _, _, shard = rows[0]
    pairs = tuple(OutcomePair(outcome=r[1], kalshi_ticker=r[6], poly_token=r[7]) for r in rows)
    return GameMapping(game_id=game_id, league=league, start_date=start.isoformat() if start else "", away=away,
                       home=home, pairs=pairs, shard_id=shard)


def load_unmatched(conn: psycopg.Connection) -> list[MarketListing]:
    """The listings the last discovery run could not pair, by venue and ticker."""
    rows = sorted(conn.execute("SELECT venue, ticker, event_id, title, outcome, league, start_date "
                               "FROM unmatched_markets").fetchall(), key=lambda r: (r[0], r[1]))
    return [MarketListing(venue=r[0], ticker=r[1], event_id=r[2], title=r[3], outcome=r[4], league=r[5],
                          start_date=r[6]) for r in rows]
