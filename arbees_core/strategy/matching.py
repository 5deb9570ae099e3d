"""Cross-venue matching of one game: Kalshi tickers and Polymarket outcome tokens paired per team at discovery.

The original paired venues downstream with fuzzy name matching (ESPN "Boston Celtics" vs Kalshi "BOS" vs
Polymarket "Celtics") and matched NBA teams into college markets. Here matching is exact and per league: a name
maps to a team only through the league's table (code, alternate codes, city, nickname, city + nickname, aliases),
a name that fits two teams of the league ("Los Angeles" in the NBA) maps to none, and a game is paired only when
the league, both teams and the date agree. Anything uncertain is left unmatched rather than guessed.

Team codes are Kalshi's where known (`KXNBAGAME-26NOV24MIABOS-BOS`); alternate codes other feeds or older tickers
use (JAX, LAK, SJS, TBL, AZ, ...) map to the same team.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Final

from arbees_core.venues.listing import GameMapping, MarketListing, OutcomePair, make_game_id

# code | city | nickname | alternate codes | aliases (comma-separated)
_TABLES: Final = {
    "NBA": """
ATL|Atlanta|Hawks||
BOS|Boston|Celtics||
BKN|Brooklyn|Nets|BRK|
CHA|Charlotte|Hornets||
CHI|Chicago|Bulls||
CLE|Cleveland|Cavaliers||Cavs
DAL|Dallas|Mavericks||Mavs
DEN|Denver|Nuggets||
DET|Detroit|Pistons||
GSW|Golden State|Warriors|GS|Dubs
HOU|Houston|Rockets||
IND|Indiana|Pacers||
LAC|Los Angeles|Clippers||LA Clippers
LAL|Los Angeles|Lakers||LA Lakers
MEM|Memphis|Grizzlies||Grizz
MIA|Miami|Heat||
MIL|Milwaukee|Bucks||
MIN|Minnesota|Timberwolves||Wolves,T-Wolves
NOP|New Orleans|Pelicans||Pels
NYK|New York|Knicks||NY Knicks
OKC|Oklahoma City|Thunder||
ORL|Orlando|Magic||
PHI|Philadelphia|76ers||Sixers,Philly
PHX|Phoenix|Suns|PHO|
POR|Portland|Trail Blazers||Blazers,Trailblazers
SAC|Sacramento|Kings||
SAS|San Antonio|Spurs||
TOR|Toronto|Raptors||
UTA|Utah|Jazz||
WAS|Washington|Wizards|WSH|
""",
    "NFL": """
ARI|Arizona|Cardinals|AZ|
ATL|Atlanta|Falcons||
BAL|Baltimore|Ravens||
BUF|Buffalo|Bills||
CAR|Carolina|Panthers||
CHI|Chicago|Bears||
CIN|Cincinnati|Bengals||
CLE|Cleveland|Browns||
DAL|Dallas|Cowboys||
DEN|Denver|Broncos||
DET|Detroit|Lions||
GB|Green Bay|Packers||
HOU|Houston|Texans||
IND|Indianapolis|Colts||
JAC|Jacksonville|Jaguars|JAX|Jags
KC|Kansas City|Chiefs||
LV|Las Vegas|Raiders|LVR|
LAC|Los Angeles|Chargers||LA Chargers
LAR|Los Angeles|Rams|LA|LA Rams
MIA|Miami|Dolphins||
MIN|Minnesota|Vikings||
NE|New England|Patriots||Pats
NO|New Orleans|Saints||
NYG|New York|Giants||NY Giants
NYJ|New York|Jets||NY Jets
PHI|Philadelphia|Eagles||
PIT|Pittsburgh|Steelers||
SF|San Francisco|49ers||Niners,Forty Niners
SEA|Seattle|Seahawks||
TB|Tampa Bay|Buccaneers||Bucs
TEN|Tennessee|Titans||
WAS|Washington|Commanders|WSH|
""",
    "NHL": """
ANA|Anaheim|Ducks||
BOS|Boston|Bruins||
BUF|Buffalo|Sabres||
CGY|Calgary|Flames||
CAR|Carolina|Hurricanes||Canes
CHI|Chicago|Blackhawks||
COL|Colorado|Avalanche||Avs
CBJ|Columbus|Blue Jackets||
DAL|Dallas|Stars||
DET|Detroit|Red Wings||
EDM|Edmonton|Oilers||
FLA|Florida|Panthers||
LA|Los Angeles|Kings|LAK|LA Kings
MIN|Minnesota|Wild||
MTL|Montreal|Canadiens||Habs
NSH|Nashville|Predators||Preds
NJ|New Jersey|Devils|NJD|
NYI|New York|Islanders||NY Islanders,Isles
NYR|New York|Rangers||NY Rangers
OTT|Ottawa|Senators||Sens
PHI|Philadelphia|Flyers||
PIT|Pittsburgh|Penguins||Pens
SJ|San Jose|Sharks|SJS|
SEA|Seattle|Kraken||
STL|St. Louis|Blues||
TB|Tampa Bay|Lightning|TBL|Bolts
TOR|Toronto|Maple Leafs||Leafs
UTA|Utah|Mammoth|UTAH|Utah Hockey Club
VAN|Vancouver|Canucks||
VGK|Vegas|Golden Knights|VEG|Las Vegas Golden Knights
WSH|Washington|Capitals|WAS|Caps
WPG|Winnipeg|Jets||
""",
    "MLB": """
ARI|Arizona|Diamondbacks|AZ|D-backs,Dbacks
ATH||Athletics|OAK|Oakland Athletics,Oakland,Sacramento,A's
ATL|Atlanta|Braves||
BAL|Baltimore|Orioles||
BOS|Boston|Red Sox||
CHC|Chicago|Cubs||
CWS|Chicago|White Sox|CHW|Chicago WS
CIN|Cincinnati|Reds||
CLE|Cleveland|Guardians||
COL|Colorado|Rockies||
DET|Detroit|Tigers||
HOU|Houston|Astros||
KC|Kansas City|Royals||
LAA|Los Angeles|Angels||LA Angels,Anaheim
LAD|Los Angeles|Dodgers||LA Dodgers
MIA|Miami|Marlins||
MIL|Milwaukee|Brewers||
MIN|Minnesota|Twins||
NYM|New York|Mets||NY Mets
NYY|New York|Yankees||NY Yankees
PHI|Philadelphia|Phillies||
PIT|Pittsburgh|Pirates||
SD|San Diego|Padres||
SF|San Francisco|Giants||
SEA|Seattle|Mariners||
STL|St. Louis|Cardinals||
TB|Tampa Bay|Rays||
TEX|Texas|Rangers||
TOR|Toronto|Blue Jays||Jays
WSH|Washington|Nationals|WAS|Nats
""",
}

LEAGUES: Final = tuple(_TABLES)
_MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: KX{LEAGUE}GAME-{YY}{MON}{DD}[{HHMM}]{AWAY}{HOME}[G1|2]-{TEAM}: the start time (2026 series) and the
#: doubleheader game number (MLB) are optional.
_KALSHI_TICKER: Final = re.compile(
    r"^KX(?P<league>NBA|NFL|NHL|MLB)GAME-(?P<yy>\d{2})(?P<mon>[A-Z]{3})(?P<dd>\d{2})(?:\d{4})?"
    r"(?P<teams>[A-Z]{4,8}?)(?:G?\d)?-(?P<team>[A-Z]{2,4})$"
)
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
class Team:
    """One team of one league: `code` is canonical (Kalshi's), `alt_codes` other feeds' codes for it."""

    league: str
    code: str
    city: str
    nickname: str
    alt_codes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def names(self) -> set[str]:
        """Every spelling of this team, before normalisation."""
        names = {self.code, *self.alt_codes, self.nickname, *self.aliases}
        if self.city:
            names |= {self.city, f"{self.city} {self.nickname}"}
        return names


def _parse_table(league: str, text: str) -> tuple[Team, ...]:
    teams = []
    for line in text.strip().splitlines():
        code, city, nickname, alts, aliases = (part.strip() for part in line.split("|"))
        teams.append(Team(league, code, city, nickname, tuple(a for a in alts.split(",") if a),
                          tuple(a for a in aliases.split(",") if a)))
    return tuple(teams)


TEAMS: Final[dict[str, tuple[Team, ...]]] = {league: _parse_table(league, text) for league, text in _TABLES.items()}


def normalize(text: str) -> str:
    """Case-folded, accents folded (Montréal -> montreal), apostrophes dropped, other punctuation as spaces,
    spaces collapsed: the form every name is compared in."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()
    folded = folded.replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^0-9a-z]+", " ", folded).split())


def _build_index() -> dict[str, dict[str, frozenset[str]]]:
    index: dict[str, dict[str, set[str]]] = {league: defaultdict(set) for league in TEAMS}
    for league, teams in TEAMS.items():
        for team in teams:
            for name in team.names():
                index[league][normalize(name)].add(team.code)
    return {league: {k: frozenset(v) for k, v in names.items()} for league, names in index.items()}


_INDEX: Final = _build_index()
#: Per league, every code a Kalshi ticker may use (canonical and alternate) -> canonical code.
_CODES: Final = {league: {c: t.code for t in teams for c in (t.code, *t.alt_codes)} for league, teams in TEAMS.items()}


def team_code(name: str, league: str) -> str | None:
    """The canonical code of the team `name` denotes in `league`, or None when unknown or ambiguous there
    ("Boston" is BOS in the NBA; "Los Angeles" is two NBA teams, so None)."""
    codes = _INDEX.get(league.upper(), {}).get(normalize(name), frozenset())
    return next(iter(codes)) if len(codes) == 1 else None


def _ticker_date(yy: str, mon: str, dd: str) -> str | None:
    if mon not in _MONTHS:
        return None
    try:
        return date(2000 + int(yy), _MONTHS.index(mon) + 1, int(dd)).isoformat()
    except ValueError:
        return None


def _split_teams(blob: str, league: str, team: str) -> tuple[str, str] | None:
    """AWAY+HOME codes run together: every split whose halves are both known codes of the league; the ticker's
    own team settles a tie between splits; still ambiguous -> None."""
    codes = _CODES[league]
    splits = {(codes[blob[:i]], codes[blob[i:]]) for i in range(2, len(blob) - 1)
              if blob[:i] in codes and blob[i:] in codes and codes[blob[:i]] != codes[blob[i:]]}
    if len(splits) > 1:
        splits = {s for s in splits if team in s}
    return next(iter(splits)) if len(splits) == 1 else None


def parse_kalshi_ticker(ticker: str) -> tuple[str, str, str, str, str] | None:
    """(league, date ISO, away, home, team) of a Kalshi game-winner market ticker, codes canonical;
    `KXNBAGAME-26NOV24MIABOS-BOS` -> ("NBA", "2026-11-24", "MIA", "BOS", "BOS"). None for any other shape.
    The date is the ticker's (US Eastern) game date."""
    m = _KALSHI_TICKER.match(ticker.strip().upper())
    if m is None:
        return None
    league = m["league"]
    day = _ticker_date(m["yy"], m["mon"], m["dd"])
    team = _CODES[league].get(m["team"])
    if day is None or team is None:
        return None
    teams = _split_teams(m["teams"], league, team)
    if teams is None or team not in teams:
        return None
    return (league, day, teams[0], teams[1], team)


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
