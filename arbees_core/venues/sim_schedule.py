"""What the simulated venues play: their settings, their games, and when each game ends and how.

Both venues' monitors and discovery run separately and agree without talking: the games, their tickers, their
fair-value paths and their results are functions of the seed, `SIM_DATE` and the wall clock (`GameSchedule`).
With `SIM_GAME_LENGTH_S` set, games end (their markets resolve) and new ones start in their place, so a long run
keeps trading and positions held to settlement are closed.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Final

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env
from arbees_core.strategy.teams import TEAMS, Team, parse_kalshi_ticker, team_code
from arbees_core.topics import KALSHI

_LEAGUES: Final = ("NBA", "NHL", "NFL", "MLB")
_MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: Fair values stay inside this band (cents) so every level has a valid price.
_FAIR_MIN, _FAIR_MAX = 8.0, 92.0
#: SIM_GAME_LENGTH_S when the environment does not set it: a game every 10 minutes per slot.
DEFAULT_GAME_LENGTH_S: Final = S.SIM_GAME_LENGTH_S.default


def _eastern_today() -> str:
    """Today's date in US Eastern time (Kalshi's game dates are Eastern)."""
    try:
        from zoneinfo import ZoneInfo

        return datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    except Exception:  # noqa: BLE001 - no tz database: fixed EST is right to within an hour
        return (datetime.now(timezone.utc) - timedelta(hours=5)).date().isoformat()


@dataclass(frozen=True)
class SimConfig:
    """seed: SIM_SEED; games: SIM_GAMES; rate_per_s: SIM_RATE (book updates per second over all games);
    mispricing_every_s: SIM_MISPRICE_EVERY_S (0 = none periodic); mispricing_at_s: SIM_MISPRICE_AT_S (comma list of
    seconds after the stream starts); mispricing_cents: SIM_MISPRICE_CENTS; mispricing_duration_ms:
    SIM_MISPRICE_DURATION_MS; mispricing_venue: SIM_MISPRICE_VENUE (the venue whose price is wrong);
    start_date: SIM_DATE (ISO, default today US/Eastern); fault_gap_at_s: SIM_FAULT_GAP_AT_S (fault injection:
    seconds after the stream starts at which the Kalshi feed drops one delta, a sequence gap; empty = never);
    game_length_s: SIM_GAME_LENGTH_S, how long a game lasts before its markets resolve and the next game of its
    slot starts (600 from the environment; 0, the default of a SimConfig built in code, = games never end);
    leg_miss_at_s: SIM_LEG_MISS_AT_S (fault injection, `arbees chaos leg-miss`: seconds after the stream starts at
    which the mispriced venue shows a mispricing for one read and takes it back); leg_miss_hold_ms:
    SIM_LEG_MISS_HOLD_MS (0), how long it stays, ms, a comma list giving the injections their holds in turn: long
    enough for game_shard to read the mispriced book alone, shorter than execution_service's modeled order round
    trip (PAPER_ORDER_LATENCY_MS), so the order meets the book after the take-back."""

    seed: int = 7
    games: int = 4
    rate_per_s: float = 50.0
    mispricing_every_s: float = 30.0
    mispricing_at_s: tuple[float, ...] = ()
    mispricing_cents: float = 12.0
    mispricing_duration_ms: float = 1000.0
    mispricing_venue: str = KALSHI
    start_date: str = field(default_factory=_eastern_today)
    fault_gap_at_s: tuple[float, ...] = ()
    game_length_s: float = 0.0
    leg_miss_at_s: tuple[float, ...] = ()
    leg_miss_hold_ms: tuple[float, ...] = (0.0,)

    @classmethod
    def from_env(cls, env: Env) -> "SimConfig":
        start = env.get(S.SIM_DATE) or _eastern_today()
        try:
            date.fromisoformat(start)
        except ValueError as e:
            raise ConfigError(f"SIM_DATE={start!r} is not an ISO date (YYYY-MM-DD)") from e
        return cls(seed=env.get(S.SIM_SEED), games=env.get(S.SIM_GAMES), rate_per_s=env.get(S.SIM_RATE),
                   mispricing_every_s=env.get(S.SIM_MISPRICE_EVERY_S), mispricing_at_s=env.get(S.SIM_MISPRICE_AT_S),
                   mispricing_cents=env.get(S.SIM_MISPRICE_CENTS),
                   mispricing_duration_ms=env.get(S.SIM_MISPRICE_DURATION_MS),
                   mispricing_venue=env.get(S.SIM_MISPRICE_VENUE), start_date=start,
                   fault_gap_at_s=tuple(sorted(env.get(S.SIM_FAULT_GAP_AT_S))),
                   game_length_s=env.get(S.SIM_GAME_LENGTH_S),
                   leg_miss_at_s=tuple(sorted(env.get(S.SIM_LEG_MISS_AT_S))),
                   leg_miss_hold_ms=tuple(max(0.0, x) for x in env.get(S.SIM_LEG_MISS_HOLD_MS)) or (0.0,))


# -- games --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimGame:
    """One simulated game and its fair-value path (home team's win probability in cents). `index` is its slot
    (the games of a stack are played in `SimConfig.games` slots), `generation` which game of the slot it is."""

    index: int
    league: str
    day: str
    away: Team
    home: Team
    base: float
    waves: tuple[tuple[float, float, float], ...]  # (amplitude cents, period s, phase rad)
    generation: int = 0

    @property
    def event_ticker(self) -> str:
        d = date.fromisoformat(self.day)
        return f"KX{self.league}GAME-{d.year % 100:02d}{_MONTHS[d.month - 1]}{d.day:02d}{self.away.code}{self.home.code}"

    def kalshi_ticker(self, team: Team) -> str:
        return f"{self.event_ticker}-{team.code}"

    def fair_home(self, t: float) -> float:
        """Home win probability in cents at wall-clock time t (seconds since the epoch)."""
        value = self.base + sum(a * math.sin(2 * math.pi * t / p + ph) for a, p, ph in self.waves)
        return min(_FAIR_MAX, max(_FAIR_MIN, value))


def digest(*parts: object) -> bytes:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()


def poly_token_id(seed: int, game: SimGame, team: Team) -> str:
    """A 77-digit CLOB token id, stable for (seed, game, team)."""
    n = int.from_bytes(digest("token", seed, game.event_ticker, team.code), "big")
    return str(10**76 + n % (9 * 10**76))


def poly_condition_id(seed: int, game: SimGame) -> str:
    return "0x" + digest("condition", seed, game.event_ticker).hex()


def _valid(league: str, day: str, away: Team, home: Team) -> bool:
    """Both tickers parse back to these teams and both nicknames name them: matching will pair the game."""
    probe = SimGame(0, league, day, away, home, 50.0, ())
    for team in (away, home):
        if parse_kalshi_ticker(probe.kalshi_ticker(team)) != (league, day, away.code, home.code, team.code):
            return False
        if team_code(team.nickname, league) != team.code:
            return False
    return True


#: Generation g is dated g days after `start_date`, modulo this many days (70 years: Kalshi tickers carry a
#: two-digit year). Tickers could only repeat after that many generations, 177 days at the default game length.
_DATE_CYCLE_DAYS: Final = 70 * 365


#: Games one simulated day holds (leagues in turn, each team playing once a day): more are spread over
#: `days_per_generation` consecutive days, as a full sports day on both venues lists several days ahead.
GAMES_PER_DAY: Final = 40


def days_per_generation(games: int) -> int:
    """Days one generation's games span: 1 up to GAMES_PER_DAY games, else enough for every league to fit."""
    return 1 if games <= GAMES_PER_DAY else math.ceil(games / GAMES_PER_DAY) + 1


def make_games(cfg: SimConfig, generation: int = 0) -> list[SimGame]:
    """The seed's games of one generation: leagues in turn, two teams of the league not yet playing that day, a
    base price and two waves. A league whose teams all play on its current day goes on to the next day, within
    the generation's `days_per_generation` days; generation g starts g of those spans after `start_date` (so every
    game has tickers of its own), with the random draws of (seed, g); generation 0 is the simulator's original
    fixed schedule."""
    rng = random.Random(cfg.seed if generation == 0 else f"{cfg.seed}:{generation}")
    span = days_per_generation(cfg.games)
    first = date.fromisoformat(cfg.start_date)
    league_day = dict.fromkeys(_LEAGUES, 0)
    busy: set[tuple[str, int, str]] = set()
    games: list[SimGame] = []
    while len(games) < cfg.games:
        league = _LEAGUES[len(games) % len(_LEAGUES)]
        while True:
            k = league_day[league]
            if k >= span:
                raise ConfigError(f"cannot schedule {cfg.games} simulated games in {span} days")
            day = (first + timedelta(days=(generation * span + k) % _DATE_CYCLE_DAYS)).isoformat()
            pair = _pick_pair(rng, league, day, [t for t in TEAMS[league] if (league, k, t.code) not in busy])
            if pair is not None:
                break
            league_day[league] = k + 1
        away, home = pair
        busy |= {(league, k, away.code), (league, k, home.code)}
        waves = ((rng.uniform(3, 8), rng.uniform(120, 400), rng.uniform(0, 2 * math.pi)),
                 (rng.uniform(0.5, 2.5), rng.uniform(12, 45), rng.uniform(0, 2 * math.pi)))
        games.append(SimGame(len(games), league, day, away, home, rng.uniform(25, 75), waves, generation))
    return games


def _pick_pair(rng: random.Random, league: str, day: str, free: list[Team]) -> tuple[Team, Team] | None:
    """Two of `free` whose game matching will pair (200 draws), or None: the league's day is full."""
    if len(free) < 2:
        return None
    for _ in range(200):
        away, home = rng.sample(free, 2)
        if _valid(league, day, away, home):
            return away, home
    return None


#: Generations of games a schedule keeps built (a listing looks a few generations ahead).
_GENERATIONS_KEPT = 64


class GameSchedule:
    """Which game each slot plays at a wall-clock time, and how it ends: the same answer in every process (both
    venues' monitors, discovery) without talking, from the seed, `start_date` and the clock.

    With `game_length_s` = L > 0, slot i plays generation g from `anchor + i*L/N + g*L` for L seconds, where anchor
    is midnight UTC of `start_date` and N the number of slots: the slots' games end one after the other, a
    resolution every L/N seconds, and the next game of the slot starts at once. With L = 0 every slot plays
    generation 0 for ever. A game's result is drawn from (seed, generation, slot) with the home team winning
    with its fair-value probability at the end.
    """

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.length_s = cfg.game_length_s
        self.anchor_s = datetime.fromisoformat(cfg.start_date).replace(tzinfo=timezone.utc).timestamp()
        self._built: dict[int, list[SimGame]] = {}

    def _offset_s(self, slot: int) -> float:
        return self.anchor_s + slot * self.length_s / self.cfg.games

    def generation(self, slot: int, wall_s: float) -> int:
        """The generation slot `slot` plays at `wall_s` (seconds since the epoch)."""
        return 0 if self.length_s <= 0 else math.floor((wall_s - self._offset_s(slot)) / self.length_s)

    def ends_at(self, game: SimGame) -> float:
        """When `game` ends, wall-clock seconds (infinity for a game that never ends)."""
        if self.length_s <= 0:
            return math.inf
        return self._offset_s(game.index) + (game.generation + 1) * self.length_s

    def games_of(self, generation: int) -> list[SimGame]:
        if generation not in self._built:
            if len(self._built) >= _GENERATIONS_KEPT:
                del self._built[next(iter(self._built))]
            self._built[generation] = make_games(self.cfg, generation)
        return self._built[generation]

    def game(self, slot: int, wall_s: float) -> SimGame:
        return self.games_of(self.generation(slot, wall_s))[slot]

    def current(self, wall_s: float) -> list[SimGame]:
        """The game every slot plays at `wall_s`, by slot."""
        return [self.game(slot, wall_s) for slot in range(self.cfg.games)]

    def listed(self, wall_s: float, horizon_s: float) -> list[SimGame]:
        """The games being played at `wall_s` and those starting within `horizon_s`: what the venue lists."""
        out = []
        for slot in range(self.cfg.games):
            first, last = self.generation(slot, wall_s), self.generation(slot, wall_s + max(0.0, horizon_s))
            out += [self.games_of(g)[slot] for g in range(first, last + 1)]
        return out

    def home_wins(self, game: SimGame) -> bool:
        """The game's result: drawn once per (seed, generation, slot), the home team winning with its fair-value
        probability at the end of the game."""
        draw = random.Random(f"{self.cfg.seed}:{game.generation}:{game.index}:result").random()
        return draw * 100.0 < game.fair_home(self.ends_at(game))


