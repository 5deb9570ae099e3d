"""The pipeline as the api sees it: latest books, games and their edges, recent signals and trades, windows.

One writer (the feed thread: `on_*`), several readers (the HTTP handlers and the push task: `snapshot`, `changes`),
one lock held only to copy. The poller thread sets `health` and `positions` whole (one assignment each).
"""

from __future__ import annotations

import collections
import threading
import time

from arbees_core.dashboard.models import (
    ApiStatus, Book, Edge, GameView, LatencyBreakdown, LatencyView, LegView, OutcomeView, PositionsView, RateView,
    ServiceHealth, SignalView, Snapshot, TradeView,
)
from arbees_core.dashboard.windows import LatencyWindow, RateMeter
from arbees_core.messages import Heartbeat, PriceUpdate, TradeResult, TradingSignal
from arbees_core.store.mapping_cache import MappingCache, prune_books
from arbees_core.strategy.arb import ArbConfig, direction_edges, is_stale
from arbees_core.venues.listing import GameMapping, OutcomePair

#: Signals and executed signals kept for the page and the JSON endpoints (oldest dropped first).
KEEP_EVENTS = 200
#: How often the books of ended games are forgotten (`LiveState.changes`).
PRUNE_EVERY_S = 10.0


def _bounded_put(store: collections.OrderedDict, key: str, value: object) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > KEEP_EVENTS:
        store.popitem(last=False)


class LiveState:
    """What the dashboard shows, updated from the feed (`source`: `zmq` or `redis`)."""

    def __init__(self, source: str, arb: ArbConfig, mapping: MappingCache, window_s: float) -> None:
        self.source = source
        self.arb = arb
        self.mapping = mapping
        self.latency = LatencyWindow(window_s)
        self.rates = RateMeter(window_s)
        self.health: list[ServiceHealth] = []
        self.positions = PositionsView(available=False, status="not read yet")
        self._lock = threading.Lock()
        self._books: dict[tuple[str, str], tuple[PriceUpdate, int]] = {}
        self._feed_live: dict[str, int] = {}
        self._signals: collections.OrderedDict[str, SignalView] = collections.OrderedDict()
        self._trades: collections.OrderedDict[str, TradeView] = collections.OrderedDict()
        self._dirty_games: set[str] = set()
        self._new_signals: list[str] = []
        self._changed_trades: set[str] = set()
        self._next_prune = 0.0

    # -- the feed thread ----------------------------------------------------------------------------------------

    def on_price(self, upd: PriceUpdate, recv_ns: int) -> None:
        found = self.mapping.pair_of(upd.venue, upd.ticker)
        with self._lock:
            self._books[(upd.venue, upd.ticker)] = (upd, recv_ns)
            if found is not None:
                self._dirty_games.add(found[0].game_id)

    def on_heartbeat(self, hb: Heartbeat) -> None:
        if hb.feed_live_ns:
            with self._lock:  # `changes` prunes the map on the push task's thread
                self._feed_live[hb.src] = hb.feed_live_ns

    def on_signal(self, sig: TradingSignal) -> None:
        view = SignalView(signal_id=sig.signal_id, game_id=sig.game_id, ts_detect_ns=sig.ts_detect_ns,
                          edge_cents=round(sig.edge_cents, 4), edge_pct=round(sig.edge_pct, 4), qty=sig.qty,
                          legs=[LegView(venue=leg.venue, ticker=leg.ticker, side=leg.side, limit_price=leg.limit_price,
                                        qty=leg.qty) for leg in sig.legs],
                          price_latency_ms=round(sig.price_latency_ms, 4))
        with self._lock:
            _bounded_put(self._signals, sig.signal_id, view)
            self._new_signals.append(sig.signal_id)
            trade = self._trades.get(sig.signal_id)
            if trade is not None and trade.edge_pct is None:
                trade.edge_pct = view.edge_pct

    def on_result(self, res: TradeResult, from_history: bool = False) -> None:
        """One leg's paper fill; the first leg of a signal also records the signal's hops in the latency window."""
        leg = LegView(venue=res.venue, ticker=res.ticker, side=res.side, limit_price=res.limit_price, qty=res.qty,
                      status=res.status, filled_qty=res.filled_qty, avg_price=res.avg_price, fees_cents=res.fees_cents)
        with self._lock:
            trade = self._trades.get(res.signal_id)
            if trade is None:
                signal = self._signals.get(res.signal_id)
                hops = {"price": res.price_latency_ms, "signal": res.signal_latency_ms,
                        "execution": res.execution_latency_ms, "end_to_end": res.latency_ms}
                trade = TradeView(signal_id=res.signal_id, game_id=res.game_id, transport=res.transport,
                                  ts_fill_ns=res.ts_fill_ns, legs=[], from_history=from_history,
                                  latency=LatencyBreakdown(price_ms=hops["price"], signal_ms=hops["signal"],
                                                           execution_ms=hops["execution"],
                                                           end_to_end_ms=hops["end_to_end"]),
                                  edge_pct=signal.edge_pct if signal is not None else None)
                _bounded_put(self._trades, res.signal_id, trade)
                self.latency.add(res.transport or "?", res.ts_fill_ns / 1e9, hops)
            while len(trade.legs) <= res.leg:
                trade.legs.append(LegView(venue="", ticker="", side="", limit_price=0.0, qty=0.0))
            trade.legs[res.leg] = leg
            self._changed_trades.add(res.signal_id)

    def count(self, family: str, n: int = 1) -> None:
        with self._lock:
            self.rates.count(family, n)

    # -- readers ------------------------------------------------------------------------------------------------

    def best_bid(self, venue: str, ticker: str, side: str) -> float | None:
        """The current best bid (cents) of `side` of a contract: what an open position could be sold at now."""
        with self._lock:
            found = self._books.get((venue, ticker))
        if found is None:
            return None
        return found[0].yes_bid if side == "yes" else found[0].no_bid

    def games(self, only: set[str] | None = None) -> list[GameView]:
        with self._lock:
            books = dict(self._books)
        now = time.time_ns()
        return [self._game(g, books, now) for g in self.mapping.games if only is None or g.game_id in only]

    def _book(self, found: tuple[PriceUpdate, int] | None, now: int) -> Book | None:
        if found is None:
            return None
        upd, _recv = found
        valid = max(upd.ts_origin_ns, self._feed_live.get(upd.src, 0))
        return Book(venue=upd.venue, ticker=upd.ticker, yes_bid=upd.yes_bid, yes_ask=upd.yes_ask, no_bid=upd.no_bid,
                    no_ask=upd.no_ask, yes_ask_size=upd.yes_ask_size, no_ask_size=upd.no_ask_size,
                    age_ms=round((now - valid) / 1e6, 1), stale=is_stale(now, valid, self.arb.max_price_age_ms))

    def _game(self, game: GameMapping, books: dict, now: int) -> GameView:
        outcomes = [self._outcome(game, pair, books, now) for pair in game.pairs]
        edges = [o.edge.edge_pct for o in outcomes if o.edge is not None]
        return GameView(game_id=game.game_id, league=game.league, start_date=game.start_date, outcomes=outcomes,
                        best_edge_pct=max(edges) if edges else None)

    def _outcome(self, game: GameMapping, pair: OutcomePair, books: dict, now: int) -> OutcomeView:
        k, p = books.get(("kalshi", pair.kalshi_ticker)), books.get(("polymarket", pair.poly_token))
        view = OutcomeView(outcome=pair.outcome, kalshi=self._book(k, now), polymarket=self._book(p, now))
        if k is None or p is None:
            return view
        opps = direction_edges(game.game_id, pair.outcome, k[0], p[0], self.arb)
        if opps:
            best = max(opps, key=lambda o: o.edge_pct)
            fresh = not (view.kalshi.stale or view.polymarket.stale)  # type: ignore[union-attr]
            view.edge = Edge(kalshi_side=best.legs[0].side, poly_side=best.legs[1].side, qty=best.qty,
                             gross_edge_cents=round(best.gross_edge_cents, 4), edge_cents=round(best.edge_cents, 4),
                             edge_pct=round(best.edge_pct, 4),
                             tradeable=fresh and best.edge_cents > 0 and best.edge_pct >= self.arb.min_edge_pct)
        return view

    def signals(self, limit: int) -> list[SignalView]:
        """The newest `limit` signals, newest first."""
        with self._lock:
            return [s.model_copy() for s in reversed(list(self._signals.values())[-limit:])]

    def trades(self, limit: int) -> list[TradeView]:
        """The newest `limit` executed signals, newest first."""
        with self._lock:
            return [t.model_copy(deep=True) for t in reversed(list(self._trades.values())[-limit:])]

    def changes(self) -> tuple[list[GameView], list[SignalView], list[TradeView]]:
        """What changed since the previous call: games whose books moved, new signals, new or completed trades.
        Every PRUNE_EVERY_S it also forgets the books of ended games and the feeds gone (`prune_books`)."""
        with self._lock:
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + PRUNE_EVERY_S
                prune_books(self._books, self._feed_live, self.mapping, time.time_ns())
            dirty, self._dirty_games = self._dirty_games, set()
            signals = [self._signals[s].model_copy() for s in self._new_signals if s in self._signals]
            trades = [self._trades[t].model_copy(deep=True) for t in self._changed_trades if t in self._trades]
            self._new_signals, self._changed_trades = [], set()
        return (self.games(dirty) if dirty else []), signals, trades

    def windows(self) -> tuple[LatencyView, RateView]:
        """The latency and rate windows as of now."""
        with self._lock:
            return self.latency.view(), self.rates.view()

    def snapshot(self, api: ApiStatus) -> Snapshot:
        latency, rates = self.windows()
        return Snapshot(source=self.source, ts_ns=time.time_ns(), games=self.games(), signals=self.signals(KEEP_EVENTS),
                        trades=self.trades(KEEP_EVENTS), latency=latency, rates=rates, health=list(self.health),
                        positions=self.positions, api=api)
