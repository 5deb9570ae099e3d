"""A market's result as a venue feed reads it, before the monitor turns it into a `MarketResolution`.

Both venues' parsers produce these: Kalshi from `market_lifecycle_v2` (`determined` / `settled` with `result`),
Polymarket from `market_resolved` (`winning_asset_id` among `assets_ids`). A feed reports a resolution only for
a market it holds a book of (the venue's lifecycle channel carries every market on the exchange), and drops that
book: nothing trades in a market that has resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from arbees_core.messages import MarketResolution

#: Results a binary contract can settle to (messages.MarketResult).
RESULTS: Final = ("yes", "no", "void")


@dataclass(frozen=True, slots=True)
class Resolution:
    """ticker: the contract (Kalshi market ticker, Polymarket token id); result: yes | no | void; ts_event_ns: the
    venue's time of the determination (the receipt time when the venue gives none)."""

    ticker: str
    result: str
    ts_event_ns: int


def resolution_message(venue: str, res: Resolution, game: tuple[str, str], recv_ns: int) -> MarketResolution:
    """The wire message of `res` on `venue`; `game` is the market's (game_id, outcome) from the mapping."""
    return MarketResolution(src="", seq=0, ts_origin_ns=recv_ns, ts_event_ns=res.ts_event_ns, venue=venue,  # type: ignore[arg-type]
                            ticker=res.ticker, game_id=game[0], outcome=game[1], result=res.result)  # type: ignore[arg-type]
