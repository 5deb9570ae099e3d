"""What the simulated venues' encoders share: the market a simulated venue holds, sequence numbers, the clock.

Each venue's own encoder (`venues/<venue>/sim.py`, found through the registry) turns the simulator's book
changes into that venue's messages, as the production parsers read them; the simulator (venues/sim.py) never
branches on the venue. Prices are whole cents here, written as dollars.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from arbees_core.strategy.teams import Team
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.sim_schedule import SimGame, digest

Levels = dict[tuple[str, int], float]  # (side, price cents) -> contracts
#: One book change the simulator made: (market, side, price cents, old size, new size), sizes in contracts.
Change = tuple["SimMarket", str, int, float, float]


def dollars(cents: int, places: int) -> str:
    return f"{cents / 100:.{places}f}"


@dataclass
class SimMarket:
    """One contract's book as the venue holds it, by the venue's own sides (Kalshi yes|no bids, Polymarket
    BUY|SELL of the token). event_id: the venue's id of the game's market (Kalshi event, Polymarket condition)."""

    ticker: str
    game: SimGame
    team: Team
    event_id: str = ""
    levels: Levels = field(default_factory=dict)
    market_id: str = ""

    def __post_init__(self) -> None:
        self.market_id = digest("mid", self.ticker).hex()[:32]


class SimWire:
    """One simulated venue's encoder. Subclasses write the venue's messages; this holds the sequence numbers and
    the clock (real, or simulated while a stream is built ahead: `clock_s`)."""

    #: Whether the venue numbers its messages (then a lost sequence number can be injected: SIM_FAULT_GAP_AT_S).
    sequenced: bool = False

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.seq = 0
        self.clock_s: float | None = None  # the simulated wall clock while a stream is built ahead; None = real
        self._ts_second, self._ts_prefix = -1, ""

    def now(self) -> float:
        """Wall-clock seconds: the real clock, or the simulated one while a stream is built ahead."""
        return time.time() if self.clock_s is None else self.clock_s

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def iso_now(self) -> str:
        """UTC ISO 8601 with microseconds, the date-time part formatted once per second."""
        now = self.now()
        second = int(now)
        if second != self._ts_second:
            self._ts_second, self._ts_prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._ts_prefix}.{int((now - second) * 1e6):06d}Z"

    # -- the venue's part ---------------------------------------------------------------------------------------

    def market(self, game: SimGame, team: Team) -> SimMarket:
        """The contract paying on `team` winning `game`, with an empty book."""
        raise NotImplementedError

    def listing(self, game: SimGame, team: Team) -> MarketListing:
        """That contract as the venue's discovery API lists it."""
        raise NotImplementedError

    def quote_levels(self, fair: int, offset: int) -> tuple[tuple[str, int], tuple[str, int]]:
        """The two levels (side, price cents) quoted `offset` cents beyond the touch around fair value `fair`."""
        raise NotImplementedError

    def subscribed(self) -> list[bytes]:
        """The venue's acknowledgement of a subscription (none on some venues)."""
        return []

    def books(self, markets: list[SimMarket]) -> list[bytes]:
        """The full books of `markets`."""
        raise NotImplementedError

    def changes(self, changes: list[Change]) -> list[bytes]:
        """The messages of one game's book changes, in order (removals first: never a crossed book)."""
        raise NotImplementedError

    def resolved(self, markets: list[SimMarket], won: list[bool]) -> list[bytes]:
        """The venue's announcement that the game of `markets` is over (`won`: each market's team won)."""
        raise NotImplementedError
