"""What discovery knows of a market, and the cross-venue mapping built from it.

A `MarketListing` is one binary contract as a venue lists it (Kalshi: one market per team; Polymarket: one CLOB
token per outcome). A `GameMapping` pairs, per team, the Kalshi ticker and the Polymarket token that pay on the
same outcome, so signals name exact contracts (the original re-resolved markets from team names downstream).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MarketListing:
    """One contract as listed by a venue.

    venue: "kalshi" or "polymarket".
    ticker: Kalshi market ticker, or Polymarket CLOB token id (the `asset_id` of the market channel).
    event_id: Kalshi event ticker, or Polymarket condition id / Gamma market id.
    title: the venue's own title or question (e.g. "Miami at Boston Winner?", "Heat vs. Celtics").
    outcome: the venue's label of the team this contract's YES pays on ("BOS", "Celtics").
    league: upper-case league code ("NBA", "NHL", ...), "" when unknown.
    start_date: game date in UTC, ISO "YYYY-MM-DD", "" when unknown.
    """

    venue: str
    ticker: str
    event_id: str
    title: str
    outcome: str
    league: str = ""
    start_date: str = ""
    raw: dict = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class OutcomePair:
    """The two venues' contracts that pay on the same team winning. `outcome` is the canonical team code."""

    outcome: str
    kalshi_ticker: str
    poly_token: str


@dataclass(frozen=True)
class GameMapping:
    """One game on both venues: `game_id` is ours (`<LEAGUE>-<YYYY-MM-DD>-<AWAY>-<HOME>`)."""

    game_id: str
    league: str
    start_date: str
    away: str
    home: str
    pairs: tuple[OutcomePair, ...]
    shard_id: str = "shard-1"

    def tickers(self, venue: str) -> list[str]:
        """The contracts of this game on one venue."""
        if venue == "kalshi":
            return [p.kalshi_ticker for p in self.pairs]
        return [p.poly_token for p in self.pairs]


def make_game_id(league: str, start_date: str, away: str, home: str) -> str:
    """Our stable game id, the same whichever venue discovered the game first."""
    return f"{league.upper()}-{start_date}-{away.upper()}-{home.upper()}"
