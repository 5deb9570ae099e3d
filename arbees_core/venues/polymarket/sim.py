"""The simulated Polymarket's wire format: `book` and `price_change` (absolute sizes) per outcome token, and
`market_resolved` naming the `winning_asset_id` of a game's market, as polymarket/parsing.py reads them."""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from arbees_core.strategy.teams import Team
from arbees_core.topics import POLYMARKET
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.sim_schedule import SimGame, digest, poly_condition_id, poly_token_id
from arbees_core.venues.sim_wire import Change, SimMarket, SimWire, dollars


class PolymarketSimWire(SimWire):
    def market(self, game: SimGame, team: Team) -> SimMarket:
        return SimMarket(poly_token_id(self.seed, game, team), game, team, poly_condition_id(self.seed, game))

    def listing(self, game: SimGame, team: Team) -> MarketListing:
        title = f"{game.away.nickname} vs. {game.home.nickname}"
        return MarketListing(POLYMARKET, poly_token_id(self.seed, game, team), poly_condition_id(self.seed, game),
                             title, team.nickname, game.league, game.day, {"question": title})

    def quote_levels(self, fair: int, offset: int) -> tuple[tuple[str, int], tuple[str, int]]:
        return ("BUY", fair - offset), ("SELL", fair + offset)

    def books(self, markets: list[SimMarket]) -> list[bytes]:
        return [orjson.dumps([self._book(m) for m in markets])]  # one frame: the server batches them

    def changes(self, changes: list[Change]) -> list[bytes]:
        if not changes:
            return []
        items = [self._level(m, side, price, new) for m, side, price, _, new in changes]
        return [orjson.dumps({"event_type": "price_change", "market": changes[0][0].event_id,
                              "timestamp": self._ms(), "price_changes": items})]

    def resolved(self, markets: list[SimMarket], won: list[bool]) -> list[bytes]:
        winner = next(m for m, w in zip(markets, won) if w)
        g, condition = winner.game, winner.event_id
        return [orjson.dumps({"event_type": "market_resolved", "id": digest("id", condition).hex()[:12],
                              "market": condition, "question": f"{g.away.nickname} vs. {g.home.nickname}",
                              "assets_ids": [m.ticker for m in markets],
                              "outcomes": [m.team.nickname for m in markets], "winning_asset_id": winner.ticker,
                              "winning_outcome": winner.team.nickname, "timestamp": self._ms()})]

    def _ms(self) -> str:
        return str(int(self.now() * 1000))

    def _hash(self, m: SimMarket) -> str:
        """A 40-hex-digit book hash that changes with every update (the venue's is a digest of the book)."""
        return f"{zlib.crc32(m.ticker.encode()):08x}{self.next_seq():032x}"

    @staticmethod
    def _levels(m: SimMarket, side: str) -> list[dict[str, str]]:
        # the venue sends bids ascending and asks descending (best last); parsers must not rely on it
        levels = sorted(((p, q) for (s, p), q in m.levels.items() if s == side), reverse=side == "SELL")
        return [{"price": dollars(p, 2), "size": f"{q:g}"} for p, q in levels]

    def _book(self, m: SimMarket) -> dict[str, Any]:
        return {"event_type": "book", "asset_id": m.ticker, "market": m.event_id,
                "bids": self._levels(m, "BUY"), "asks": self._levels(m, "SELL"),
                "timestamp": self._ms(), "hash": self._hash(m)}

    def _level(self, m: SimMarket, side: str, price: int, size: float) -> dict[str, str]:
        bids = [p for (s, p) in m.levels if s == "BUY"]
        asks = [p for (s, p) in m.levels if s == "SELL"]
        return {"asset_id": m.ticker, "price": dollars(price, 2), "size": f"{size:g}", "side": side,
                "hash": self._hash(m), "best_bid": dollars(max(bids), 2) if bids else "0",
                "best_ask": dollars(min(asks), 2) if asks else "1"}
