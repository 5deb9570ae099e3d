"""Cross-venue matching: exact team names per league, real Kalshi ticker shapes, and game pairing by date."""

from __future__ import annotations

import itertools
import random

import pytest

from arbees_core.strategy.matching import match_markets
from arbees_core.strategy.teams import TEAMS, normalize, parse_kalshi_ticker, team_code
from arbees_core.venues.listing import MarketListing, OutcomePair


@pytest.mark.parametrize(
    ("text", "normal"),
    [("Montréal Canadiens", "montreal canadiens"), ("  St. Louis   BLUES ", "st louis blues"),
     ("A's", "as"), ("D-backs", "d backs"), ("Philadelphia 76ers", "philadelphia 76ers"), ("Québec", "quebec")],
)
def test_normalize_folds_case_accents_and_punctuation(text: str, normal: str) -> None:
    assert normalize(text) == normal


@pytest.mark.parametrize(
    ("name", "league", "code"),
    [
        # NBA: code, full name, nickname, unambiguous city, aliases; Los Angeles is two teams.
        ("BOS", "NBA", "BOS"), ("Boston Celtics", "NBA", "BOS"), ("Celtics", "NBA", "BOS"), ("Boston", "NBA", "BOS"),
        ("Los Angeles", "NBA", None), ("LA Lakers", "NBA", "LAL"), ("Los Angeles Clippers", "NBA", "LAC"),
        ("Sixers", "NBA", "PHI"), ("Philadelphia 76ers", "NBA", "PHI"), ("Golden State Warriors", "NBA", "GSW"),
        ("GS", "NBA", "GSW"), ("Trail Blazers", "NBA", "POR"), ("Knicks", "NBA", "NYK"), ("Heat", "NBA", "MIA"),
        # NFL: New York and Los Angeles are two teams each.
        ("Niners", "NFL", "SF"), ("San Francisco 49ers", "NFL", "SF"), ("New York", "NFL", None),
        ("Jets", "NFL", "NYJ"), ("Jacksonville Jaguars", "NFL", "JAC"), ("JAX", "NFL", "JAC"),
        ("Los Angeles", "NFL", None), ("LA Rams", "NFL", "LAR"), ("Chargers", "NFL", "LAC"),
        ("Washington Commanders", "NFL", "WAS"), ("Cardinals", "NFL", "ARI"), ("Giants", "NFL", "NYG"),
        # NHL: accents folded, Habs, one Los Angeles team, two New York teams.
        ("Montréal Canadiens", "NHL", "MTL"), ("Montréal", "NHL", "MTL"), ("MONTREAL", "NHL", "MTL"),
        ("Canadiens", "NHL", "MTL"), ("Habs", "NHL", "MTL"), ("Jets", "NHL", "WPG"), ("New York", "NHL", None),
        ("Rangers", "NHL", "NYR"), ("Los Angeles Kings", "NHL", "LA"), ("LAK", "NHL", "LA"),
        ("St. Louis Blues", "NHL", "STL"), ("Vegas Golden Knights", "NHL", "VGK"), ("Utah Mammoth", "NHL", "UTA"),
        # MLB: two Chicago teams, the Athletics without a city.
        ("Chicago", "MLB", None), ("White Sox", "MLB", "CWS"), ("Chicago Cubs", "MLB", "CHC"), ("A's", "MLB", "ATH"),
        ("Athletics", "MLB", "ATH"), ("D-backs", "MLB", "ARI"), ("St Louis Cardinals", "MLB", "STL"),
        ("Giants", "MLB", "SF"), ("Rangers", "MLB", "TEX"), ("New York Yankees", "MLB", "NYY"),
        # Another league's team, an unknown league, nothing.
        ("Celtics", "NHL", None), ("Bruins", "NBA", None), ("Lakers", "MLB", None), ("Celtics", "NCAAB", None),
        ("", "NBA", None), ("Boston Celtics Fan Club", "NBA", None),
    ],
)
def test_team_code_maps_real_names_per_league(name: str, league: str, code: str | None) -> None:
    assert team_code(name, league) == code


@pytest.mark.parametrize(("league", "count"), [("NBA", 30), ("NFL", 32), ("NHL", 32), ("MLB", 30)])
def test_every_team_of_the_four_leagues_is_in_the_table(league: str, count: int) -> None:
    teams = TEAMS[league]
    assert len(teams) == count
    assert len({t.code for t in teams}) == count and len({normalize(t.nickname) for t in teams}) == count
    for team in teams:
        assert team_code(team.nickname, league) == team.code
        assert team_code(f"{team.city} {team.nickname}".strip(), league) == team.code
        assert all(team_code(code, league) == team.code for code in team.alt_codes)


@pytest.mark.parametrize(
    ("ticker", "parsed"),
    [
        ("KXNBAGAME-26NOV24MIABOS-BOS", ("NBA", "2026-11-24", "MIA", "BOS", "BOS")),
        ("KXNBAGAME-25DEC25LACLAL-LAC", ("NBA", "2025-12-25", "LAC", "LAL", "LAC")),
        ("KXNBAGAME-25OCT23OKCIND-OKC", ("NBA", "2025-10-23", "OKC", "IND", "OKC")),
        ("KXNFLGAME-25SEP25SEAARI-SEA", ("NFL", "2025-09-25", "SEA", "ARI", "SEA")),
        ("KXNFLGAME-26SEP13CLEJAC-JAC", ("NFL", "2026-09-13", "CLE", "JAC", "JAC")),
        ("KXNFLGAME-25NOV30LACAR-LA", ("NFL", "2025-11-30", "LAR", "CAR", "LAR")),  # older ticker: Rams as LA
        ("KXNFLGAME-25NOV27GBDET-GB", ("NFL", "2025-11-27", "GB", "DET", "GB")),
        ("KXNHLGAME-25NOV30TORMTL-TOR", ("NHL", "2025-11-30", "TOR", "MTL", "TOR")),
        ("KXNHLGAME-25OCT30NJSJ-NJ", ("NHL", "2025-10-30", "NJ", "SJ", "NJ")),
        ("KXNHLGAME-26FEB25VGKLA-LA", ("NHL", "2026-02-25", "VGK", "LA", "LA")),
        ("KXNHLGAME-26OCT031900NJDNYR-NYR", ("NHL", "2026-10-03", "NJ", "NYR", "NYR")),  # with start time
        ("KXMLBGAME-25JUN271905NYYBOS-BOS", ("MLB", "2025-06-27", "NYY", "BOS", "BOS")),
        ("KXMLBGAME-25AUG05TBLAA-LAA", ("MLB", "2025-08-05", "TB", "LAA", "LAA")),
        ("KXMLBGAME-25SEP18ATHBOS-ATH", ("MLB", "2025-09-18", "ATH", "BOS", "ATH")),
        ("KXMLBGAME-25JUL04BALDETG1-BAL", ("MLB", "2025-07-04", "BAL", "DET", "BAL")),  # doubleheader game 1
        ("kxnbagame-26nov24miabos-mia", ("NBA", "2026-11-24", "MIA", "BOS", "MIA")),
        ("KXNBAGAME-2024-01-15-MIA-v-BOS", None),  # the plan's example is not Kalshi's format
        ("KXNBAGAME-26NOV24MIABOS", None),  # an event ticker, not a market
        ("KXNBATOTAL-26NOV24MIABOS-220", None),
        ("KXNBA-CHAMP-2026", None),
        ("KXNCAABGAME-26NOV24DUKEUNC-DUKE", None),
        ("KXNBAGAME-26FEB31MIABOS-BOS", None),  # no such date
        ("KXNBAGAME-26NOV24MIAXYZ-MIA", None),  # unknown team
        ("KXNBAGAME-26NOV24MIABOS-LAL", None),  # team not in the game
        ("KXNHLGAME-26NOV24MIABOS-BOS", None),  # NBA codes in an NHL ticker
    ],
)
def test_parse_kalshi_ticker_reads_real_ticker_shapes(ticker: str, parsed: tuple | None) -> None:
    assert parse_kalshi_ticker(ticker) == parsed


@pytest.mark.parametrize("league", sorted(TEAMS))
def test_every_pair_of_codes_splits_uniquely_from_a_ticker(league: str) -> None:
    codes = [t.code for t in TEAMS[league]]
    for away, home in itertools.permutations(codes, 2):
        ticker = f"KX{league}GAME-26NOV24{away}{home}-{home}"
        assert parse_kalshi_ticker(ticker) == (league, "2026-11-24", away, home, home), ticker


def _kalshi(away: str, home: str, day: str = "26NOV24", league: str = "NBA") -> list[MarketListing]:
    event = f"KX{league}GAME-{day}{away}{home}"
    return [MarketListing("kalshi", f"{event}-{team}", event, f"{away} at {home} Winner?", team, league)
            for team in (away, home)]


def _poly(first: str, second: str, start: str = "2026-11-24", league: str = "NBA", title: str | None = None,
          event: str | None = None) -> list[MarketListing]:
    event = event or f"{league.lower()}-{normalize(first)[:3]}-{normalize(second)[:3]}-{start}"
    title = f"{first} vs. {second}" if title is None else title
    return [MarketListing("polymarket", f"{event}:{name}", event, title, name, league, start)
            for name in (first, second)]


def test_match_pairs_kalshi_game_with_polymarket_event() -> None:
    games, unmatched = match_markets(_kalshi("MIA", "BOS"), _poly("Heat", "Celtics"))
    assert unmatched == []
    [game] = games
    assert (game.game_id, game.league, game.start_date, game.away, game.home) == (
        "NBA-2026-11-24-MIA-BOS", "NBA", "2026-11-24", "MIA", "BOS")
    event = "nba-hea-cel-2026-11-24"
    assert game.pairs == (OutcomePair("BOS", "KXNBAGAME-26NOV24MIABOS-BOS", f"{event}:Celtics"),
                          OutcomePair("MIA", "KXNBAGAME-26NOV24MIABOS-MIA", f"{event}:Heat"))


@pytest.mark.parametrize(
    ("kalshi", "poly", "game_id"),
    [
        (_kalshi("SF", "LAR", "26SEP10", "NFL"),
         _poly("49ers", "Rams", "2026-09-11", "NFL"), "NFL-2026-09-10-SF-LAR"),
        (_kalshi("TOR", "MTL", "25NOV30", "NHL"), _poly("Maple Leafs", "Canadiens", "2025-11-30", "NHL"),
         "NHL-2025-11-30-TOR-MTL"),
        (_kalshi("TOR", "MTL", "25NOV30", "NHL"),
         _poly("Toronto Maple Leafs", "Montréal Canadiens", "2025-12-01", "NHL"),
         "NHL-2025-11-30-TOR-MTL"),
        (_kalshi("NYY", "BOS", "25JUN271905", "MLB"), _poly("Yankees", "Red Sox", "2025-06-27", "MLB"),
         "MLB-2025-06-27-NYY-BOS"),
        (_kalshi("LAC", "LAL", "25DEC25"), _poly("Clippers", "Lakers", "2025-12-26"), "NBA-2025-12-25-LAC-LAL"),
    ],
)
def test_match_pairs_games_of_every_league(kalshi: list[MarketListing], poly: list[MarketListing],
                                            game_id: str) -> None:
    games, unmatched = match_markets(kalshi, poly)
    assert [g.game_id for g in games] == [game_id] and unmatched == []


def test_match_allows_one_day_of_time_zone_drift_but_not_two() -> None:
    assert len(match_markets(_kalshi("MIA", "BOS"), _poly("Heat", "Celtics", "2026-11-25"))[0]) == 1
    assert len(match_markets(_kalshi("MIA", "BOS"), _poly("Heat", "Celtics", "2026-11-23"))[0]) == 1
    games, unmatched = match_markets(_kalshi("MIA", "BOS"), _poly("Heat", "Celtics", "2026-11-26"))
    assert games == [] and len(unmatched) == 4


def test_kalshi_game_with_no_polymarket_twin_is_returned_unmatched() -> None:
    kalshi = _kalshi("MIA", "BOS") + _kalshi("LAL", "GSW")
    games, unmatched = match_markets(kalshi, _poly("Heat", "Celtics"))
    assert [g.game_id for g in games] == ["NBA-2026-11-24-MIA-BOS"]
    assert [x.ticker for x in unmatched] == ["KXNBAGAME-26NOV24LALGSW-GSW", "KXNBAGAME-26NOV24LALGSW-LAL"]


def test_nba_names_are_not_matched_into_nhl() -> None:
    # Boston and Florida/Miami play in both leagues on the same night: the NBA game must not take the NHL event.
    games, unmatched = match_markets(_kalshi("MIA", "BOS"), _poly("Panthers", "Bruins", league="NHL"))
    assert games == [] and len(unmatched) == 4
    games, unmatched = match_markets(_kalshi("FLA", "BOS", league="NHL"), _poly("Heat", "Celtics", league="NHL"))
    assert games == [] and len(unmatched) == 4


def test_spread_market_with_team_outcomes_is_not_paired_as_moneyline() -> None:
    spread = _poly("Heat", "Celtics", title="Spread: Celtics (-5.5)", event="spread")
    first_half = _poly("Heat", "Celtics", title="Heat vs. Celtics: 1H Moneyline", event="1h")
    games, unmatched = match_markets(_kalshi("MIA", "BOS"), spread + first_half + _poly("Heat", "Celtics"))
    assert [p.poly_token for p in games[0].pairs] == ["nba-hea-cel-2026-11-24:Celtics", "nba-hea-cel-2026-11-24:Heat"]
    assert {x.event_id for x in unmatched} == {"spread", "1h"}


def test_polymarket_title_naming_other_teams_is_not_paired() -> None:
    games, _ = match_markets(_kalshi("MIA", "BOS"), _poly("Heat", "Celtics", title="Lakers vs. Warriors"))
    assert games == []


def test_west_coast_series_with_every_date_shifted_pairs_each_game_with_its_own_twin() -> None:
    # Night games in Los Angeles end up on the next UTC day at Polymarket, every night of the series.
    kalshi = [x for day in ("25JUL14", "25JUL15", "25JUL16") for x in _kalshi("SF", "LAD", day, "MLB")]
    poly = [x for day in ("2025-07-15", "2025-07-16", "2025-07-17")
            for x in _poly("Giants", "Dodgers", day, "MLB", event=f"mlb-sf-lad-{day}")]
    games, unmatched = match_markets(kalshi, poly)
    assert unmatched == []
    assert [(g.start_date, g.pairs[0].poly_token.split(":")[0]) for g in games] == [
        ("2025-07-14", "mlb-sf-lad-2025-07-15"), ("2025-07-15", "mlb-sf-lad-2025-07-16"),
        ("2025-07-16", "mlb-sf-lad-2025-07-17")]


def test_pairing_that_depends_on_a_guess_is_left_unmatched() -> None:
    # Two Kalshi games a day apart and one Polymarket twin dated between them: either could be its game.
    kalshi = _kalshi("SF", "LAD", "25JUL14", "MLB") + _kalshi("SF", "LAD", "25JUL15", "MLB")
    games, unmatched = match_markets(kalshi, _poly("Giants", "Dodgers", "2025-07-15", "MLB"))
    assert games == [] and len(unmatched) == 6


def test_doubleheader_is_left_unmatched() -> None:
    kalshi: list[MarketListing] = []
    for game in ("G1", "G2"):
        event = f"KXMLBGAME-25JUL04BALDET{game}"
        kalshi += [MarketListing("kalshi", f"{event}-{t}", event, "", t, "MLB") for t in ("BAL", "DET")]
    poly = [x for event in ("g1", "g2") for x in _poly("Orioles", "Tigers", "2025-07-04", "MLB", event=event)]
    games, unmatched = match_markets(kalshi, poly)
    assert games == [] and len(unmatched) == 8


def test_incomplete_or_malformed_listings_are_unmatched() -> None:
    one_team = _kalshi("MIA", "BOS")[:1]
    bad_ticker = [MarketListing("kalshi", "KXNBAGAME-2024-01-15-MIA-v-BOS", "x", "", "BOS", "NBA")]
    no_league = _poly("Heat", "Celtics", league="")
    games, unmatched = match_markets(one_team + bad_ticker, no_league + _poly("Heat", "Celtics", event="e2"))
    assert games == [] and len(unmatched) == 6


def test_match_output_is_deterministic() -> None:
    kalshi = _kalshi("MIA", "BOS") + _kalshi("LAL", "GSW") + _kalshi("TOR", "MTL", "26NOV24", "NHL")
    poly = (_poly("Warriors", "Lakers") + _poly("Heat", "Celtics")
            + _poly("Maple Leafs", "Canadiens", league="NHL") + _poly("Knicks", "Nets"))
    expected = match_markets(kalshi, poly)
    assert [g.game_id for g in expected[0]] == ["NBA-2026-11-24-LAL-GSW", "NBA-2026-11-24-MIA-BOS",
                                                "NHL-2026-11-24-TOR-MTL"]
    rng = random.Random(7)
    for _ in range(5):
        k, p = list(kalshi), list(poly)
        rng.shuffle(k)
        rng.shuffle(p)
        assert match_markets(k, p) == expected
