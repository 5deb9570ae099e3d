"""execution_service: signals -> IOC paper orders on both legs -> `paper_trades`, results on ZMQ PUB :5560.

Every leg is filled against the latest book this service sees for that contract (never "filled at the limit"),
up to the size at or better than the limit; the rest is cancelled (IOC). Both legs or neither, at the same size:
under `LEG_POLICY` (`services/execution_orders.py`) a leg never stays naked, or its residual is reported as an
unhedged position with its size and age; every leg miss is counted (`leg_misses`) and logged once.

A signal is executed at most once: its id is checked against everything executed before (spool +
`executed_signals`), the trades are appended to a durable local spool before the signal is acknowledged, and a
background writer moves them into PostgreSQL, so a database outage or a `kill -9` loses nothing and a redelivery
trades nothing twice. The positions the fills open (`strategy/positions.PositionBook`, stored in `positions`)
are the exposure the risk limits judge; they close when the monitors announce their market's resolution
(`markets.resolved.*`), or when position_tracker's exit signal (`positions.exit.*`) has both legs sold
(`services/execution_exits.py`), which frees the exposure. Risk rejections are counted per kind (`signals_rejected.<kind>`),
apart from errors. Run: `python -m arbees_core.services.execution_service`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.messages import (
    ExitSignal,
    MarketResolution,
    PriceUpdate,
    TradeResult,
    TradingSignal,
)
from arbees_core.services.execution_config import ExecutionConfig
from arbees_core.services.execution_exits import exit_record, exit_rejection, exit_results, held_quantities, sales
from arbees_core.services.execution_prices import PriceIntake, await_books
from arbees_core.services.execution_orders import (
    Execution,
    execute,
    legging_report,
    rejected,
    trade_results,
)
from arbees_core.services.execution_support import (
    BookCache,
    KillSwitch,
    PriceFeedThread,
    prepare_store,
    recent_resolutions,
)
from arbees_core.services.runner import Service
from arbees_core.services.runner import main as run_main
from arbees_core.services.shards import EpochFence, ShardDirectory
from arbees_core.store.positions import record_legs
from arbees_core.store.recent_ids import RecentIds
from arbees_core.store.spool import SpoolRecord, TradeSpool
from arbees_core.store.trades import TradeWriter, executed_signal_ids
from arbees_core.strategy.exits import joint_sell
from arbees_core.strategy.positions import LegPosition, PositionBook
from arbees_core.strategy.risk import Rejection, check_limits
from arbees_core.telemetry.logs import RateLimiter, fmt_ms
from arbees_core.topics import (
    EXECUTION_GROUP,
    EXECUTION_SERVICE,
    Family,
    result_topic,
)
from arbees_core.transport import (
    Delivery,
    Inbox,
    Outbox,
    Received,
    TransportSettings,
    make_subscriber,
)


class ExecutionService(Service):
    name = EXECUTION_SERVICE
    rt_scope = "process"

    def __init__(self, settings: TransportSettings, cfg: ExecutionConfig, heartbeat_interval_s: float = 1.0) -> None:
        super().__init__(settings, heartbeat_interval_s)
        self.cfg = cfg
        self.books = BookCache()
        self.positions = PositionBook()
        self.positions_known = False
        self._resolved_early: list[MarketResolution] = []  # heard while the positions were unknown
        self.kill_switch = KillSwitch(cfg.kill_switch_file, settings.redis_url)
        self.spool = TradeSpool(cfg.spool_path, fsync=cfg.spool_fsync)
        self.writer = TradeWriter(cfg.database_url, self.spool, on_reconnect=self.load_executed)
        self.executed = RecentIds(cfg.executed_ids_window_s, cfg.executed_ids_max)
        self._limiter = RateLimiter(cfg.log_sample_per_s)
        self.outbox: Outbox | None = None
        self._intake: PriceIntake | None = None  # ZMQ mode
        self._price_thread: PriceFeedThread | None = None  # Redis mode
        self.fence = EpochFence()

    @classmethod
    def from_env(cls, env: Env) -> "ExecutionService":
        return cls(TransportSettings.from_env(env), ExecutionConfig.from_env(env),
                   env.get(S.HEARTBEAT_INTERVAL_SECS))

    def extra_snapshot(self) -> dict[str, Any]:
        return {"writer": self.writer.stats(), "exposure_usd": round(self.positions.exposure_usd, 4),
                "positions": {**self.positions.summary(time.time_ns()), "known": self.positions_known},
                "leg_policy": self.cfg.leg_policy, "kill_switch": self.kill_switch.active, "books": len(self.books),
                "executed_ids": len(self.executed), "shards": self.fence.shards(),
                "games_fenced": len(self.fence.epochs)}

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        if not self.announce_mode(stop):
            return
        store = prepare_store(self.writer, self.log, self.cfg.executed_ids_window_s)
        self.executed.update(store.executed)
        last_signal_seq = store.last_seq
        if store.positions is None:
            self.writer.request_positions()  # loaded once PostgreSQL is back; nothing trades until then
        self.install_positions(store.positions)
        self.writer.start()
        self.kill_switch.start()
        self.outbox = self.open_outbox(self.cfg.port, self.cfg.endpoint)
        publisher = self.outbox.publisher
        inbox, prices, price_thread = self._open_inputs()
        if self.cfg.sharding.orchestrated:
            self.fence.start(ShardDirectory(self.cfg.database_url, self.cfg.sharding, epochs=True))
        self._price_thread = price_thread
        intake = self._intake = None if prices is None else \
            PriceIntake(prices, self.books, self.metrics, self.cfg.price_catchup_ms)
        if prices is not None:  # Redis mode reads the stream's last values through its subscriber instead
            for res in recent_resolutions(self.settings.redis_url, self.log):
                self.on_resolution(res)
        for src, seq in last_signal_seq.items():  # signals game_shard sent while we were down count as lost
            inbox.seed_sequence(src, Family.SIGNALS, seq)
        wait_ms = self.settings.block_ms if prices is None else \
            max(1, min(self.settings.block_ms, round(self.cfg.price_drain_ms)))
        try:
            while not stop.is_set():
                items = inbox.receive(wait_ms)
                queued = intake.read() if intake is not None else []  # as read, not yet decoded
                if items and intake is not None:
                    queued = intake.before_fills(items, queued)  # fills see their inputs and the latest books
                if items:
                    self.handle_batch(items, inbox)
                if intake is not None:  # then every queued price: decoded, checked, counted
                    self.take_prices(intake, queued)
                self.housekeeping()
                self.fence.follow(inbox.subscriber)
        finally:
            self.fence.close()
            if price_thread is not None:
                price_thread.close()
            if prices is not None:
                prices.subscriber.close()
            inbox.subscriber.close()
            self.kill_switch.close()
            self.writer.close(timeout_s=5.0)
            publisher.close()

    def load_executed(self, conn: psycopg.Connection) -> None:
        """PostgreSQL usable again after it was not at start: the signals executed before count for idempotency."""
        self.executed.update(executed_signal_ids(conn, self.cfg.executed_ids_window_s / 3600))

    def _open_inputs(self) -> tuple[Inbox, Inbox | None, PriceFeedThread | None]:
        """(signals, prices, price thread). ZMQ: a SUB socket for signals, which the loop waits on, and one for
        prices, which it reads on every wake-up (`execution_prices.PriceIntake`). Redis: signals through the consumer
        group on this thread, prices on a reader thread (one blocking XREAD cannot serve both)."""
        prices = [Family.PRICES_KALSHI, Family.PRICES_POLY, Family.RESOLUTIONS, Family.EXITS]
        if self.settings.zmq_enabled:
            sub = make_subscriber(self.settings, [Family.SIGNALS], self.cfg.signal_endpoints, hot_path=True)
            price_sub = make_subscriber(self.settings, prices, [*self.cfg.price_endpoints, *self.cfg.exit_endpoints])
            return (Inbox(sub, self.metrics, self.name, head_loss=(Family.SIGNALS,)),
                    Inbox(price_sub, self.metrics, f"{self.name}-prices"), None)
        # the consumer name is stable across restarts: a restarted instance reads the signals its predecessor
        # received but had not acknowledged (in flight at a kill -9) before new ones; with a per-process name
        # they stayed pending under a dead consumer and were never executed
        sub = make_subscriber(self.settings, [Family.SIGNALS], [], group=EXECUTION_GROUP, consumer=self.name)
        price_sub = make_subscriber(self.settings, prices, [], last_value=True)
        thread = PriceFeedThread(Inbox(price_sub, self.metrics, f"{self.name}-prices"), self.books, self.settings.block_ms)
        thread.start()
        return Inbox(sub, self.metrics, self.name, head_loss=(Family.SIGNALS,)), None, thread

    # -- hot path ----------------------------------------------------------------------------------------------

    def take_prices(self, intake: PriceIntake, queued: list[Delivery]) -> None:
        """ZMQ mode: every queued price into the books (`PriceIntake.take`); market resolutions settle their
        positions; exit signals sell both legs of their pair."""
        for item in intake.take(queued):
            if isinstance(item.msg, MarketResolution):
                self.on_resolution(item.msg)
            elif isinstance(item.msg, ExitSignal) and not item.replay:
                self.on_exit(item.msg, item.recv_ns)

    def await_venue(self) -> None:
        """Before an order fills: its modeled round trip to the venue (PAPER_ORDER_LATENCY_MS), the prices that
        arrive meanwhile in the books (ZMQ mode; in Redis mode the reader thread keeps them current). A live IOC
        order meets the venue's book of its arrival, not the one its signal saw; the loop blocks meanwhile, as a
        synchronous order client does. The sequential policy calls it between its two orders as well."""
        deadline = time.monotonic() + self.cfg.order_latency_ms / 1000
        if self._intake is not None:
            self._intake.read_until(deadline)
        elif self.cfg.order_latency_ms > 0:
            time.sleep(self.cfg.order_latency_ms / 1000)

    def housekeeping(self) -> None:
        """Once per loop: resolutions the Redis-mode reader queued, positions loaded late, heartbeat."""
        if self._price_thread is not None:
            while not self._price_thread.resolutions.empty():
                self.on_resolution(self._price_thread.resolutions.get_nowait())
            while not self._price_thread.exits.empty():
                self.on_exit(*self._price_thread.exits.get_nowait())
        if not self.positions_known:
            self.install_positions(self.writer.take_positions())
        if self.tick():
            self.executed.prune()  # the window's age bound holds while no signal comes too

    def handle_batch(self, items: list[Received], inbox: Inbox) -> None:
        if self._intake is None:  # Redis mode: the signals' input prices come on the reader thread
            refs = [r for i in items if isinstance(i.msg, TradingSignal) for r in i.msg.inputs]
            await_books(self.books, refs, self.cfg.price_catchup_ms, self.metrics)
        done: list[Received] = []
        for item in items:
            msg = item.msg
            if isinstance(msg, PriceUpdate):
                self.books.update(msg)
            elif isinstance(msg, TradingSignal):
                self.on_signal(msg, item.recv_ns)
                done.append(item)
        inbox.ack(done)  # only after the trades are in the durable spool

    def on_signal(self, sig: TradingSignal, recv_ns: int) -> None:
        via = "ZMQ" if self.settings.zmq_enabled else "Redis"
        signal_ns = recv_ns - sig.ts_pub_ns
        self.metrics.inc("signals_rx")
        self.metrics.latency.record_ns("signal", signal_ns)
        loud = self._limiter.allow("signal")
        if loud:
            self.log.info("Received signal via %s: %s", via, sig.signal_id)
            self.log.info("Signal latency: %s", fmt_ms(signal_ns))
        if self.executed.maybe_seen(sig.signal_id, sig.ts_detect_ns):
            self.on_seen(sig)
            return
        ex = self.execute_legs(sig, loud)
        fill_ns = time.time_ns()
        results = trade_results(sig, ex, self.settings.mode, recv_ns, fill_ns)
        record = SpoolRecord(signal_id=sig.signal_id, game_id=sig.game_id, transport=self.settings.mode,
                             executed_ns=fill_ns, results=results, edge_pct=sig.edge_pct,
                             edge_cents=sig.edge_cents, signal_src=sig.src, signal_seq=sig.seq)
        self.spool.append(record)
        self.executed.add(sig.signal_id)
        self.writer.submit(record)
        self.positions.add(record_legs(record))
        self.note_legging(sig, ex)
        self.finish(sig, results, recv_ns, fill_ns, loud)

    def on_seen(self, sig: TradingSignal) -> None:
        """A redelivered signal (in the recent window), or one older than the window (it may have been executed
        and dropped from memory since): neither trades."""
        if sig.signal_id in self.executed:
            self.metrics.inc("signals_duplicate")
            self.log.info("Duplicate signal %s ignored: already executed", sig.signal_id)
            return
        self.metrics.inc("signals_beyond_window")
        if self._limiter.allow("beyond_window"):
            self.log.warning("Signal %s ignored: detected before the executed-ids window (EXECUTED_IDS_WINDOW_S=%g), "
                             "it may have been executed already", sig.signal_id, self.cfg.executed_ids_window_s)

    def execute_legs(self, sig: TradingSignal, loud: bool) -> Execution:
        """Both legs under the leg policy, or both rejected with the reason (kill switch, expiry, limits)."""
        rejection = self.rejection(sig)
        if rejection is not None:
            self.metrics.inc("signals_rejected")
            self.metrics.inc(f"signals_rejected.{rejection.kind}")
            self.log.warning("Signal %s rejected: %s", sig.signal_id, rejection.reason)
            return rejected(sig.legs, rejection.reason)
        if loud:
            for leg in sig.legs:
                self.log.info("Placing IOC order (%s): buy %s x%g @ %gc on %s", sig.signal_id, leg.side, leg.qty,
                              leg.limit_price, leg.ticker)
        if self.cfg.order_latency_ms > 0:
            self.await_venue()  # the (first) order's round trip; the sequential policy's second waits its own
        return execute(self.cfg.leg_policy, sig.legs, lambda leg: self.books.get(leg.venue, leg.ticker),
                       self.cfg.fees, self.await_venue)

    def rejection(self, sig: TradingSignal) -> Rejection | None:
        stale = self.fence.superseded(sig)
        if stale:
            return Rejection("superseded", stale)
        if self.kill_switch.active:
            return Rejection("kill_switch", f"kill switch on ({self.kill_switch.source})")
        age_ms = (time.time_ns() - sig.ts_detect_ns) / 1e6
        if age_ms > self.cfg.signal_max_age_ms:
            return Rejection("expired", f"expired: signal is {age_ms:.0f}ms old, "
                                        f"SIGNAL_MAX_AGE_MS={self.cfg.signal_max_age_ms:g}")
        if not self.positions_known:
            return Rejection("positions_unknown", "open positions unknown (PostgreSQL was away at start); trading "
                                                  "resumes once they are loaded")
        return check_limits(sig, self.positions.exposure_usd, self.cfg.risk)

    def note_legging(self, sig: TradingSignal, ex: Execution) -> None:
        """A leg miss: counted and logged once. The invariant after every signal: the pair's legs hold equal
        quantities, or the residual is reported (one line, and the `unhedged_*` figures of the snapshot)."""
        for counter, line in legging_report(sig, self.cfg.leg_policy, ex, self.positions.residual(sig.signal_id)):
            self.metrics.inc(counter)
            self.log.warning("%s", line)

    # -- positions -------------------------------------------------------------------------------------------

    def install_positions(self, legs: list[LegPosition] | None) -> None:
        """The open positions read from the store (None: not yet), then the resolutions heard meanwhile."""
        if legs is None:
            return
        self.positions = PositionBook()
        self.positions.add(legs)
        self.positions_known = True
        early, self._resolved_early = self._resolved_early, []
        for res in early:
            self.positions.settle_market(res.venue, res.ticker, res.result, res.ts_event_ns or res.ts_origin_ns)
        self.log.info("Open positions: %d pairs, exposure $%.2f of MAX_EXPOSURE_USD=$%.2f",
                      self.positions.open_pairs, self.positions.exposure_usd,
                      self.cfg.risk.max_exposure_usd)

    def on_resolution(self, res: MarketResolution) -> None:
        """A market resolved: its book is gone for good, its open legs settle (their exposure is freed), and the
        result goes to PostgreSQL, where it settles the stored positions too."""
        if not self.books.close_market(res.venue, res.ticker):
            return  # heard before (a replay to a late joiner, or the start-up catch-up)
        self.metrics.inc("resolutions_rx")
        self.writer.submit_resolution(res)
        if not self.positions_known:
            self._resolved_early.append(res)
            return
        before = self.positions.exposure_usd
        closed = self.positions.settle_market(res.venue, res.ticker, res.result, res.ts_event_ns or res.ts_origin_ns)
        if closed:
            self.metrics.inc("positions_settled", len(closed))
            self.log.info("Settled %s %s: %s; %d position(s) closed, P&L $%.2f, exposure $%.2f -> $%.2f", res.venue,
                          res.ticker, res.result, len(closed), sum(leg.realised_pnl_cents for leg in closed) / 100,
                          before, self.positions.exposure_usd)

    def on_exit(self, ex: ExitSignal, recv_ns: int) -> None:
        """position_tracker's exit: both legs of the pair sold IOC into the books, recorded, exposure freed."""
        self.metrics.inc("exits_rx")
        if ex.exit_id in self.executed:
            self.metrics.inc("exits_duplicate")
            return
        held = held_quantities(self.positions, ex)
        why = exit_rejection(ex, held, (time.time_ns() - ex.ts_detect_ns) / 1e6, self.cfg.signal_max_age_ms,
                             self.kill_switch.source if self.kill_switch.active else "", self.positions_known)
        if why is not None or held is None:
            self.metrics.inc("exits_rejected")
            self.metrics.inc(f"exits_rejected.{why.kind if why else 'unknown_pair'}")
            self.log.warning("Exit %s of pair %s rejected: %s", ex.exit_id, ex.pair_id, why.reason if why else "")
            return
        outcomes = joint_sell(ex.legs, held, [self.books.get(leg.venue, leg.ticker) for leg in ex.legs], self.cfg.fees)
        fill_ns = time.time_ns()
        results = exit_results(ex, outcomes, self.settings.mode, recv_ns, fill_ns)
        record = exit_record(ex, results, self.settings.mode, fill_ns)
        self.spool.append(record)
        self.executed.add(ex.exit_id)
        self.writer.submit(record)
        before = self.positions.exposure_usd
        sold = self.positions.sell_legs(ex.pair_id, sales(results), fill_ns)
        assert self.outbox is not None
        self.outbox.publish_many([(result_topic(r.order_id), r) for r in results])
        self.metrics.inc("exits_executed" if sold else "exits_unfilled")
        self.log.info("Exit %s of pair %s: %s; exposure $%.2f -> $%.2f", ex.exit_id, ex.pair_id,
                      f"sold {results[0].filled_qty:g} contracts per leg, P&L ${sum(leg.realised_pnl_cents for leg in sold) / 100:.2f}"
                      if sold else f"nothing sold ({results[0].reason})", before, self.positions.exposure_usd)

    def finish(self, sig: TradingSignal, results: list[TradeResult], recv_ns: int, fill_ns: int, loud: bool) -> None:
        assert self.outbox is not None
        self.outbox.publish_many([(result_topic(r.order_id), r) for r in results])
        self.metrics.inc("signals_executed")
        self.metrics.inc("legs_filled", sum(1 for r in results if r.status in ("filled", "partial")))
        self.metrics.latency.record_ns("execution", fill_ns - recv_ns)
        self.metrics.latency.record_ns("end_to_end", fill_ns - sig.ts_origin_ns)
        if loud:
            for r in results:
                self.log.info("IOC order %s placed: %s %s (filled: %g/%g)", sig.signal_id, r.order_id, r.status,
                              r.filled_qty, r.qty)
            self.log.info("Execution latency: %s", fmt_ms(fill_ns - recv_ns))
            self.log.info("End-to-end latency: %s", fmt_ms(fill_ns - sig.ts_origin_ns))


def main() -> int:
    return run_main(ExecutionService)


if __name__ == "__main__":
    raise SystemExit(main())
