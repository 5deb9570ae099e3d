"""game_shard: prices from both monitors -> cross-venue arbitrage -> `signals.trade.<id>` on ZMQ PUB :5558.

On every price update (event-driven; the original waited for an ESPN poll) the shard looks up the contract's
cross-venue twin in the discovery mapping and checks both directions (YES here + NO there) after both venues'
fees. A price is tradeable only while it is known valid: its own receipt time or the monitor's latest heartbeat
(`feed_live_ns`: the venue feed was intact then), whichever is newer, within `MAX_PRICE_AGE_MS`.
Run: `python -m arbees_core.services.game_shard`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.messages import Heartbeat, PriceRef, PriceUpdate, TradingSignal
from arbees_core.services.runner import Service
from arbees_core.services.runner import main as run_main
from arbees_core.services.shards import (
    PRICE_FAMILIES,
    ShardFeed,
    ShardingConfig,
    ShardMembership,
    shard_service_name,
)
from arbees_core.store.mapping_cache import MappingCache, prune_books
from arbees_core.strategy.arb import ArbConfig, ArbOpportunity, GameCooldown, best_arb, find_arbs, signal_id_for
from arbees_core.telemetry.logs import RateLimiter, fmt_ms
from arbees_core.topics import (
    GAME_SHARD,
    GAME_SHARD_PORT,
    Family,
    price_topic,
    signal_topic,
)
from arbees_core.transport import (
    Inbox,
    Outbox,
    Received,
    Subscriber,
    TransportSettings,
    make_subscriber,
)

#: Window over which the best edge seen is kept, for `arbees diagnose game-shard` ("max edge in the last 10 min").
EDGE_WINDOW_S = 600
#: Per-venue received-price counters (`prices_rx.kalshi`, `prices_rx.polymarket`).
_RX_BY_VENUE = {venue: f"prices_rx.{venue}" for venue in ("kalshi", "polymarket")}
#: How often game_shard forgets what ended games left behind (GameShard.prune).
PRUNE_EVERY_S = 10.0


@dataclass(frozen=True)
class GameShardConfig:
    """sub_endpoints: ZMQ_SUB_ENDPOINTS (the monitors' publishers); port: ZMQ_PUB_PORT; endpoint: ZMQ_PUB_ENDPOINT;
    shard_id: SHARD_ID (static: the games discovery gave this shard, empty = every game; orchestrator: this
    shard's id, default 1); arb: MIN_EDGE_PCT, MAX_PRICE_AGE_MS, GAME_COOLDOWN_MS, MAX_ORDER_CONTRACTS and the fee
    rates; log_sample_per_s: LOG_SAMPLE_PER_SEC; sharding: GAME_ASSIGNMENT, SHARD_DEAD_S, ASSIGNMENT_POLL_MS,
    SHARD_ENDPOINT (`services/shards.py`)."""

    sub_endpoints: list[str]
    port: int
    endpoint: str
    database_url: str
    shard_id: str
    arb: ArbConfig
    log_sample_per_s: float
    sharding: ShardingConfig = ShardingConfig()

    @classmethod
    def from_env(cls, env: Env) -> "GameShardConfig":
        sharding = ShardingConfig.from_env(env)
        return cls(
            sub_endpoints=list(env.get(S.ZMQ_SUB_ENDPOINTS)),
            port=env.get(S.ZMQ_PUB_PORT, GAME_SHARD_PORT),
            endpoint=env.get(S.ZMQ_PUB_ENDPOINT),
            database_url=env.get(S.DATABASE_URL),
            shard_id=env.get(S.SHARD_ID) or ("1" if sharding.orchestrated else ""),
            arb=ArbConfig.from_env(env),
            log_sample_per_s=env.get(S.LOG_SAMPLE_PER_SEC),
            sharding=sharding,
        )


class GameShard(Service):
    name = GAME_SHARD
    rt_scope = "process"

    def __init__(self, settings: TransportSettings, cfg: GameShardConfig, heartbeat_interval_s: float = 1.0) -> None:
        self.orchestrated = cfg.sharding.orchestrated
        if self.orchestrated:
            self.name = shard_service_name(cfg.shard_id)  # its log, metrics and health key: one per shard
        super().__init__(settings, heartbeat_interval_s)
        self.cfg = cfg
        self.membership: ShardMembership | None = None
        static_filter = None if self.orchestrated else (cfg.shard_id or None)
        self.mapping = MappingCache(cfg.database_url, self.log, shard_id=static_filter)
        self.cooldown = GameCooldown(cfg.arb.cooldown_ms)
        self._scan_cfg = dataclasses.replace(cfg.arb, min_edge_pct=float("-inf"))
        self.books: dict[tuple[str, str], tuple[PriceUpdate, int]] = {}
        self.feed_live: dict[str, int] = {}
        self._limiter = RateLimiter(cfg.log_sample_per_s)
        self._edge_by_minute: dict[int, float] = {}
        self.outbox: Outbox | None = None
        self._prices: Subscriber | None = None
        self.feed: ShardFeed | None = None
        self.inbox: Inbox | None = None
        self._next_follow = 0.0
        self._spin_mark = (0, 0)
        self._next_prune = 0.0

    @classmethod
    def from_env(cls, env: Env) -> "GameShard":
        return cls(TransportSettings.from_env(env), GameShardConfig.from_env(env),
                   env.get(S.HEARTBEAT_INTERVAL_SECS))

    def extra_snapshot(self) -> dict[str, Any]:
        return {"min_edge_pct": self.cfg.arb.min_edge_pct, "max_edge_pct_10min": self.max_edge_pct(),
                "games_mapped": len(self.mapping.games), "markets_seen": len(self.books),
                "cooldowns": len(self.cooldown), "feeds": len(self.feed_live),
                "sub_endpoints": self.cfg.sub_endpoints, **self.spin_snapshot(), **self.shard_snapshot()}

    def shard_snapshot(self) -> dict[str, Any]:
        if self.membership is None:
            return {"shard_id": self.cfg.shard_id, "assignment": self.cfg.sharding.mode}
        held = self.membership.games
        followed = len(self.feed.markets) if self.feed is not None else None
        return {"shard_id": self.cfg.shard_id, "assignment": "orchestrator", "games_held": len(held),
                "held_games": sorted(held)[:50], "endpoint": self.membership.endpoint,
                "epoch_max": max(held.values(), default=0), "markets_followed": followed}

    def spin_snapshot(self) -> dict[str, Any]:
        """With ZMQ_SPIN_US: the share of a core that busy-polling for prices took since the previous snapshot.
        A CPU reading subtracts it (`arbees diagnose latency`, the plan's < 50 % CPU check): it is waiting, not load."""
        spin_us = getattr(self._prices, "spin_us", 0)
        if not spin_us:
            return {}
        now, cpu = time.monotonic_ns(), self._prices.spin_cpu_ns  # type: ignore[union-attr]
        (then, before), self._spin_mark = self._spin_mark, (now, cpu)
        pct = round((cpu - before) / (now - then) * 100, 1) if then and now > then else None
        return {"spin": {"window_us": spin_us, "cpu_pct": pct, "cpu_s": round(cpu / 1e9, 3)}}

    def run(self, stop: threading.Event) -> None:
        if not self.announce_mode(stop):
            return
        self.outbox = self.open_outbox(self.cfg.port, self.cfg.endpoint)
        publisher = self.outbox.publisher
        if self.orchestrated:
            port = getattr(publisher, "port", None) if self.settings.zmq_enabled else None
            self.membership = ShardMembership(self.cfg.database_url, self.cfg.sharding, self.cfg.shard_id,
                                              self.cfg.sharding.endpoint_for(port), self.instance, self.log)
            self.membership.start()
        subscriber, inbox = self._open_prices()
        self.log.info("Arbitrage settings: MIN_EDGE_PCT=%g%%, MAX_PRICE_AGE_MS=%g, GAME_COOLDOWN_MS=%g, fees %s",
                      self.cfg.arb.min_edge_pct, self.cfg.arb.max_price_age_ms, self.cfg.arb.cooldown_ms,
                      self.cfg.arb.fees)
        self.mapping.refresh()
        try:
            while not stop.is_set():
                self.handle_batch(inbox.receive(self.settings.block_ms))
                if self.tick():
                    self.prune(time.time_ns())
                self.mapping.maybe_refresh()
                self.follow_held()
        finally:
            if self.membership is not None:
                self.membership.close()
            subscriber.close()
            publisher.close()

    def _open_prices(self) -> tuple[Subscriber, Inbox]:
        """The price subscriber: every market, or with SHARD_FEED=held in ZMQ mode under the orchestrator only the
        markets of the games this shard holds (`ShardFeed`; Redis mode reads the whole streams, see
        `services/shards.py`)."""
        narrow = self.orchestrated and self.settings.zmq_enabled and self.cfg.sharding.feed == "held"
        families = [Family.HEARTBEAT] if narrow else [*PRICE_FAMILIES, Family.HEARTBEAT]
        subscriber = self._prices = make_subscriber(self.settings, families, self.cfg.sub_endpoints, last_value=True,
                                                    hot_path=True, spin=True)
        if narrow and ShardFeed.supported(subscriber):
            self.feed = ShardFeed(subscriber, self.log)
        self.inbox = Inbox(subscriber, self.metrics, self.name, partial=PRICE_FAMILIES if self.feed else ())
        return subscriber, self.inbox

    def follow_held(self) -> None:
        """Twice per ASSIGNMENT_POLL_MS: subscribe to the markets of the games held now; forget the books of the
        markets left (a game held again gets its last values replayed on subscription)."""
        if self.feed is None or self.membership is None or time.monotonic() < self._next_follow:
            return
        self._next_follow = time.monotonic() + self.cfg.sharding.poll_s / 2
        gone = self.feed.update(self.membership.games, self.mapping.games)
        for key in gone:
            self.books.pop(key, None)
        if gone and self.inbox is not None:
            self.inbox.forget([price_topic(*key) for key in gone])

    def handle_batch(self, items: list[Received]) -> None:
        """Under overload a batch holds several updates of one market: every one is counted and timed, only the
        latest is evaluated (conflation, counted as `conflated`); the receive queue itself is bounded by the HWM."""
        latest: dict[tuple[str, str], Received] = {}
        for item in items:
            msg = item.msg
            if isinstance(msg, PriceUpdate):
                self.note_price(msg, item.recv_ns, item.replay)
                key = (msg.venue, msg.ticker)
                if key in latest:
                    self.metrics.inc("conflated")
                latest[key] = item
            elif isinstance(msg, Heartbeat):
                self.feed_live[msg.src] = msg.feed_live_ns
        for item in latest.values():
            self.on_price(item.msg, item.recv_ns)  # type: ignore[arg-type]

    def note_price(self, upd: PriceUpdate, recv_ns: int, replay: bool) -> None:
        """Count (in all and per venue) and time one received price (the hop latency is a property of every
        delivery)."""
        self.metrics.inc("prices_rx")
        self.metrics.inc(_RX_BY_VENUE[upd.venue])
        if not (replay or upd.snapshot):
            latency_ns = recv_ns - upd.ts_pub_ns
            self.metrics.latency.record_ns("price", latency_ns)
            if self._limiter.allow("price"):
                self.log.info("Received price update %s %s yes %s/%s no %s/%s", upd.venue, upd.ticker, upd.yes_bid,
                              upd.yes_ask, upd.no_bid, upd.no_ask)
                self.log.info("Price latency: %s", fmt_ms(latency_ns))

    def on_price(self, upd: PriceUpdate, recv_ns: int) -> None:
        """Store the market's latest book and publish the signal it makes tradeable, if any."""
        self.books[(upd.venue, upd.ticker)] = (upd, recv_ns)
        signal = self.evaluate(upd, recv_ns)
        if signal is not None:
            self.publish_signal(signal)

    def evaluate(self, upd: PriceUpdate, recv_ns: int) -> TradingSignal | None:
        """The signal this price update makes tradeable, if any (mapping, staleness, edge, cooldown)."""
        found = self.mapping.pair_of(upd.venue, upd.ticker)
        if found is None:
            self.metrics.inc("prices_unmapped")
            return None
        game, pair = found
        epoch = 0
        if self.membership is not None:
            held = self.membership.epoch_of(game.game_id)
            if held is None:
                self.metrics.inc("prices_not_held")
                return None
            epoch = held
        kalshi = self.books.get(("kalshi", pair.kalshi_ticker))
        poly = self.books.get(("polymarket", pair.poly_token))
        if kalshi is None or poly is None:
            return None
        now = time.time_ns()
        opps = find_arbs(game.game_id, pair.outcome, kalshi[0], poly[0], self._scan_cfg, now,
                         self._valid_ns(kalshi[0]), self._valid_ns(poly[0]))
        if not opps:
            return None
        self._note_edge(max(o.edge_pct for o in opps))
        best = best_arb([o for o in opps if o.edge_pct >= self.cfg.arb.min_edge_pct])
        if best is None:
            self.metrics.inc("arbs_below_min_edge")
            return None
        if not self.cooldown.ready(game.game_id, now):
            self.metrics.inc("arbs_in_cooldown")
            return None
        self.cooldown.record(game.game_id, now)
        return self.make_signal(best, upd, recv_ns, now, epoch)

    def prune(self, now_ns: int) -> None:
        """At most every PRUNE_EVERY_S: forget what ended games and gone feeds left behind. The bounds: books and
        feeds as `prune_books` keeps them (markets mapped now or updated within BOOK_RETAIN_S), cooldowns of the
        games that signalled within GAME_COOLDOWN_MS."""
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        gone = prune_books(self.books, self.feed_live, self.mapping, now_ns)
        self.cooldown.prune(now_ns)
        if gone:
            self.metrics.inc("books_pruned", gone)

    def _valid_ns(self, upd: PriceUpdate) -> int:
        return max(upd.ts_origin_ns, self.feed_live.get(upd.src, 0))

    def make_signal(self, opp: ArbOpportunity, trigger: PriceUpdate, recv_ns: int, now: int,
                    epoch: int = 0) -> TradingSignal:
        refs = [PriceRef(venue=u.venue, ticker=u.ticker, src=u.src, seq=u.seq, ts_origin_ns=u.ts_origin_ns,
                         ts_pub_ns=u.ts_pub_ns, ts_recv_ns=self.books[(u.venue, u.ticker)][1]) for u in opp.inputs]
        return TradingSignal(
            src="", seq=0, ts_origin_ns=trigger.ts_origin_ns, ts_detect_ns=now, signal_id=signal_id_for(opp),
            game_id=opp.game_id, legs=list(opp.legs), qty=opp.qty, gross_edge_cents=opp.gross_edge_cents,
            edge_cents=opp.edge_cents, edge_pct=opp.edge_pct, cost_cents=opp.cost_cents,
            price_latency_ms=(recv_ns - trigger.ts_pub_ns) / 1e6, inputs=refs,
            shard_id=self.cfg.shard_id if epoch else "", epoch=epoch,
        )

    def publish_signal(self, signal: TradingSignal) -> None:
        assert self.outbox is not None
        topic = signal_topic(signal.signal_id)
        self.outbox.publish(topic, signal)
        self.metrics.inc("signals_published")
        if self._limiter.allow("signal"):
            legs = " + ".join(f"buy {leg.side} {leg.venue} {leg.ticker} @{leg.limit_price:g}c" for leg in signal.legs)
            self.log.info("Detected arbitrage in %s: %s x%g, edge %.2fc net (%.3f%%), gross %.2fc", signal.game_id,
                          legs, signal.qty, signal.edge_cents, signal.edge_pct, signal.gross_edge_cents)
            self.log.info("Published signal to %s: %s", "ZMQ" if self.settings.zmq_enabled else "Redis", topic)

    def _note_edge(self, edge_pct: float) -> None:
        minute = int(time.time() // 60)
        self._edge_by_minute[minute] = max(edge_pct, self._edge_by_minute.get(minute, float("-inf")))
        if len(self._edge_by_minute) > EDGE_WINDOW_S // 60 + 1:
            for old in [m for m in self._edge_by_minute if m < minute - EDGE_WINDOW_S // 60]:
                del self._edge_by_minute[old]

    def max_edge_pct(self) -> float | None:
        """Best net edge (percent) seen on any pair in the last 10 minutes, None when no pair had a positive edge."""
        floor = int(time.time() // 60) - EDGE_WINDOW_S // 60
        recent = [v for m, v in self._edge_by_minute.items() if m >= floor]
        return round(max(recent), 4) if recent else None


def main() -> int:
    return run_main(GameShard)


if __name__ == "__main__":
    raise SystemExit(main())
