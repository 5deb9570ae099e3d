"""The teams of each league and every name they go by: the league tables (code, alternate codes, city, nickname,
aliases), the normal form names are compared in, and the teams and date a Kalshi game ticker names.

A name maps to a team only through its league's table, and a name that fits two teams of the league ("Los Angeles"
in the NBA) maps to none: anything uncertain is left unknown rather than guessed. Team codes are Kalshi's where
known (`KXNBAGAME-26NOV24MIABOS-BOS`); alternate codes other feeds or older tickers use (JAX, LAK, SJS, TBL, AZ,
...) map to the same team.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Final

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
