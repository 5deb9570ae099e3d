"""Cross-venue matching of one game: Kalshi tickers and Polymarket outcome tokens paired per team at discovery.

Matching is exact and per league: each venue's listings are grouped into games whose two contracts name two teams
of the league (`strategy/teams.py`: a name maps to a team only through the league's table), and a game is paired
only when the league, both teams and the date agree (a day of time-zone drift allowed). Anything uncertain is left
unmatched rather than guessed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Final

from arbees_core.strategy.teams import TEAMS, parse_kalshi_ticker, team_code
from arbees_core.venues.listing import GameMapping, MarketListing, OutcomePair, make_game_id

_TITLE_LEAGUE_PREFIX: Final = re.compile(r"^\s*(?:NBA|NFL|NHL|MLB)\s*[:\-]\s*", re.IGNORECASE)
_TITLE_SPLIT: Final = re.compile(r"\s+(?:vs\.?|v\.?|@|at)\s+", re.IGNORECASE)
#: Words of a Polymarket question that is not the full-game moneyline (spreads, totals, halves, periods, props).
_NOT_MONEYLINE: Final = re.compile(
    r"spread|handicap|total|\bover\b|\bunder\b|o/u|\b[12]h\b|half|quarter|period|inning|\bfirst\b|\b1st\b|[+-]\d",
    re.IGNORECASE,
)
#: Largest run of one pair's games on consecutive days considered when pairing dates (a series is 2-5 games).
_MAX_RUN: Final = 10


@dataclass(frozen=True)
class _Game:
    """One venue's listing of one game: the two contracts keyed by team code."""

    key: str
    league: str
    day: date
    contracts: dict[str, MarketListing]
    away: str = ""
    home: str = ""

    @property
    def teams(self) -> frozenset[str]:
        return frozenset(self.contracts)


def _games(listings: list[MarketListing], key_of: Callable[[MarketListing], str],
           build: Callable[[str, list[MarketListing]], _Game | None]) -> tuple[list[_Game], list[MarketListing]]:
    """One venue's listings grouped into games by `key_of`; the listings of groups that are not a game are left."""
    groups: dict[str, list[MarketListing]] = defaultdict(list)
    for listing in listings:
        groups[key_of(listing)].append(listing)
    games, left = [], []
    for key, group in groups.items():
        game = build(key, group)
        if game is None:
            left += group
        else:
            games.append(game)
    return games, left


def _kalshi_game(event: str, group: list[MarketListing]) -> _Game | None:
    """A Kalshi event (market ticker without its team suffix) is a game with one valid ticker per team."""
    parsed = [parse_kalshi_ticker(x.ticker) for x in group]
    if len(group) != 2 or parsed[0] is None or parsed[1] is None or parsed[0][:4] != parsed[1][:4]:
        return None
    league, day, away, home, _ = parsed[0]
    contracts = {p[4]: x for p, x in zip(parsed, group) if p is not None}
    if set(contracts) != {away, home}:
        return None
    return _Game(event, league, date.fromisoformat(day), contracts, away, home)


def _is_moneyline_title(title: str, league: str, teams: frozenset[str]) -> bool:
    """Whether a Polymarket question reads as the full-game winner of these teams ("Heat vs. Celtics"), not a
    spread or total whose outcomes are also team names."""
    text = _TITLE_LEAGUE_PREFIX.sub("", title.strip())
    text = re.sub(r"\s*\([^)]*\)\s*$", "", text)
    sides = _TITLE_SPLIT.split(text)
    if len(sides) == 2:
        named = frozenset(team_code(side, league) for side in sides)
        if None not in named and len(named) == 2:
            return named == teams
    return not _NOT_MONEYLINE.search(title)


def _poly_game(event: str, group: list[MarketListing]) -> _Game | None:
    """A Polymarket event is a game when its two outcomes name two teams of its league in a moneyline question."""
    league, start = group[0].league.upper(), group[0].start_date
    if len(group) != 2 or league not in TEAMS:
        return None
    if any((x.league.upper(), x.start_date) != (league, start) for x in group):
        return None
    contracts = {team_code(x.outcome, league): x for x in group}
    if None in contracts or len(contracts) != 2:
        return None
    teams = frozenset(c for c in contracts if c is not None)
    if any(x.title and not _is_moneyline_title(x.title, league, teams) for x in group):
        return None
    try:
        day = date.fromisoformat(start)
    except ValueError:
        return None
    return _Game(event, league, day, {c: x for c, x in contracts.items() if c is not None})


def _matchings(ks: list[int], ps: list[int], i: int, j: int) -> list[tuple[tuple[int, int], ...]]:
    """Every order-preserving pairing of Kalshi days `ks[i:]` with Polymarket days `ps[j:]` at most a day apart."""
    if i == len(ks):
        return [()]
    found = _matchings(ks, ps, i + 1, j)
    for jj in range(j, len(ps)):
        if abs(ks[i] - ps[jj]) <= 1:
            found += [((i, jj), *rest) for rest in _matchings(ks, ps, i + 1, jj + 1)]
    return found


def _pair_dates(ks: list[_Game], ps: list[_Game]) -> list[tuple[_Game, _Game]]:
    """Pair one team pair's games across venues by date, allowing a day of time-zone drift (Kalshi dates are US
    Eastern, Polymarket's may be UTC). Games are taken in time order, the pairing that matches the most games
    wins, and only pairs common to every such pairing are kept: a series on consecutive days pairs correctly even
    when every date is shifted, and a pairing that depends on a guess (two games a day apart, one twin listed;
    two games on one day) is left unmatched."""
    ks, ps = sorted(ks, key=lambda g: (g.day, g.key)), sorted(ps, key=lambda g: (g.day, g.key))
    kd, pd = [g.day.toordinal() for g in ks], [g.day.toordinal() for g in ps]
    if len(set(kd)) < len(kd) or len(set(pd)) < len(pd) or max(len(kd), len(pd)) > _MAX_RUN:
        return []
    options = _matchings(kd, pd, 0, 0)
    most = max(len(m) for m in options)
    best = [set(m) for m in options if len(m) == most]
    return [(ks[i], ps[j]) for i, j in sorted(set.intersection(*best))] if most else []


def _runs(ks: list[_Game], ps: list[_Game]) -> list[tuple[list[_Game], list[_Game]]]:
    """Split one team pair's games into runs of days no more than a day apart (a series), paired separately."""
    events = sorted([(g.day.toordinal(), 0, g) for g in ks] + [(g.day.toordinal(), 1, g) for g in ps],
                    key=lambda e: (e[0], e[1], e[2].key))
    runs: list[tuple[list[_Game], list[_Game]]] = []
    last = None
    for day, venue, game in events:
        if last is None or day - last > 1:
            runs.append(([], []))
        runs[-1][venue].append(game)
        last = day
    return runs


def _mapping(k: _Game, p: _Game) -> GameMapping:
    day = k.day.isoformat()
    pairs = tuple(OutcomePair(code, k.contracts[code].ticker, p.contracts[code].ticker) for code in sorted(k.teams))
    return GameMapping(make_game_id(k.league, day, k.away, k.home), k.league, day, k.away, k.home, pairs)


def match_markets(kalshi: list[MarketListing],
                  poly: list[MarketListing]) -> tuple[list[GameMapping], list[MarketListing]]:
    """Pair Kalshi games with Polymarket events of the same league, the same two teams and the same date (+/- a
    day). Returns the mappings sorted by game id and every listing of either venue left unmatched, sorted by
    (venue, ticker)."""
    k_games, unmatched = _games(kalshi, lambda x: x.ticker.rsplit("-", 1)[0], _kalshi_game)
    p_games, p_left = _games(poly, lambda x: x.event_id, _poly_game)
    unmatched += p_left
    buckets: dict[tuple[str, frozenset[str]], tuple[list[_Game], list[_Game]]] = defaultdict(lambda: ([], []))
    for venue, games in ((0, k_games), (1, p_games)):
        for game in games:
            buckets[(game.league, game.teams)][venue].append(game)
    mappings, paired = [], set()
    for ks, ps in buckets.values():
        for run_k, run_p in _runs(ks, ps):
            for k, p in _pair_dates(run_k, run_p):
                mappings.append(_mapping(k, p))
                paired |= {id(k), id(p)}
    unmatched += [x for g in k_games + p_games if id(g) not in paired for x in g.contracts.values()]
    return (sorted(mappings, key=lambda m: m.game_id),
            sorted(unmatched, key=lambda x: (x.venue, x.ticker, x.event_id)))
