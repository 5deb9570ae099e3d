"""The simulated venues' wire formats: each venue's own messages, as the production parsers read them.

Kalshi: `orderbook_snapshot` and signed `orderbook_delta`s on YES/NO bids (`seq` per subscription, sid 1), and a
`market_lifecycle_v2` `determined` event with the `result` of each market when its game ends (sid 2, no seq).
Polymarket: `book` and `price_change` (absolute sizes) per outcome token, and `market_resolved` naming the
`winning_asset_id` of a game's market. Prices are whole cents here, written as dollars.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field

import orjson

from arbees_core.strategy.matching import Team
from arbees_core.venues.sim_schedule import SimGame, digest

Levels = dict[tuple[str, int], float]  # (side, price cents) -> contracts
#: The simulated Kalshi subscriptions: the order books, and the market lifecycle channel.
BOOK_SID, LIFECYCLE_SID = 1, 2


def _dollars(cents: int, places: int) -> str:
    return f"{cents / 100:.{places}f}"


@dataclass
class SimMarket:
    """One contract's book as the venue holds it: Kalshi (yes|no bids) or Polymarket (BUY|SELL of the token)."""

    ticker: str
    game: SimGame
    team: Team
    levels: Levels = field(default_factory=dict)
    market_id: str = ""

    def __post_init__(self) -> None:
        self.market_id = digest("mid", self.ticker).hex()[:32]


class SimWire:
    """Message encoders of one simulated venue: sequence numbers, timestamps, book hashes."""

    def __init__(self) -> None:
        self._seq = 0
        self._ts_second, self._ts_prefix = -1, ""
        self._clock_s: float | None = None  # the simulated wall clock while a stream is built ahead; None = real

    def _now(self) -> float:
        """Wall-clock seconds: the real clock, or the simulated one while a stream is built ahead (`prebuilt`)."""
        return time.time() if self._clock_s is None else self._clock_s

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _iso_now(self) -> str:
        """UTC ISO 8601 with microseconds, the date-time part formatted once per second."""
        now = self._now()
        second = int(now)
        if second != self._ts_second:
            self._ts_second, self._ts_prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._ts_prefix}.{int((now - second) * 1e6):06d}Z"

    # Kalshi ---------------------------------------------------------------------------------------------------

    def _kalshi_snapshot(self, m: SimMarket) -> bytes:
        def side(name: str) -> list[list[str]]:
            return [[_dollars(p, 4), f"{q:.2f}"] for (s, p), q in sorted(m.levels.items()) if s == name]

        return orjson.dumps({"type": "orderbook_snapshot", "sid": BOOK_SID, "seq": self._next_seq(), "msg": {
            "market_ticker": m.ticker, "market_id": m.market_id,
            "yes_dollars_fp": side("yes"), "no_dollars_fp": side("no")}})

    def _kalshi_delta(self, m: SimMarket, side: str, price: int, change: float) -> bytes:
        ts = self._iso_now()
        return orjson.dumps({"type": "orderbook_delta", "sid": BOOK_SID, "seq": self._next_seq(), "msg": {
            "market_ticker": m.ticker, "market_id": m.market_id,
            "price_dollars": _dollars(price, 4), "delta_fp": f"{change:.2f}", "side": side, "ts": ts}})

    def _kalshi_determined(self, m: SimMarket, won: bool) -> bytes:
        """The lifecycle channel's `determined` event of one market (its team won: yes)."""
        return orjson.dumps({"type": "market_lifecycle_v2", "sid": LIFECYCLE_SID, "msg": {
            "event_type": "determined", "market_ticker": m.ticker, "result": "yes" if won else "no",
            "settlement_value": "1.00" if won else "0.00", "determination_ts": int(self._now())}})

    # Polymarket -----------------------------------------------------------------------------------------------

    def _book_hash(self, m: SimMarket) -> str:
        """A 40-hex-digit book hash that changes with every update (the venue's is a digest of the book)."""
        return f"{zlib.crc32(m.ticker.encode()):08x}{self._next_seq():032x}"

    @staticmethod
    def _poly_levels(m: SimMarket, side: str) -> list[dict[str, str]]:
        # the venue sends bids ascending and asks descending (best last); parsers must not rely on it
        levels = sorted(((p, q) for (s, p), q in m.levels.items() if s == side), reverse=side == "SELL")
        return [{"price": _dollars(p, 2), "size": f"{q:g}"} for p, q in levels]

    def _poly_book(self, m: SimMarket, condition: str) -> dict:
        return {"event_type": "book", "asset_id": m.ticker, "market": condition,
                "bids": self._poly_levels(m, "BUY"), "asks": self._poly_levels(m, "SELL"),
                "timestamp": str(int(self._now() * 1000)), "hash": self._book_hash(m)}

    def _poly_change(self, condition: str, changes: list[tuple[SimMarket, str, int, float]]) -> bytes:
        items = []
        for m, side, price, size in changes:
            bids = [p for (s, p) in m.levels if s == "BUY"]
            asks = [p for (s, p) in m.levels if s == "SELL"]
            items.append({"asset_id": m.ticker, "price": _dollars(price, 2), "size": f"{size:g}", "side": side,
                          "hash": self._book_hash(m),
                          "best_bid": _dollars(max(bids), 2) if bids else "0",
                          "best_ask": _dollars(min(asks), 2) if asks else "1"})
        return orjson.dumps({"event_type": "price_change", "market": condition,
                             "timestamp": str(int(self._now() * 1000)), "price_changes": items})

    def _poly_resolved(self, condition: str, markets: list[SimMarket], winner: SimMarket) -> bytes:
        """The market channel's `market_resolved` of one game's market (both outcome tokens)."""
        g = winner.game
        return orjson.dumps({"event_type": "market_resolved", "id": digest("id", condition).hex()[:12],
                             "market": condition, "question": f"{g.away.nickname} vs. {g.home.nickname}",
                             "assets_ids": [m.ticker for m in markets], "outcomes": [m.team.nickname for m in markets],
                             "winning_asset_id": winner.ticker, "winning_outcome": winner.team.nickname,
                             "timestamp": str(int(self._now() * 1000))})
