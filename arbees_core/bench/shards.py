"""Game shards: prices/s evaluated with 0 lost against the number of shards and of games, CPU per price.

`arbees bench --shards 1,2,4 [--games 4,50,400] [--rates 1000,2000,4000,8000] [--duration 5] [--json]`

Per (shards, games): discovery maps the simulator's games, the orchestrator spreads them over the shards
(MAX_GAMES_PER_SHARD high enough for all), then the replay publisher (`throughput.py`: the simulator's own updates
through the monitors' Outbox) steps the rate up. A step is held when every shard received every price with no
sequence gap and kept up (98 % within 1.5 s of the last send), as for the single-shard throughput rows. Each price
is evaluated by the one shard that holds its game; every shard still receives (and decodes) every price, so the
figure shows what splitting the evaluation buys, not a split of the feed. CPU per price: the shards' CPU time
during the highest held step over the prices sent (us). ZMQ mode, normal scheduling.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from arbees_core.registry import shard_names
from arbees_core.harness import ProcessStack, wait_for
from arbees_core.runtime.ports import free_port_block
from arbees_core.bench.pipeline import bench_env, reset_streams
from arbees_core.bench.throughput import KEEP_UP_GRACE_S, ReplayPublisher


@dataclass
class ShardRow:
    shards: int
    games: int
    max_rate: float
    cpu_us_per_price: float | None
    lost_at_next: int
    steps: list[tuple[float, bool, int]]


def _start(stack: ProcessStack, count: int, games: int, base: int) -> list[str]:
    stack.start("market_discovery")
    wait_for(lambda: "Discovery: mapped" in stack.log("market_discovery"), 120, "discovery mapped games", stack)
    names = shard_names(count)
    for k, name in enumerate(names, start=1):
        stack.start(name, SHARD_ID=str(k), ZMQ_PUB_PORT=str(base + k))
    stack.start("orchestrator")
    wait_for(lambda: sum(int(stack.metrics(n).get("games_held") or 0) for n in names) >= games, 120,
             "every game held by a shard", stack)
    return names


def _step(stack: ProcessStack, names: list[str], pub: ReplayPublisher, rate: float, hold_s: float) -> tuple[bool, int, float]:
    before = {n: stack.metrics(n).get("counters", {}) for n in names}
    cpu0 = sum(psutil.Process(stack.procs[n].pid).cpu_times().user + psutil.Process(stack.procs[n].pid).cpu_times().system
               for n in names)
    done = pub.step(rate, hold_s, None)
    cpu1 = sum(psutil.Process(stack.procs[n].pid).cpu_times().user + psutil.Process(stack.procs[n].pid).cpu_times().system
               for n in names)
    sent = int(done["sent"])
    time.sleep(max(0.0, float(done["last_send"]) + KEEP_UP_GRACE_S - time.monotonic()))
    kept = all(stack.counter(n, "prices_rx") - int(before[n].get("prices_rx", 0)) >= 0.98 * sent for n in names)
    time.sleep(1.0)
    lost = 0
    for n in names:
        c = stack.metrics(n).get("counters", {})
        rx = int(c.get("prices_rx", 0)) - int(before[n].get("prices_rx", 0))
        lost += int(c.get("lost", 0)) - int(before[n].get("lost", 0)) + max(0, sent - rx)
    achieved = sent / max(1e-9, float(done["elapsed"]))
    held = lost == 0 and kept and achieved >= 0.95 * rate
    return held, lost, (cpu1 - cpu0) / max(1, sent) * 1e6


def measure(count: int, games: int, rates: list[float], hold_s: float, redis_url: str, database_url: str,
            folder: Path) -> ShardRow:
    shutil.rmtree(folder, ignore_errors=True)  # an earlier run's metrics files would read as this run's counters
    folder.mkdir(parents=True, exist_ok=True)
    reset_streams(redis_url)
    env = bench_env(True, 1000.0, redis_url, database_url, folder)
    env.update({"SIM_GAMES": str(games), "GAME_ASSIGNMENT": "orchestrator", "MAX_GAMES_PER_SHARD": str(games),
                "ASSIGNMENT_POLL_MS": "100", "ORCHESTRATOR_INTERVAL_MS": "100"})
    base = free_port_block(8)
    stack = ProcessStack(folder, env)
    pub = ReplayPublisher(env)
    row = ShardRow(count, games, 0.0, None, 0, [])
    try:
        names = _start(stack, count, games, base)
        for rate in rates:
            held, lost, cpu_us = _step(stack, names, pub, rate, hold_s)
            row.steps.append((rate, held, lost))
            if not held:
                row.lost_at_next = lost
                break
            row.max_rate, row.cpu_us_per_price = rate, round(cpu_us, 1)
    finally:
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
                f"{row.cpu_us_per_price} us CPU per price (all shards), steps {row.steps}")
    return rows
