"""What execution_service and game_shard keep per signal, market and feed stays at its bound, however many pass.

Both services run in process (their own code paths: `on_signal`, `on_resolution`, `handle_batch`, `prune`) over
thousands of signals on games that end one after another, as a long soak would see them. execution_service's
trades go through its spool into a real PostgreSQL; its results and game_shard's signals go to a publisher that
only counts (what a socket would carry is not what is under test). Time passing is given to the pruning code as an
argument, never waited for.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import psycopg

from arbees_core.config import Env
from arbees_core.messages import Heartbeat, Leg, MarketResolution, PriceUpdate, TradingSignal
from arbees_core.polling import eventually
from arbees_core.services.execution_service import ExecutionConfig, ExecutionService
from arbees_core.services.execution_support import prepare_store
from arbees_core.services.game_shard import GameShard, GameShardConfig
from arbees_core.store.mapping_cache import BOOK_RETAIN_S
from arbees_core.store.recent_ids import RecentIds
from arbees_core.transport import Outbox, Received, TransportSettings
from arbees_core.transport.base import Delivery, Publisher
from arbees_core.venues.listing import GameMapping, OutcomePair

SIGNALS_PER_GAME = 5


class _CountingPublisher(Publisher):
    def __init__(self) -> None:
        self.sent = 0
        self.signals = 0

    def send(self, topic: str, payload: bytes) -> None:
        self.sent += 1
        self.signals += topic.startswith("signals.trade.")

    def close(self) -> None:
        pass


def _markets(game: int) -> tuple[str, str]:
    return f"KXNBAGAME-26NOV24G{game:05d}-BOS", f"{9_000_000 + game}"


def _price(venue: str, ticker: str, src: str = "", **quote: float) -> PriceUpdate:
    now = time.time_ns()
    return PriceUpdate(src=src or f"{venue}_monitor.1", seq=0, ts_origin_ns=now, ts_pub_ns=now, venue=venue,  # type: ignore[arg-type]
                       ticker=ticker, game_id="", outcome="BOS", **quote)


def _signal(n: int, game: int, epoch: int = 0) -> TradingSignal:
    kalshi, poly = _markets(game)
    now = time.time_ns()
    return TradingSignal(src="game_shard.test", seq=n + 1, ts_origin_ns=now, ts_detect_ns=now,
                         signal_id=f"arb-{n:08x}", game_id=f"G{game}", shard_id="s1" if epoch else "", epoch=epoch,
                         legs=[Leg(venue="kalshi", ticker=kalshi, side="yes", limit_price=40.0, qty=5.0),
                               Leg(venue="polymarket", ticker=poly, side="no", limit_price=55.0, qty=5.0)],
                         qty=5.0, gross_edge_cents=5.0, edge_cents=3.0, edge_pct=3.1, cost_cents=97.0)


def _execution(tmp_path: Path, database_url: str, redis_url: str, max_ids: int) -> tuple[ExecutionService, _CountingPublisher]:
    env = Env({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SPOOL_PATH": str(tmp_path / "spool.jsonl"),
               "KILL_SWITCH_FILE": str(tmp_path / "kill_switch"), "MAX_EXPOSURE_USD": "1000000",
               "EXECUTED_IDS_MAX": str(max_ids), "LOG_SAMPLE_PER_SEC": "1"})
    svc = ExecutionService(TransportSettings(redis_url=redis_url), ExecutionConfig.from_env(env))
    store = prepare_store(svc.writer, logging.getLogger("test"), svc.cfg.executed_ids_window_s)
    svc.executed.update(store.executed)
    svc.install_positions(store.positions)
    svc.writer.start()
    pub = _CountingPublisher()
    svc.outbox = Outbox(pub, "execution_service.test", "json", svc.metrics)
    return svc, pub


def test_execution_keeps_a_bounded_window_of_ids_books_and_positions_over_thousands_of_signals(
        tmp_path: Path, state_dir: Path, database_url: str, redis_url: str) -> None:
    signals, max_ids = 3000, 200
    svc, _ = _execution(tmp_path, database_url, redis_url, max_ids)
    try:
        for n in range(signals):
            game = n // SIGNALS_PER_GAME
            kalshi, poly = _markets(game)
            svc.books.update(_price("kalshi", kalshi, yes_ask=40.0, yes_ask_size=500.0))
            svc.books.update(_price("polymarket", poly, no_ask=55.0, no_ask_size=500.0))
            svc.on_signal(_signal(n, game, epoch=1 + game % 3), time.time_ns())  # from a sharded stack: fenced
            if n % SIGNALS_PER_GAME == SIGNALS_PER_GAME - 1:  # the game ends: both markets resolve
                for venue, ticker in (("kalshi", kalshi), ("polymarket", poly)):
                    svc.on_resolution(MarketResolution(src="m", seq=0, ts_origin_ns=time.time_ns(), venue=venue,  # type: ignore[arg-type]
                                                       ticker=ticker, result="yes"))  # type: ignore[arg-type]
                # ... and leaves the assignments; the fence's keep time passes (given, not waited for)
                svc.fence.prune({}, time.monotonic() + svc.fence.keep_s + 1)
            assert len(svc.fence.epochs) <= 1 and len(svc.fence._heard) <= 1
            assert len(svc.executed) <= max_ids
            assert len(svc.books) <= 2 and svc.positions.open_pairs <= SIGNALS_PER_GAME
            assert len(svc.positions._open_by_market) <= 2
        c = svc.metrics.counters
        assert c["signals_executed"] == signals and c["legs_filled"] == 2 * signals
        assert len(svc.executed) == max_ids and svc.positions.open_pairs == 0

        svc.on_signal(_signal(signals - 1, (signals - 1) // SIGNALS_PER_GAME, epoch=1), time.time_ns())  # redelivered
        first = _signal(0, 0)
        first.ts_detect_ns = first.ts_origin_ns = svc.executed.horizon_ns  # an old one, out of the window by now
        svc.on_signal(first, time.time_ns())
        assert c["signals_duplicate"] == 1 and c["signals_beyond_window"] == 1 and c["signals_executed"] == signals

        def stored() -> int:
            with psycopg.connect(database_url) as conn:
                return conn.execute("SELECT count(*) FROM executed_signals").fetchone()[0]  # type: ignore[index]
        eventually(lambda: stored() == signals, timeout=120, what="every executed signal in PostgreSQL, once")
    finally:
        svc.writer.close(timeout_s=5.0)


def test_recent_ids_bound_by_age_and_count_and_say_what_they_cannot_know() -> None:
    clock = [1_000]
    ids = RecentIds(window_s=10, capacity=3, clock_ns=lambda: clock[0])
    for i in range(5):
        ids.add(f"s{i}")
        clock[0] += 1
    assert len(ids) == 3 and "s0" not in ids and "s4" in ids
    assert ids.maybe_seen("s1", detected_ns=500) and not ids.maybe_seen("new", detected_ns=clock[0])
    clock[0] += 11 * 10**9
    assert ids.prune() == 3 and len(ids) == 0 and ids.horizon_ns == 1_004


def _game(g: int) -> GameMapping:
    kalshi, poly = _markets(g)
    return GameMapping(game_id=f"G{g}", league="NBA", start_date="2026-11-24", away="MIA", home="BOS",
                       pairs=(OutcomePair("BOS", kalshi, poly),))


def test_game_shard_forgets_ended_games_cooldowns_and_gone_feeds_over_thousands_of_signals() -> None:
    games = 1000
    shard = GameShard(TransportSettings(), GameShardConfig.from_env(Env({"MIN_EDGE_PCT": "0.5",
                                                                        "GAME_COOLDOWN_MS": "0"})))
    pub = _CountingPublisher()
    shard.outbox = Outbox(pub, "game_shard.test", "json", shard.metrics)
    later_ns = 0
    for g in range(games):
        shard.mapping._install([_game(g)])  # discovery's refresh: the ended game left, the next one came
        kalshi, poly = _markets(g)
        src = f"kalshi_monitor.{g}"  # a monitor restarted: a feed of its own
        hb = Heartbeat(src=src, seq=1, service="kalshi_monitor", feed_live_ns=time.time_ns())
        batch = [hb, _price("polymarket", poly, yes_bid=50.0, yes_ask=52.0, no_bid=48.0, no_ask=50.0,
                            no_ask_size=100.0)]
        for i in range(SIGNALS_PER_GAME):
            batch.append(_price("kalshi", kalshi, src=src, yes_bid=38.0, yes_ask=40.0 - i / 10, yes_ask_size=100.0,
                                no_bid=60.0, no_ask=62.0))
            shard.handle_batch([Received(topic="", msg=m, recv_ns=time.time_ns(), replay=False,
                                         delivery=Delivery("", b"", 0)) for m in batch])
            batch = []
        later_ns = time.time_ns() + int((BOOK_RETAIN_S + 1) * 1e9)  # as if the retention had passed
        shard._next_prune = 0.0
        shard.prune(later_ns)
        assert len(shard.books) <= 2 and len(shard.cooldown) <= 1 and len(shard.feed_live) <= 1
    assert pub.signals == games * SIGNALS_PER_GAME
    assert shard.metrics.counters["books_pruned"] == 2 * (games - 1)


def test_latency_histograms_hold_fixed_memory_over_many_distinct_values_and_keep_hdr_percentiles() -> None:
    from hdrh.histogram import HdrHistogram

    from arbees_core.telemetry import metrics

    def module_state() -> list[int]:  # what the module keeps beside the histograms
        return [len(v) for v in vars(metrics).values() if isinstance(v, (dict, list, set))]

    hists, plain = metrics.LatencyHistograms(), HdrHistogram(1, 60_000_000, 3)
    before = module_state()
    for n in range(20_000):
        value_us = 1 + (n * 7919) % 5_000_000  # every sample in a bucket of its own, for a long while
        hists.record_ns("end_to_end", value_us * 1000)
        plain.record_value(value_us)
        if n % 2000 == 1999:
            summary = hists.summary()["end_to_end"]
            assert not hists._pending["end_to_end"] and module_state() == before
    assert len(hists._blocks["end_to_end"]) <= 18  # the per-hop state beside HDR's own fixed counts array
    assert [summary[f"p{p}_us"] for p in (50, 95, 99)] == [plain.get_value_at_percentile(p) for p in (50, 95, 99)]


def test_topic_families_are_found_with_nothing_kept_per_topic() -> None:
    """`family_of` runs on every message; it keeps no state per topic, so markets that come and go (a game's
    markets every few minutes) leave nothing behind, and it answers as a prefix match over the families does."""
    from arbees_core import topics
    from arbees_core.topics import Family, family_of, price_topic

    state = {k: v for k, v in vars(topics).items() if isinstance(v, (dict, list, set))}
    sizes = {k: len(v) for k, v in state.items()}
    for n in range(20_000):
        assert family_of(f"signals.trade.arb-{n:016x}") is Family.SIGNALS
        assert family_of(f"trades.result.arb-{n:016x}-{n % 2}") is Family.RESULTS
        assert family_of(f"markets.resolved.kalshi.K-{n}") is Family.RESOLUTIONS
        assert family_of(price_topic("kalshi", f"K-{n}")) is Family.PRICES_KALSHI
        assert family_of(price_topic("polymarket", f"0x{n:x}.{n}")) is Family.PRICES_POLY
    assert {k: len(v) for k, v in state.items()} == sizes
    for topic in ("heartbeat.api", "positions.pair.p", "positions.exit.p", "prices.kalshi", "prices.kalshiX.a",
                  "prices..a", "heartbeat", "", ".", "trades.results.x"):
        expected = next((f for f in Family if topic.startswith(f.value)), None)
        assert family_of(topic) is expected, topic


def test_execution_remembers_resolved_markets_for_a_while_not_for_ever() -> None:
    """A resolved market stays closed (a late price books nothing, a second resolution is no news) for
    CLOSED_MARKETS_KEEP_S; games resolving all day leave no more than that window's markets behind."""
    from arbees_core.services.execution_support import CLOSED_MARKETS_KEEP_S, BookCache

    books, t = BookCache(), 1000.0
    for game in range(5000):
        kalshi, _ = _markets(game)
        books.update(_price("kalshi", kalshi, yes_ask=40.0, yes_ask_size=5.0))
        assert books.close_market("kalshi", kalshi, now=t)
        assert not books.close_market("kalshi", kalshi, now=t + 1)  # heard twice: handled once
        books.update(_price("kalshi", kalshi, yes_ask=41.0, yes_ask_size=5.0))  # late: not booked
        assert books.get("kalshi", kalshi) is None and len(books) == 0
        t += 30.0  # a market resolving every 30 s
        assert books.closed <= CLOSED_MARKETS_KEEP_S / 30 + 1


def test_a_monitor_keeps_per_market_state_for_open_markets_only_over_many_game_generations() -> None:
    """Every game's markets are priced, then resolve, and the next generation opens with new tickers (a long
    day at the simulator's pace): the publisher's last values and `topic_seq` counters, and the Kalshi feed's
    subscription sequence numbers, stay at the open markets, not at every market ever priced."""
    from arbees_core.services.kalshi_monitor import KalshiMonitor
    from arbees_core.venues.book import BookChange, TopOfBook
    from arbees_core.venues.kalshi.parsing import MarketResult, Snapshot
    from arbees_core.venues.resolution import Resolution

    monitor = KalshiMonitor.from_env(Env({"KALSHI_SOURCE": "sim"}))
    monitor.outbox = Outbox(_CountingPublisher(), "kalshi_monitor.test", "json", monitor.metrics)
    open_per_generation = 8
    for generation in range(300):
        tickers = [f"KXNBAGAME-26NOV24G{generation:03d}{k}-BOS" for k in range(open_per_generation)]
        now = time.time_ns()
        for i, ticker in enumerate(tickers):
            monitor.feed.apply(Snapshot(ticker=ticker, sid=generation * 10 + i, seq=1, venue_seq=1, yes=[(40.0, 10.0)],
                                        no=[(55.0, 10.0)]), _ReadStub())
        monitor.publish_changes([BookChange(t, TopOfBook(yes_bid=40.0, yes_bid_size=10.0), 1, now) for t in tickers],
                                now)
        for ticker in tickers:
            monitor.feed.apply(MarketResult(ticker=ticker, result="yes", ts_event_ns=now), _ReadStub())
        monitor.publish_resolutions([Resolution(t, "yes", now) for t in tickers], now)
    outbox = monitor.outbox
    price_topics = [t for t in outbox._last_value if t.startswith("prices.")]  # noqa: SLF001 - the bound under test
    assert price_topics == [] and outbox._topic_seq == {}  # noqa: SLF001
    assert monitor.feed.books == {} and monitor.feed._last_seq == {} and monitor.feed._sid_of == {}  # noqa: SLF001
    assert len(monitor.feed.take_resolutions()) == 300 * open_per_generation


class _ReadStub:
    def snapshot(self, *args: object) -> None:
        pass

    def changing(self, *args: object) -> None:
        pass
