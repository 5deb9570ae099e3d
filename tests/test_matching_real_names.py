"""Matching on the venues' real shapes: Kalshi REST markets (game-series tickers) and Gamma events (team-name
questions, JSON-in-string outcomes, slugs with dates), through the same decoders discovery uses."""

from __future__ import annotations

import json

import pytest

from arbees_core.strategy.matching import match_markets
from arbees_core.venues.kalshi.parsing import markets_page, page_listings
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.polymarket import parsing as gamma

# (league, kalshi event ticker, away code, home code, Polymarket question, away outcome, home outcome, Gamma date
# fields). Kalshi dates are US Eastern; Gamma's gameStartTime is UTC (a late game is the next UTC day).
GAMES = [
    ("NBA", "KXNBAGAME-25NOV06LALBOS", "LAL", "BOS", "Lakers vs. Celtics", "Lakers", "Celtics",
     {"slug": "nba-lal-bos-2025-11-06"}),
    ("NFL", "KXNFLGAME-25NOV06LVDEN", "LV", "DEN", "Raiders vs. Broncos", "Raiders", "Broncos",
     {"slug": "nfl-lv-den-2025-11-06"}),
    ("NHL", "KXNHLGAME-25NOV06VGKLA", "VGK", "LA", "Golden Knights vs. Kings", "Golden Knights", "Kings",
     {"slug": "nhl-vgk-la", "market": {"gameStartTime": "2025-11-07 02:30:00+00"}}),
    ("MLB", "KXMLBGAME-25SEP14NYYBOS", "NYY", "BOS", "Yankees vs. Red Sox", "Yankees", "Red Sox",
     {"slug": "mlb-nyy-bos-2025-09-14"}),
    ("NBA", "KXNBAGAME-26JAN151930PHXPOR", "PHX", "POR", "Suns vs. Trail Blazers", "Suns", "Trail Blazers",
     {"slug": "nba-phx-por-2026-01-15"}),
    ("NHL", "KXNHLGAME-25DEC02MTLTOR", "MTL", "TOR", "Canadiens vs. Maple Leafs", "Montréal Canadiens", "Maple Leafs",
     {"eventDate": "2025-12-02", "slug": "nhl-mtl-tor"}),
]


def kalshi_markets(event: str, away: str, home: str) -> list[dict]:
    return [{"ticker": f"{event}-{team}", "event_ticker": event, "title": f"{away} at {home} Winner?",
             "yes_sub_title": team, "status": "active"} for team in (away, home)]


def gamma_event(i: int, question: str, away: str, home: str, fields: dict) -> dict:
    market = {"question": question, "conditionId": f"0xc{i}", "outcomes": json.dumps([away, home]),
              "clobTokenIds": json.dumps([f"{i}01", f"{i}02"]), "sportsMarketType": "moneyline",
              "enableOrderBook": True, "active": True, "closed": False} | fields.get("market", {})
    spread = market | {"question": f"Spread: {home} (-1.5)", "conditionId": f"0xs{i}",
                       "sportsMarketType": "spreads", "clobTokenIds": json.dumps([f"{i}91", f"{i}92"])}
    return {"id": str(i), "slug": fields.get("slug", ""), "eventDate": fields.get("eventDate"),
            "startDate": "2025-08-01T00:00:00Z", "markets": [market, spread]}


def to_listings(markets: list[dict], series: str) -> list[MarketListing]:
    """Kalshi markets through discovery's decoder (a `GET /markets` page)."""
    listings, skipped = page_listings(markets_page({"markets": markets, "cursor": ""}), series)
    assert skipped == 0
    return listings


def event_listings(event: dict, league: str) -> list[MarketListing]:
    """A Gamma event through discovery's decoder (a `GET /events` page of one)."""
    events, skipped = gamma.gamma_events([event])
    assert skipped == 0
    return gamma.event_listings(events[0], league)


def test_real_ticker_and_question_shapes_pair_per_team() -> None:
    kalshi = [x for league, ev, away, home, *_ in GAMES for x in to_listings(kalshi_markets(ev, away, home),
                                                                               f"KX{league}GAME")]
    poly = [x for i, (league, _, _, _, q, a, h, fields) in enumerate(GAMES)
            for x in event_listings(gamma_event(i, q, a, h, fields), league)]
    games, unmatched = match_markets(kalshi, poly)
    assert unmatched == []
    by_id = {g.game_id: g for g in games}
    expected = {
        "NBA-2025-11-06-LAL-BOS", "NFL-2025-11-06-LV-DEN", "NHL-2025-11-06-VGK-LA", "MLB-2025-09-14-NYY-BOS",
        "NBA-2026-01-15-PHX-POR", "NHL-2025-12-02-MTL-TOR",
    }
    assert set(by_id) == expected
    for i, (league, event, away, home, *_rest) in enumerate(GAMES):
        game = next(g for g in games if g.league == league and (g.away, g.home) == (away, home))
        pairs = {p.outcome: (p.kalshi_ticker, p.poly_token) for p in game.pairs}
        assert pairs == {away: (f"{event}-{away}", f"{i}01"), home: (f"{event}-{home}", f"{i}02")}


@pytest.mark.parametrize(("question", "outcomes"), [
    ("Lakers vs. Celtics", ["Clippers", "Celtics"]),  # outcomes name another team than the question
    ("Lakers vs. Celtics", ["Los Angeles", "Celtics"]),  # ambiguous city in the NBA
])
def test_uncertain_polymarket_games_stay_unmatched(question: str, outcomes: list[str]) -> None:
    kalshi = to_listings(kalshi_markets("KXNBAGAME-25NOV06LALBOS", "LAL", "BOS"), "KXNBAGAME")
    event = gamma_event(7, question, outcomes[0], outcomes[1], {"slug": "nba-lal-bos-2025-11-06"})
    games, unmatched = match_markets(kalshi, event_listings(event, "NBA"))
    assert games == [] and len(unmatched) == 4


def test_a_game_two_days_apart_is_not_paired() -> None:
    kalshi = to_listings(kalshi_markets("KXNBAGAME-25NOV06LALBOS", "LAL", "BOS"), "KXNBAGAME")
    event = gamma_event(8, "Lakers vs. Celtics", "Lakers", "Celtics", {"slug": "nba-lal-bos-2025-11-08"})
    games, _ = match_markets(kalshi, event_listings(event, "NBA"))
    assert games == []
