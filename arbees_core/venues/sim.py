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
* **Deterministic.** The seed fixes the games, tickers, token ids, fair-value paths, sizes and results.
* **Games end.** With `SIM_GAME_LENGTH_S`, each game's markets resolve at its end (Kalshi `market_lifecycle_v2`
  `determined`, Polymarket `market_resolved`) and the next game of its slot opens with fresh books, so positions
  held to settlement close and a long run keeps trading (`sim_schedule.GameSchedule`).
* **A leg can miss on request.** `SIM_LEG_MISS_AT_S` shows a mispricing for one read and takes it back
  `SIM_LEG_MISS_HOLD_MS` later: with an order round trip longer than that (`PAPER_ORDER_LATENCY_MS`), the book
  moves between the signal it triggers and that signal's fill (`arbees chaos leg-miss`).

Settings, games and the schedule: `sim_schedule.py`; each venue's message format: its own encoder,
`venues/<venue>/sim.py` (found through the registry, venues/__init__.py), so nothing here depends on the venue.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Final

from arbees_core.strategy.teams import Team
from arbees_core.venues import adapter
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.pacing import LoopTurns
from arbees_core.venues.sim_schedule import GameSchedule, SimConfig, SimGame, make_games
from arbees_core.venues.sim_wire import Change, Levels, SimMarket

__all__ = ["SimConfig", "SimGame", "SimVenue", "make_games"]

#: Cents either side of the fair value each venue quotes, and book depth in levels per side.
HALF_SPREAD: Final = 1
DEPTH: Final = 4


class SimVenue:
    """One simulated venue. `listings()` is what its discovery API returns; `stream()` its market-data feed."""

    def __init__(self, venue: str, cfg: SimConfig, resync: Callable[[], set] | None = None) -> None:
        """`resync`: the feed's `take_resync`; when it names lost state, the venue sends fresh snapshots, as a
        real venue does on a resubscribe (counted in `resubscribes`)."""
        self.wire = adapter(venue).sim_wire(cfg.seed)  # ValueError for an unknown venue
        self.venue = venue
        self.cfg = cfg
        self.schedule = GameSchedule(cfg)
        self._rng = random.Random(f"{cfg.seed}:{venue}")
        self.games: list[SimGame] = []  # the game each slot plays now, by slot
        self._by_game: dict[int, list[SimMarket]] = {}
        self._last_home: dict[int, int] = {}
        self.markets: list[SimMarket] = []
        for game in self.schedule.current(time.time()):
            self._open_game(game)
        self._resync = resync
        self._gaps_due = list(cfg.fault_gap_at_s) if self.wire.sequenced else []
        self._leg_misses_due = list(cfg.leg_miss_at_s) if venue == cfg.mispricing_venue else []
        self._forced: int | None = None  # the slot a leg-miss injection misprices right now
        self.resubscribes = 0
        self.gaps_injected = 0
        self.leg_misses_injected = 0
        self.resolutions = 0
        self._t0 = time.monotonic()
        self._cursor = 0
        self.injections = 0

    def _now(self) -> float:
        return self.wire.now()

    #: The simulator is always connected, never reconnects, and its feed is always intact (VenueSource protocol).
    connects = 0
    connected = True

    def intact(self, now_ns: int) -> bool:
        return True

    def gauges(self) -> dict[str, int]:
        return {"resubscribes": self.resubscribes}

    def stats(self) -> dict[str, int]:
        """What the simulator injected and resolved so far (a monitor's snapshot shows it as its `connection`)."""
        return {"injections": self.injections, "leg_misses_injected": self.leg_misses_injected,
                "resolutions": self.resolutions, "gaps_injected": self.gaps_injected, "resubscribes": self.resubscribes}

    # -- games ----------------------------------------------------------------------------------------------------

    def _open_game(self, game: SimGame) -> list[SimMarket]:
        """`game` becomes its slot's game: its two markets (with empty books, for the caller to fill) replace the
        previous game's."""
        slot = game.index
        if slot < len(self.games):
            self.games[slot] = game
        else:
            self.games.append(game)
        made = [self.wire.market(game, team) for team in (game.away, game.home)]
        self._by_game[slot] = made
        self._last_home.pop(slot, None)
        self.markets = [m for s in sorted(self._by_game) for m in self._by_game[s]]
        return made

    def _roll(self, wall_s: float, elapsed_s: float) -> list[bytes]:
        """Games that ended by `wall_s`: their markets' results, then the next game's books in their place."""
        out: list[bytes] = []
        for slot, game in enumerate(list(self.games)):
            now = self.schedule.game(slot, wall_s)
            if now.generation == game.generation:
                continue
            out += self._resolved(game)
            fresh = self._open_game(now)
            for m in fresh:
                m.levels = self.desired(m, self.fair_cents(now, m.team, wall_s, elapsed_s))
            out += self.wire.books(fresh)
        return out

    def _resolved(self, game: SimGame) -> list[bytes]:
        """The venue's announcement that `game` is over, with its result."""
        self.resolutions += 1
        markets = self._by_game[game.index]
        home_won = self.schedule.home_wins(game)
        return self.wire.resolved(markets, [(m.team is game.home) == home_won for m in markets])

    # -- discovery ------------------------------------------------------------------------------------------------

    def listings(self, horizon_s: float = 0.0, wall_s: float | None = None) -> list[MarketListing]:
        """The markets of the games being played at `wall_s` (default now) and of those starting within
        `horizon_s` seconds after it."""
        listed = self.schedule.listed(self._now() if wall_s is None else wall_s, horizon_s)
        return [self.wire.listing(g, team) for g in listed for team in (g.away, g.home)]

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
        if game.index in (injected, self._forced):
            home -= self.cfg.mispricing_cents
        return int(math.floor(min(97.0, max(3.0, home)) + 0.5))

    def _size(self) -> float:
        return float(self._rng.randrange(20, 500, 5))

    def desired(self, m: SimMarket, fair: int) -> Levels:
        """The book this venue shows for fair value `fair`: DEPTH levels a side, current sizes kept."""
        out: Levels = {}
        for i in range(DEPTH):
            for key in self.wire.quote_levels(fair, HALF_SPREAD + i):
                if 1 <= key[1] <= 99:
                    out[key] = m.levels.get(key) or self._size()
        return out

    # wire format --------------------------------------------------------------------------------------------------

    def resnapshot(self) -> list[bytes]:
        """Every market's current book again (what a resubscribe returns), continuing the sequence."""
        self.resubscribes += 1
        return self.wire.books(self.markets)

    def _maybe_drop_one(self, elapsed_s: float) -> None:
        """Fault injection (SIM_FAULT_GAP_AT_S): lose one Kalshi delta's sequence number, as a lossy link would."""
        if self._gaps_due and elapsed_s >= self._gaps_due[0]:
            self._gaps_due.pop(0)
            self.wire.next_seq()
            self.gaps_injected += 1

    # stepping ---------------------------------------------------------------------------------------------------

    def snapshots(self) -> list[bytes]:
        """The messages a subscriber gets on subscribing: the acknowledgement and every market's full book (of
        the games being played now)."""
        now, elapsed = self._now(), (time.monotonic() - self._t0 if self.wire.clock_s is None else 0.0)
        for game in self.schedule.current(now):
            if game.generation != self.games[game.index].generation:
                self._open_game(game)
        for m in self.markets:
            m.levels = self.desired(m, self.fair_cents(m.game, m.team, now, elapsed))
        return self.wire.subscribed() + self.wire.books(self.markets)

    def step_game(self, game: SimGame, wall_s: float, elapsed_s: float) -> list[bytes]:
        """Bring one game's books to the fair value now; when nothing moved, jitter one level's size.
        The books are only rebuilt when the whole-cent fair value changed (most steps it has not): the simulator
        shares the machine with the pipeline it feeds, so its cost per update is kept low."""
        markets = self._by_game[game.index]
        removals: list[Change] = []
        additions: list[Change] = []
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
        changes = removals + additions  # removals first: never a crossed book
        for m, side, price, _, new in changes:
            if new <= 0:
                m.levels.pop((side, price), None)
            else:
                m.levels[(side, price)] = new
        return self.wire.changes(changes)

    def step(self, wall_s: float | None = None, elapsed_s: float | None = None) -> list[bytes]:
        """One update: games that ended resolve first, then the injected game while its state changes,
        otherwise the games in turn."""
        wall_s = self._now() if wall_s is None else wall_s
        elapsed_s = time.monotonic() - self._t0 if elapsed_s is None else elapsed_s
        rolled = self._roll(wall_s, elapsed_s) if self.schedule.length_s > 0 else []
        injected = self.injected_game(elapsed_s)
        if injected is not None and injected != getattr(self, "_last_injected", None):
            self.injections += 1
        game = self.games[self._cursor % len(self.games)]
        self._cursor += 1
        urgent = [] if injected == getattr(self, "_last_injected", None) else \
            [g for g in self.games if g.index in (injected, getattr(self, "_last_injected", None)) and g is not game]
        self._last_injected = injected
        out = rolled
        for g in (*urgent, game):
            out += self.step_game(g, wall_s, elapsed_s)
        return out

    @staticmethod
    async def _hold(seconds: float) -> None:
        """Wait `seconds` before the next read; below 2 ms by spinning, since the event loop's timers round a
        sub-millisecond sleep up to a whole millisecond (a leg-miss injection only, a few times a run)."""
        if seconds >= 0.002:
            await asyncio.sleep(seconds)
            return
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            pass
        await asyncio.sleep(0)

    def take_leg_miss(self, elapsed_s: float) -> int | None:
        """The slot a due leg-miss injection (SIM_LEG_MISS_AT_S) misprices, once; None when none is due."""
        if not self._leg_misses_due or elapsed_s < self._leg_misses_due[0]:
            return None
        self._leg_misses_due.pop(0)
        self.leg_misses_injected += 1
        return (self.leg_misses_injected - 1) % len(self.games)

    def flash(self, slot: int, on: bool) -> list[bytes]:
        """The frames that misprice slot `slot`'s game (`on`) or take the mispricing back: one read each."""
        self._forced = slot if on else None
        return self.step_game(self.games[slot], self._now(), time.monotonic() - self._t0)

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
            self.wire.clock_s = start
            yield start, self.snapshots()
            for k in range(1, int(seconds * self.cfg.rate_per_s) + 1):
                elapsed = k * interval
                self.wire.clock_s = start + elapsed
                frames = self.step(self.wire.clock_s, elapsed)
                if frames:
                    yield self.wire.clock_s, frames
        finally:
            self.wire.clock_s = None

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
            slot = self.take_leg_miss(now - self._t0)
            if slot is not None:  # two reads: the signal is made from the first, the fill meets the second
                yield self.flash(slot, True)
                await self._hold(self.cfg.leg_miss_hold_ms[(self.leg_misses_injected - 1) %
                                                           len(self.cfg.leg_miss_hold_ms)] / 1000.0)
                yield self.flash(slot, False)
