"""The simulated venues: realistic order books for N games on both venues, in each venue's own wire format.

Why a simulator and not canned quotes: the monitors run their real parsers and books on what it emits (Kalshi
snapshot + signed deltas on YES/NO bids; Polymarket `book` + `price_change` with absolute sizes), so the pipeline
under test is the production pipeline with only the socket replaced.

Properties the validation relies on:
* **Both venues agree without talking.** Each game's fair value is a smooth function of wall-clock time and the
  seed, so two monitor processes started separately quote the same game at the same price.
* **Normal traffic never arbitrages.** Both venues quote one cent either side of the same whole-cent fair value,
  so YES on one venue + NO on the other costs at least 102c before fees (and a one-cent disagreement at a
  rounding boundary still costs 101c plus both venues' fees).
* **Injected mispricings are known.** The venue named by `SIM_MISPRICE_VENUE` shifts one game's fair value by
  `SIM_MISPRICE_CENTS` for `SIM_MISPRICE_DURATION_MS`, at `SIM_MISPRICE_AT_S` seconds after its stream starts and
  every `SIM_MISPRICE_EVERY_S` seconds; that is a cross-venue arbitrage of known size and time, and the only one.
  Levels leaving the book are removed before new ones are added, so a book is never crossed in between.
* **Deterministic.** The seed fixes the games, tickers, token ids, fair-value paths and sizes.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Final

import orjson

from arbees_core.config import ConfigError, Env
from arbees_core.strategy.matching import TEAMS, Team, parse_kalshi_ticker, team_code
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.pacing import LoopTurns

KALSHI: Final = "kalshi"
POLYMARKET: Final = "polymarket"
_LEAGUES: Final = ("NBA", "NHL", "NFL", "MLB")
_MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: Cents either side of the fair value each venue quotes, and book depth in levels per side.
HALF_SPREAD: Final = 1
DEPTH: Final = 4
#: Fair values stay inside this band (cents) so every level has a valid price.
_FAIR_MIN, _FAIR_MAX = 8.0, 92.0


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
    seconds after the stream starts at which the Kalshi feed drops one delta, a sequence gap; empty = never)."""

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

    @classmethod
    def from_env(cls, env: Env) -> "SimConfig":
        venue = (env.str("SIM_MISPRICE_VENUE", KALSHI) or KALSHI).lower()
        venue = POLYMARKET if venue in ("poly", "polymarket") else venue
        if venue not in (KALSHI, POLYMARKET):
            raise ConfigError(f"SIM_MISPRICE_VENUE={venue!r}: expected kalshi or polymarket")
        try:
            at = tuple(float(x) for x in env.list("SIM_MISPRICE_AT_S", []))
        except ValueError as e:
            raise ConfigError(f"SIM_MISPRICE_AT_S must be a comma list of seconds: {e}") from e
        start = env.str("SIM_DATE") or _eastern_today()
        try:
            date.fromisoformat(start)
        except ValueError as e:
            raise ConfigError(f"SIM_DATE={start!r} is not an ISO date (YYYY-MM-DD)") from e
        games = env.int("SIM_GAMES", 4, minimum=1)
        if games > 40:
            raise ConfigError(f"SIM_GAMES={games}: at most 40 simulated games")
        return cls(seed=env.int("SIM_SEED", 7), games=games, rate_per_s=env.float("SIM_RATE", 50.0, minimum=0.1),
                   mispricing_every_s=env.float("SIM_MISPRICE_EVERY_S", 30.0, minimum=0.0), mispricing_at_s=at,
                   mispricing_cents=env.float("SIM_MISPRICE_CENTS", 12.0, minimum=0.0),
                   mispricing_duration_ms=env.float("SIM_MISPRICE_DURATION_MS", 1000.0, minimum=1.0),
                   mispricing_venue=venue, start_date=start,
                   fault_gap_at_s=tuple(sorted(_seconds(env, "SIM_FAULT_GAP_AT_S"))))


def _seconds(env: Env, name: str) -> list[float]:
    try:
        return [float(x) for x in env.list(name, [])]
    except ValueError as e:
        raise ConfigError(f"{name} must be a comma list of seconds: {e}") from e


# -- games --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimGame:
    """One simulated game and its fair-value path (home team's win probability in cents)."""

    index: int
    league: str
    day: str
    away: Team
    home: Team
    base: float
    waves: tuple[tuple[float, float, float], ...]  # (amplitude cents, period s, phase rad)

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


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()


def poly_token_id(seed: int, game: SimGame, team: Team) -> str:
    """A 77-digit CLOB token id, stable for (seed, game, team)."""
    n = int.from_bytes(_digest("token", seed, game.event_ticker, team.code), "big")
    return str(10**76 + n % (9 * 10**76))


def poly_condition_id(seed: int, game: SimGame) -> str:
    return "0x" + _digest("condition", seed, game.event_ticker).hex()


def _valid(league: str, day: str, away: Team, home: Team) -> bool:
    """Both tickers parse back to these teams and both nicknames name them: matching will pair the game."""
    probe = SimGame(0, league, day, away, home, 50.0, ())
    for team in (away, home):
        if parse_kalshi_ticker(probe.kalshi_ticker(team)) != (league, day, away.code, home.code, team.code):
            return False
        if team_code(team.nickname, league) != team.code:
            return False
    return True


def make_games(cfg: SimConfig) -> list[SimGame]:
    """The seed's games: leagues in turn, two teams not yet playing that day, a base price and two waves."""
    rng = random.Random(cfg.seed)
    busy: set[tuple[str, str]] = set()
    games: list[SimGame] = []
    while len(games) < cfg.games:
        league = _LEAGUES[len(games) % len(_LEAGUES)]
        free = [t for t in TEAMS[league] if (league, t.code) not in busy]
        for _ in range(200):
            away, home = rng.sample(free, 2)
            if _valid(league, cfg.start_date, away, home):
                break
        else:
            raise ConfigError(f"cannot schedule {cfg.games} simulated games in one day")
        busy |= {(league, away.code), (league, home.code)}
        waves = ((rng.uniform(3, 8), rng.uniform(120, 400), rng.uniform(0, 2 * math.pi)),
                 (rng.uniform(0.5, 2.5), rng.uniform(12, 45), rng.uniform(0, 2 * math.pi)))
        games.append(SimGame(len(games), league, cfg.start_date, away, home, rng.uniform(25, 75), waves))
    return games


# -- books --------------------------------------------------------------------------------------------------------

Levels = dict[tuple[str, int], float]  # (side, price cents) -> contracts


def _dollars(cents: int, places: int) -> str:
    return f"{cents / 100:.{places}f}"


@dataclass
class _Market:
    """One contract's book as the venue holds it: Kalshi (yes|no bids) or Polymarket (BUY|SELL of the token)."""

    ticker: str
    game: SimGame
    team: Team
    levels: Levels = field(default_factory=dict)
    market_id: str = ""

    def __post_init__(self) -> None:
        self.market_id = _digest("mid", self.ticker).hex()[:32]


class SimVenue:
    """One simulated venue. `listings()` is what its discovery API returns; `stream()` its market-data feed."""

    def __init__(self, venue: str, cfg: SimConfig, resync: Callable[[], set] | None = None) -> None:
        """`resync`: the feed's `take_resync`; when it names lost state, the venue sends fresh snapshots, as a
        real venue does on a resubscribe (counted in `resubscribes`)."""
        if venue not in (KALSHI, POLYMARKET):
            raise ValueError(f"unknown venue {venue!r}")
        self.venue = venue
        self.cfg = cfg
        self.games = make_games(cfg)
        self._rng = random.Random(f"{cfg.seed}:{venue}")
        self.markets: list[_Market] = []
        for game in self.games:
            for team in (game.away, game.home):
                ticker = game.kalshi_ticker(team) if venue == KALSHI else poly_token_id(cfg.seed, game, team)
                self.markets.append(_Market(ticker, game, team))
        self._by_game: dict[int, list[_Market]] = {g.index: [m for m in self.markets if m.game is g] for g in self.games}
        self._last_home: dict[int, int] = {}
        self._condition = {g.index: poly_condition_id(cfg.seed, g) for g in self.games}
        self._ts_second, self._ts_prefix = -1, ""
        self._seq = 0
        self._resync = resync
        self._gaps_due = list(cfg.fault_gap_at_s) if venue == KALSHI else []
        self.resubscribes = 0
        self.gaps_injected = 0
        self._t0 = time.monotonic()
        self._cursor = 0
        self.injections = 0
        self._clock_s: float | None = None  # the simulated wall clock while `prebuilt` runs; None = time.time()

    # -- discovery ------------------------------------------------------------------------------------------------

    def listings(self) -> list[MarketListing]:
        out = []
        for m in self.markets:
            g = m.game
            if self.venue == KALSHI:
                title = f"{g.away.city or g.away.nickname} at {g.home.city or g.home.nickname} Winner?"
                out.append(MarketListing(KALSHI, m.ticker, g.event_ticker, title, m.team.code, g.league, g.day,
                                         {"yes_sub_title": m.team.city or m.team.nickname}))
            else:
                title = f"{g.away.nickname} vs. {g.home.nickname}"
                out.append(MarketListing(POLYMARKET, m.ticker, poly_condition_id(self.cfg.seed, g), title,
                                         m.team.nickname, g.league, g.day, {"question": title}))
        return out

    # -- prices ---------------------------------------------------------------------------------------------------

    def injected_game(self, elapsed_s: float) -> int | None:
        """The game whose price this venue has wrong `elapsed_s` after its stream started, or None."""
        cfg = self.cfg
        if self.venue != cfg.mispricing_venue or cfg.mispricing_cents <= 0:
            return None
        dur = cfg.mispricing_duration_ms / 1000.0
        for k, at in enumerate(cfg.mispricing_at_s):
            if at <= elapsed_s < at + dur:
                return k % len(self.games)
        every = cfg.mispricing_every_s
        if every > 0 and elapsed_s >= every:
            n = int(elapsed_s // every)
            if elapsed_s - n * every < dur:
                return (len(cfg.mispricing_at_s) + n - 1) % len(self.games)
        return None

    def fair_cents(self, game: SimGame, team: Team, wall_s: float, elapsed_s: float) -> int:
        """The whole-cent fair value this venue quotes for `team` winning."""
        cents = self.home_cents(game, wall_s, self.injected_game(elapsed_s))
        return cents if team is game.home else 100 - cents

    def home_cents(self, game: SimGame, wall_s: float, injected: int | None) -> int:
        """The home team's whole-cent fair value on this venue, shifted while the game is mispriced here."""
        home = game.fair_home(wall_s)
        if injected == game.index:
            home -= self.cfg.mispricing_cents
        return int(math.floor(min(97.0, max(3.0, home)) + 0.5))

    def _size(self) -> float:
        return float(self._rng.randrange(20, 500, 5))

    def desired(self, m: _Market, fair: int) -> Levels:
        """The book this venue shows for fair value `fair`: DEPTH levels a side, current sizes kept."""
        out: Levels = {}
        for i in range(DEPTH):
            if self.venue == KALSHI:
                wanted = (("yes", fair - HALF_SPREAD - i), ("no", 100 - fair - HALF_SPREAD - i))
            else:
                wanted = (("BUY", fair - HALF_SPREAD - i), ("SELL", fair + HALF_SPREAD + i))
            for key in wanted:
                if 1 <= key[1] <= 99:
                    out[key] = m.levels.get(key) or self._size()
        return out

    # wire format ------------------------------------------------------------------------------------------------

    def resnapshot(self) -> list[bytes]:
        """Every market's current book again (what a resubscribe returns), continuing the sequence."""
        self.resubscribes += 1
        if self.venue == KALSHI:
            return [self._kalshi_snapshot(m) for m in self.markets]
        return [orjson.dumps([self._poly_book(m) for m in self.markets])]

    def _maybe_drop_one(self, elapsed_s: float) -> None:
        """Fault injection (SIM_FAULT_GAP_AT_S): lose one Kalshi delta's sequence number, as a lossy link would."""
        if self._gaps_due and elapsed_s >= self._gaps_due[0]:
            self._gaps_due.pop(0)
            self._seq += 1
            self.gaps_injected += 1

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _kalshi_snapshot(self, m: _Market) -> bytes:
        def side(name: str) -> list[list[str]]:
            return [[_dollars(p, 4), f"{q:.2f}"] for (s, p), q in sorted(m.levels.items()) if s == name]

        return orjson.dumps({"type": "orderbook_snapshot", "sid": 1, "seq": self._next_seq(), "msg": {
            "market_ticker": m.ticker, "market_id": m.market_id,
            "yes_dollars_fp": side("yes"), "no_dollars_fp": side("no")}})

    def _book_hash(self, m: _Market) -> str:
        """A 40-hex-digit book hash that changes with every update (the venue's is a digest of the book)."""
        return f"{zlib.crc32(m.ticker.encode()):08x}{self._next_seq():032x}"

    def _now(self) -> float:
        """Wall-clock seconds: the real clock, or the simulated one while a stream is built ahead (`prebuilt`)."""
        return time.time() if self._clock_s is None else self._clock_s

    def _iso_now(self) -> str:
        """UTC ISO 8601 with microseconds, the date-time part formatted once per second."""
        now = self._now()
        second = int(now)
        if second != self._ts_second:
            self._ts_second, self._ts_prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._ts_prefix}.{int((now - second) * 1e6):06d}Z"

    def _kalshi_delta(self, m: _Market, side: str, price: int, change: float) -> bytes:
        ts = self._iso_now()
        return orjson.dumps({"type": "orderbook_delta", "sid": 1, "seq": self._next_seq(), "msg": {
            "market_ticker": m.ticker, "market_id": m.market_id,
            "price_dollars": _dollars(price, 4), "delta_fp": f"{change:.2f}", "side": side, "ts": ts}})

    @staticmethod
    def _poly_levels(m: _Market, side: str) -> list[dict[str, str]]:
        # the venue sends bids ascending and asks descending (best last); parsers must not rely on it
        levels = sorted(((p, q) for (s, p), q in m.levels.items() if s == side), reverse=side == "SELL")
        return [{"price": _dollars(p, 2), "size": f"{q:g}"} for p, q in levels]

    def _poly_book(self, m: _Market) -> dict:
        return {"event_type": "book", "asset_id": m.ticker, "market": self._condition[m.game.index],
                "bids": self._poly_levels(m, "BUY"), "asks": self._poly_levels(m, "SELL"),
                "timestamp": str(int(self._now() * 1000)), "hash": self._book_hash(m)}

    def _poly_change(self, game: SimGame, changes: list[tuple[_Market, str, int, float]]) -> bytes:
        items = []
        for m, side, price, size in changes:
            bids = [p for (s, p) in m.levels if s == "BUY"]
            asks = [p for (s, p) in m.levels if s == "SELL"]
            items.append({"asset_id": m.ticker, "price": _dollars(price, 2), "size": f"{size:g}", "side": side,
                          "hash": self._book_hash(m),
                          "best_bid": _dollars(max(bids), 2) if bids else "0",
                          "best_ask": _dollars(min(asks), 2) if asks else "1"})
        return orjson.dumps({"event_type": "price_change", "market": self._condition[game.index],
                             "timestamp": str(int(self._now() * 1000)), "price_changes": items})

    # stepping ---------------------------------------------------------------------------------------------------

    def snapshots(self) -> list[bytes]:
        """The messages a subscriber gets on subscribing: the acknowledgement and every market's full book."""
        now, elapsed = self._now(), (time.monotonic() - self._t0 if self._clock_s is None else 0.0)
        for m in self.markets:
            m.levels = self.desired(m, self.fair_cents(m.game, m.team, now, elapsed))
        if self.venue == KALSHI:
            ack = orjson.dumps({"id": 1, "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": 1}})
            return [ack, *(self._kalshi_snapshot(m) for m in self.markets)]
        return [orjson.dumps([self._poly_book(m) for m in self.markets])]

    def step_game(self, game: SimGame, wall_s: float, elapsed_s: float) -> list[bytes]:
        """Bring one game's books to the fair value now; when nothing moved, jitter one level's size.
        The books are only rebuilt when the whole-cent fair value changed (most steps it has not): the simulator
        shares the machine with the pipeline it feeds, so its cost per update is kept low."""
        markets = self._by_game[game.index]
        removals: list[tuple[_Market, str, int, float, float]] = []  # (market, side, price, old, new)
        additions: list[tuple[_Market, str, int, float, float]] = []
        home = self.home_cents(game, wall_s, self.injected_game(elapsed_s))
        if self._last_home.get(game.index) != home:
            self._last_home[game.index] = home
            for m in markets:
                want = self.desired(m, home if m.team is game.home else 100 - home)
                for key in m.levels.keys() - want.keys():
                    removals.append((m, key[0], key[1], m.levels[key], 0.0))
                for key in want.keys() - m.levels.keys():
                    additions.append((m, key[0], key[1], 0.0, want[key]))
        if not removals and not additions:
            m = markets[self._rng.randrange(len(markets))]
            if not m.levels:
                return []
            key = self._rng.choice(list(m.levels))
            new = max(5.0, m.levels[key] + self._rng.choice((-1, 1)) * float(self._rng.randrange(5, 60, 5)))
            additions.append((m, key[0], key[1], m.levels[key], new))
        out: list[bytes] = []
        poly: list[tuple[_Market, str, int, float]] = []
        for m, side, price, old, new in removals + additions:  # removals first: never a crossed book
            if new <= 0:
                m.levels.pop((side, price), None)
            else:
                m.levels[(side, price)] = new
            if self.venue == KALSHI:
                out.append(self._kalshi_delta(m, side, price, new - old))
            else:
                poly.append((m, side, price, new))
        if poly:
            out.append(self._poly_change(game, poly))
        return out

    def step(self, wall_s: float | None = None, elapsed_s: float | None = None) -> list[bytes]:
        """One update: the injected game first while its state changes, otherwise the games in turn."""
        wall_s = self._now() if wall_s is None else wall_s
        elapsed_s = time.monotonic() - self._t0 if elapsed_s is None else elapsed_s
        injected = self.injected_game(elapsed_s)
        if injected is not None and injected != getattr(self, "_last_injected", None):
            self.injections += 1
        game = self.games[self._cursor % len(self.games)]
        self._cursor += 1
        urgent = [] if injected == getattr(self, "_last_injected", None) else \
            [g for g in self.games if g.index in (injected, getattr(self, "_last_injected", None)) and g is not game]
        self._last_injected = injected
        out = []
        for g in (*urgent, game):
            out += self.step_game(g, wall_s, elapsed_s)
        return out

    def burst(self, n: int) -> list[bytes]:
        """The snapshots and then `n` updates at once, as fast as they can be built (for benchmarks)."""
        out = self.snapshots()
        for _ in range(n):
            out += self.step()
        return out

    def prebuilt(self, seconds: float, start_wall_s: float | None = None) -> Iterator[tuple[float, list[bytes]]]:
        """The stream of `seconds` built at once on a simulated clock: (wall time, the frames of one read), the
        snapshots first, then one read per step at `rate_per_s`, mispricings at their times after the start.
        What `stream_batches` would send, without paying for building it while it is sent: a benchmark records
        this (`replay.record_sim`) and replays it, so the venue's cost does not share the CPU with the monitor."""
        start = time.time() if start_wall_s is None else start_wall_s
        interval = 1.0 / self.cfg.rate_per_s
        try:
            self._clock_s = start
            yield start, self.snapshots()
            for k in range(1, int(seconds * self.cfg.rate_per_s) + 1):
                elapsed = k * interval
                self._clock_s = start + elapsed
                frames = self.step(self._clock_s, elapsed)
                if frames:
                    yield self._clock_s, frames
        finally:
            self._clock_s = None

    async def stream(self, stop: asyncio.Event | None = None) -> AsyncIterator[bytes]:
        """Snapshots, then updates at `rate_per_s` until `stop` is set, one frame at a time."""
        async for batch in self.stream_batches(stop):
            for raw in batch:
                yield raw

    async def stream_batches(self, stop: asyncio.Event | None = None) -> AsyncIterator[list[bytes]]:
        """The frames of each step together, as they would arrive in one read from the venue's socket, so a
        monitor publishes each market's top of book once per read instead of once per delta (a moving book
        is a burst of deltas). Injection times count from the start of this stream."""
        self._t0 = time.monotonic()
        yield self.snapshots()
        interval = 1.0 / self.cfg.rate_per_s
        due = time.monotonic()
        turns = LoopTurns()  # a consumer slower than the rate keeps every step due: still let the loop run
        while stop is None or not stop.is_set():
            now = time.monotonic()
            if now < due:
                await asyncio.sleep(min(due - now, 0.05))
                turns.suspended()
                continue
            if await turns.take(now):
                continue  # the stop may have come in meanwhile
            due = max(due + interval, now - 1.0)  # behind by more than a second: do not try to catch up
            batch: list[bytes] = []
            if self._resync is not None and self._resync():
                batch += self.resnapshot()
            self._maybe_drop_one(now - self._t0)
            batch += self.step()
            if batch:
                yield batch
