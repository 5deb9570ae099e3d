"""Game shards: prices/s evaluated with 0 lost against the number of shards and of games, each shard's CPU per
price, and the failover time.

`arbees bench --shards 1,2,4 [--games 4,50,400] [--rates 1000,2000,4000,8000] [--duration 5] [--json]`

Per (shards, games): discovery maps the simulator's games, the orchestrator spreads them over the shards
(MAX_GAMES_PER_SHARD high enough for all), then the replay publisher (`throughput.py`: the simulator's own updates
through the monitors' Outbox) steps the rate up. Each shard subscribes to the markets of the games it holds (ZMQ
mode, SHARD_FEED=held: `services/shards.py` ShardFeed), so every price reaches exactly one shard. A step is held
when the shards
together received every price sent (none lost), kept up (98 % within 1.5 s of the last send) and the publisher
kept the rate. CPU per price: during the highest held step, the shards' CPU time over the prices sent (all shards),
and each shard's over the prices it received. Failover (2 shards or more, `shard_failover.py`): kill -9 of one
shard to the first signal of one of its games from another, SHARD_DEAD_S at its default. ZMQ mode, normal
scheduling.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from arbees_core import settings as S
from arbees_core.bench.pipeline import bench_env, reset_streams
from arbees_core.bench.shard_failover import measure_failover
from arbees_core.bench.throughput import KEEP_UP_GRACE_S, ReplayPublisher
from arbees_core.registry import shard_names
from arbees_core.runtime.ports import free_port_block
from arbees_core.harness import ProcessStack, wait_for


#: Wait after every shard has subscribed, before the first step.
SUBSCRIBE_SETTLE_S = 2.0


@dataclass
class ShardRow:
    """shard_cpu_us: each shard's CPU per price it received (us) at the highest held step, shard_share: the
    share of the prices each received; failover_s: kill -9 to a moved game's first signal (None: one shard)."""

    shards: int
    games: int
    max_rate: float
    cpu_us_per_price: float | None
    lost_at_next: int
    steps: list[tuple[float, bool, int]]
    shard_cpu_us: list[float | None] = field(default_factory=list)
    shard_share: list[float] = field(default_factory=list)
    failover_s: float | None = None


@dataclass
class StepResult:
    held: bool
    lost: int
    cpu_us: float
    shard_cpu_us: list[float | None]
    shard_share: list[float]


def _start(stack: ProcessStack, count: int, games: int, base: int) -> list[str]:
    stack.start("market_discovery")
    wait_for(lambda: "Discovery: mapped" in stack.log("market_discovery"), 120, "discovery mapped games", stack)
    names = shard_names(count)
    for k, name in enumerate(names, start=1):
        stack.start(name, SHARD_ID=str(k), ZMQ_PUB_PORT=str(base + k))
    for name in names:  # all registered before the first round: the games are spread once, not moved
        wait_for(lambda n=name: "registered at epoch" in stack.log(n), 120, f"{name} registered", stack)
    stack.start("orchestrator")
    wait_for(lambda: sum(int(stack.metrics(n).get("games_held") or 0) for n in names) >= games, 120,
             "every game held by a shard", stack)
    wait_for(lambda: all(stack.metrics(n).get("markets_followed") for n in names), 60, "every shard subscribed",
             stack)
    # The replay starts at the first subscription it sees; a shard's one per market (1 600 at 400 games) reach it
    # one by one, and a price sent before its market's has arrived is dropped by the publisher, not lost on the way.
    time.sleep(SUBSCRIBE_SETTLE_S)
    return names


def _cpu_s(stack: ProcessStack, name: str) -> float:
    times = psutil.Process(stack.procs[name].pid).cpu_times()
    return times.user + times.system


def _rx(stack: ProcessStack, names: list[str], before: dict[str, dict], key: str = "prices_rx") -> dict[str, int]:
    return {n: stack.counter(n, key) - int(before[n].get(key, 0)) for n in names}


def _step(stack: ProcessStack, names: list[str], pub: ReplayPublisher, rate: float, hold_s: float) -> StepResult:
    before = {n: stack.metrics(n).get("counters", {}) for n in names}
    cpu0 = {n: _cpu_s(stack, n) for n in names}
    done = pub.step(rate, hold_s, None)
    sent = int(done["sent"])
    time.sleep(max(0.0, float(done["last_send"]) + KEEP_UP_GRACE_S - time.monotonic()))
    kept = sum(_rx(stack, names, before).values()) >= 0.98 * sent
    cpu = {n: _cpu_s(stack, n) - cpu0[n] for n in names}
    time.sleep(1.0)
    rx = _rx(stack, names, before)
    lost = sum(_rx(stack, names, before, "lost").values()) + max(0, sent - sum(rx.values()))
    achieved = sent / max(1e-9, float(done["elapsed"]))
    return StepResult(held=lost == 0 and kept and achieved >= 0.95 * rate, lost=lost,
                      cpu_us=sum(cpu.values()) / max(1, sent) * 1e6,
                      shard_cpu_us=[round(cpu[n] / rx[n] * 1e6, 1) if rx[n] else None for n in names],
                      shard_share=[round(rx[n] / max(1, sent), 3) for n in names])


def measure(count: int, games: int, rates: list[float], hold_s: float, redis_url: str, database_url: str,
            folder: Path) -> ShardRow:
    shutil.rmtree(folder, ignore_errors=True)  # an earlier run's metrics files would read as this run's counters
    folder.mkdir(parents=True, exist_ok=True)
    reset_streams(redis_url)
    env = bench_env(True, 1000.0, redis_url, database_url, folder)
    env.update({"SIM_GAMES": str(games), "GAME_ASSIGNMENT": "orchestrator", "SHARD_FEED": "held",
                "MAX_GAMES_PER_SHARD": str(games),
                "ASSIGNMENT_POLL_MS": "100", "ORCHESTRATOR_INTERVAL_MS": "100"})
    base = free_port_block(8)
    stack = ProcessStack(folder, env)
    pub: ReplayPublisher | None = ReplayPublisher(env)
    row = ShardRow(count, games, 0.0, None, 0, [])
    try:
        names = _start(stack, count, games, base)
        for rate in rates:
            step = _step(stack, names, pub, rate, hold_s)  # type: ignore[arg-type]
            row.steps.append((rate, step.held, step.lost))
            if not step.held:
                row.lost_at_next = step.lost
                break
            row.max_rate, row.cpu_us_per_price = rate, round(step.cpu_us, 1)
            row.shard_cpu_us, row.shard_share = step.shard_cpu_us, step.shard_share
        pub.close()  # type: ignore[union-attr]
        pub = None  # the failover binds the monitors' ports itself
        if count > 1:
            row.failover_s = measure_failover(stack, names, [base + k for k in range(1, count + 1)],
                                              S.SHARD_DEAD_S.default)
    finally:
        if pub is not None:
            pub.close()
        stack.stop_all()
    return row


def _fresh_db(server_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def measure_all(shards: list[int], games: list[int], rates: list[float], hold_s: float, redis_url: str,
                server_url: str, folder: Path, say: Callable[[str], None]) -> list[ShardRow]:
    """One row per (games, shards), each on a fresh database on `server_url`'s server; `say` gets a line per row."""
    rows = []
    for game_count in games:
        for count in shards:
            db = _fresh_db(server_url, f"arbees_bench_shards_{count}_{game_count}")
            row = measure(count, game_count, rates, hold_s, redis_url, db, folder / f"{count}-{game_count}")
            rows.append(row)
            say(f"shards={count} games={game_count}: {row.max_rate:g} prices/s held with 0 lost, "
                f"{row.cpu_us_per_price} us CPU per price (all shards; each: {row.shard_cpu_us}, shares "
                f"{row.shard_share}), failover {row.failover_s} s, steps {row.steps}")
    return rows
