"""Throughput: the highest price-update rate held for N seconds with zero sequence gaps, stepping the rate up.

Paths: monitor -> game_shard (ZMQ and Redis mode) and ZMQ -> zmq_listener -> Redis streams (the mirror).
The monitors are replaced by a replay publisher: the simulator's own price updates (real tickers, so game_shard
maps and evaluates every one) built once, then published through the production `Outbox` (sequence numbers,
`ts_pub_ns`, JSON) at a fixed rate. A live simulator could not be the load: building its venue messages costs
~90 us per Kalshi update in Python, so the monitors saturate a core long before the hop does.
A step is held when the receiver counted no sequence gap, received everything that was sent, kept up (98 % counted
within 1.5 s of the last send) and the publisher kept the rate. Each step also yields the receiving service's latency histogram at that rate.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbees_core.harness import ProcessStack, wait_for
from arbees_core.bench.common import HopRow, row_from_histogram, sleep_reporting, window_histogram
from arbees_core.bench.pipeline import SIM_GAMES, bench_env, reset_streams

#: path -> (service that receives, its received counter, its latency histogram)
PATHS = {"monitor->game_shard": ("game_shard", "prices_rx", "price"),
         "mirror": ("zmq_listener", "mirrored", "mirror")}
TICK_S = 0.001
#: A held rate is one the receiver keeps up with: within this long after the last send it has counted 98 % of
#: what was sent (a backlog that only drains afterwards would, over a longer hold, overflow the HWM or MAXLEN).
#: 1.5 s is what the check always allowed: it used to start 1 s after a publisher that lingered 0.5 s had exited.
KEEP_UP_GRACE_S = 1.5

Progress = Callable[[float], None]


@dataclass
class Step:
    rate: float
    sent: int
    received: int
    lost: int
    achieved_rate: float
    held: bool
    row: HopRow | None = None


@dataclass
class ThroughputResult:
    path: str
    mode: str
    max_rate: float
    lost: int
    steps: list[Step] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "mode": self.mode, "max_rate": self.max_rate, "lost": self.lost}


@functools.lru_cache(maxsize=2)
def build_updates(seed: int, games: int, per_venue: int = 3000) -> list[Any]:
    """The simulator's top-of-book changes as price updates, both venues interleaved. Built once per run (about a
    second of simulation) and handed to each throughput path's publisher, which only stamps and sends them."""
    from arbees_core.messages import PriceUpdate
    from arbees_core.venues.kalshi.feed import KalshiFeed
    from arbees_core.venues.polymarket.feed import PolymarketFeed
    from arbees_core.venues.sim import SimConfig, SimVenue

    by_venue: list[list[PriceUpdate]] = []
    for venue, feed in (("kalshi", KalshiFeed()), ("polymarket", PolymarketFeed())):
        sim = SimVenue(venue, SimConfig(seed=seed, games=games, mispricing_every_s=0))
        out: list[PriceUpdate] = []
        for raw in sim.burst(per_venue * 5):
            for c in feed.handle(raw, time.time_ns()):
                t = c.top
                out.append(PriceUpdate(src="", seq=0, ts_origin_ns=time.time_ns(), venue=venue, ticker=c.ticker,
                                       game_id="", outcome="", yes_bid=t.yes_bid, yes_bid_size=t.yes_bid_size,
                                       yes_ask=t.yes_ask, yes_ask_size=t.yes_ask_size, no_bid=t.no_bid,
                                       no_bid_size=t.no_bid_size, no_ask=t.no_ask, no_ask_size=t.no_ask_size))
        by_venue.append(out[:per_venue])
    return [u for pair in zip(*by_venue) for u in pair]


def _generator(env: dict[str, str], updates: list[Any], commands: Any, out: Any) -> None:
    """Child process: bind the monitors' endpoints, then per command `(rate, hold_s)` publish `updates` (cycled,
    continuing where the last step stopped, so sequence numbers run on) at `rate`/s for `hold_s` through the
    monitors' Outbox; `None` ends it."""
    import os

    os.environ.update(env)
    from arbees_core.topics import price_topic
    from arbees_core.transport import Outbox, TransportSettings, make_publisher

    settings = TransportSettings.from_env()
    outboxes: dict[str, Outbox] = {}
    for venue, port in (("kalshi", env["_PORT_kalshi_monitor"]), ("polymarket", env["_PORT_polymarket_monitor"])):
        outboxes[venue] = Outbox(make_publisher(settings, int(port)), f"bench_replay.{venue}.{os.getpid()}",
                                 settings.wire)
    items = [(u.venue, price_topic(u.venue, u.ticker), u) for u in updates]
    waiting = set(outboxes) if settings.zmq_enabled else set()
    position, n = 0, len(items)
    while (command := commands.get()) is not None:
        rate, hold_s = command
        deadline = time.monotonic() + 20
        while waiting and time.monotonic() < deadline:  # no slow-joiner loss counted against the hop
            waiting = {v for v in waiting if not outboxes[v].publisher.new_subscriptions()}
            time.sleep(0.01)
        out.put({"ready": True})
        sent, total = 0, int(rate * hold_s)
        t0 = time.perf_counter()
        while sent < total:
            due = min(total, int((time.perf_counter() - t0) * rate) + 1)
            if due <= sent:
                time.sleep(TICK_S / 2)
                continue
            batch: dict[str, list[Any]] = {"kalshi": [], "polymarket": []}
            for _ in range(min(due - sent, 2000)):
                venue, topic, upd = items[position % n]
                batch[venue].append((topic, upd))
                position += 1
                sent += 1
            for venue, b in batch.items():
                outboxes[venue].publish_many(b)
        elapsed = time.perf_counter() - t0
        out.put({"sent": sent, "elapsed": elapsed, "last_send": time.monotonic()})  # CLOCK_MONOTONIC: the parent's
    for ob in outboxes.values():
        ob.publisher.close()


class ReplayPublisher:
    """The publisher process of one throughput run. Started before the receiving service, so the receiver
    connects at its first attempt (not after a reconnect backoff), and kept for every step (one process start
    and one connection per run, not per step)."""

    def __init__(self, env: dict[str, str]) -> None:
        ctx = mp.get_context("spawn")
        self.commands, self.out = ctx.Queue(), ctx.Queue()
        updates = build_updates(int(env["SIM_SEED"]), int(env["SIM_GAMES"]))
        self.proc = ctx.Process(target=_generator, args=(env, updates, self.commands, self.out), daemon=True)
        self.proc.start()

    def step(self, rate: float, hold_s: float, progress: Progress | None) -> dict[str, Any]:
        """Publish at `rate` for `hold_s`; returns what was sent (`sent`, `elapsed`, `last_send`)."""
        self.commands.put((rate, hold_s))
        self.out.get(timeout=60)  # ready: every receiver subscribed
        sleep_reporting(hold_s, progress)
        return self.out.get(timeout=hold_s + 60)

    def close(self) -> None:
        self.commands.put(None)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()


def _counter(stack: ProcessStack, service: str, name: str) -> int:
    return stack.counter(service, name)


def run_step(stack: ProcessStack, publisher: ReplayPublisher, path: str, rate: float, hold_s: float,
             progress: Progress | None) -> Step:
    service, rx_name, hist_name = PATHS[path]
    before = stack.metrics(service)
    done = publisher.step(rate, hold_s, progress)
    sent = int(done["sent"])
    start_rx = int(before.get("counters", {}).get(rx_name, 0))
    time.sleep(max(0.0, float(done["last_send"]) + KEEP_UP_GRACE_S - time.monotonic()))
    kept_up = _counter(stack, service, rx_name) - start_rx >= 0.98 * sent
    _wait_drained(stack, service, rx_name, start_rx + sent)
    after = stack.metrics(service)
    c0, c1 = before.get("counters", {}), after.get("counters", {})
    received = int(c1.get(rx_name, 0)) - start_rx
    gaps = int(c1.get("lost", 0)) - int(c0.get("lost", 0)) + int(c1.get("mirror_dropped", 0)) - int(c0.get("mirror_dropped", 0))
    lost = gaps + max(0, sent - received)
    achieved = sent / max(1e-9, float(done["elapsed"]))
    hist = window_histogram(before.get("latency", {}).get(hist_name, {}).get("hdr"),
                            after.get("latency", {}).get(hist_name, {}).get("hdr"))
    row = row_from_histogram(f"{hist_name}@replay", stack.env["ZMQ_ENABLED"] == "true" and "zmq" or "redis", rate,
                             hist, lost)
    return Step(rate, sent, received, lost, achieved, lost == 0 and kept_up and achieved >= 0.95 * rate, row)


def _wait_drained(stack: ProcessStack, service: str, rx_name: str, target: int, timeout_s: float = 15.0) -> None:
    """Until the receiver has counted `target` (or stopped counting for 2 s), so a backlog is not called loss."""
    deadline = time.monotonic() + timeout_s
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_rx = _counter(stack, service, rx_name)
        if now_rx >= target:
            time.sleep(0.6)  # one more heartbeat, so the snapshot's histogram covers the tail too
            return
        if now_rx != last:
            last, still_since = now_rx, time.monotonic()
        elif time.monotonic() - still_since > 2.0:
            return
        time.sleep(0.1)


def run_throughput(path: str, zmq_mode: bool, rates: list[float], hold_s: float, redis_url: str,
                   database_url: str, folder: Path, progress: Progress | None = None) -> ThroughputResult:
    """Step through `rates` (ascending) until one is not held; the result is the last rate held."""
    mode = "zmq" if zmq_mode else "redis"
    folder.mkdir(parents=True, exist_ok=True)
    reset_streams(redis_url)
    env = bench_env(zmq_mode, 1000.0, redis_url, database_url, folder)
    env["SIM_GAMES"] = str(SIM_GAMES)
    stack = ProcessStack(folder, env)
    service, _, _ = PATHS[path]
    result = ThroughputResult(path, mode, 0.0, 0)
    publisher = ReplayPublisher(env)  # binds the monitors' endpoints while discovery starts
    try:
        stack.start("market_discovery")
        wait_for(lambda: "Discovery: mapped" in stack.log("market_discovery"), 60, "discovery mapped games", stack)
        if service == "game_shard":
            stack.start("game_shard", ZMQ_PUB_PORT=env["_PORT_game_shard"])
            wait_for(lambda: "Loaded market mapping" in stack.log("game_shard"), 60, "game_shard mapping", stack)
        else:
            stack.start("zmq_listener")
        wait_for(lambda: stack.metrics(service), 30, f"{service} metrics", stack)
        for rate in rates:
            step = run_step(stack, publisher, path, rate, hold_s, progress)
            result.steps.append(step)
            if not step.held:
                result.lost = step.lost
                break
            result.max_rate = rate
    finally:
        publisher.close()
        stack.stop_all()
    return result
