"""The simulated Kalshi's wire format: `orderbook_snapshot` and signed `orderbook_delta`s on YES/NO bids (`seq`
per subscription, sid 1), and a `market_lifecycle_v2` `determined` event with the `result` of each market when
its game ends (sid 2, no seq), as kalshi/parsing.py reads them."""

from __future__ import annotations

from typing import Final

import orjson

from arbees_core.strategy.teams import Team
from arbees_core.topics import KALSHI
from arbees_core.venues.kalshi.parsing import BOOK_CHANNEL, LIFECYCLE_CHANNEL
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.sim_schedule import SimGame
from arbees_core.venues.sim_wire import Change, SimMarket, SimWire, dollars

#: The simulated subscriptions: the order books, and the market lifecycle channel.
BOOK_SID: Final = 1
LIFECYCLE_SID: Final = 2


class KalshiSimWire(SimWire):
    sequenced = True

    def market(self, game: SimGame, team: Team) -> SimMarket:
        return SimMarket(game.kalshi_ticker(team), game, team, game.event_ticker)

    def listing(self, game: SimGame, team: Team) -> MarketListing:
        title = f"{game.away.city or game.away.nickname} at {game.home.city or game.home.nickname} Winner?"
        return MarketListing(KALSHI, game.kalshi_ticker(team), game.event_ticker, title, team.code, game.league,
                             game.day, {"yes_sub_title": team.city or team.nickname})

    def quote_levels(self, fair: int, offset: int) -> tuple[tuple[str, int], tuple[str, int]]:
        return ("yes", fair - offset), ("no", 100 - fair - offset)  # bids only: a NO bid is a YES ask

    def subscribed(self) -> list[bytes]:
        return [orjson.dumps({"id": 1, "type": "subscribed", "msg": {"channel": BOOK_CHANNEL, "sid": BOOK_SID}})]

    def books(self, markets: list[SimMarket]) -> list[bytes]:
        return [self._snapshot(m) for m in markets]

    def changes(self, changes: list[Change]) -> list[bytes]:
        return [self._delta(m, side, price, new - old) for m, side, price, old, new in changes]

    def resolved(self, markets: list[SimMarket], won: list[bool]) -> list[bytes]:
        return [self._determined(m, w) for m, w in zip(markets, won)]

    def _snapshot(self, m: SimMarket) -> bytes:
        def side(name: str) -> list[list[str]]:
            return [[dollars(p, 4), f"{q:.2f}"] for (s, p), q in sorted(m.levels.items()) if s == name]

        return orjson.dumps({"type": "orderbook_snapshot", "sid": BOOK_SID, "seq": self.next_seq(), "msg": {
            "market_ticker": m.ticker, "market_id": m.market_id,
            "yes_dollars_fp": side("yes"), "no_dollars_fp": side("no")}})

    def _delta(self, m: SimMarket, side: str, price: int, change: float) -> bytes:
        ts = self.iso_now()
        return orjson.dumps({"type": "orderbook_delta", "sid": BOOK_SID, "seq": self.next_seq(), "msg": {
            "market_ticker": m.ticker, "market_id": m.market_id,
            "price_dollars": dollars(price, 4), "delta_fp": f"{change:.2f}", "side": side, "ts": ts}})

    def _determined(self, m: SimMarket, won: bool) -> bytes:
        """The lifecycle channel's `determined` event of one market (its team won: yes)."""
        return orjson.dumps({"type": LIFECYCLE_CHANNEL, "sid": LIFECYCLE_SID, "msg": {
            "event_type": "determined", "market_ticker": m.ticker, "result": "yes" if won else "no",
            "settlement_value": "1.00" if won else "0.00", "determination_ts": int(self.now())}})
