"""The pipeline's own hops, measured by the services themselves while they run as real processes.

Every service is started by `ProcessStack` (as the end-to-end tests do) with the simulated venues at a given
price-update rate and a mispricing injected every `MISPRICE_EVERY_S` seconds (rotating over the games), so the
run produces a steady stream of signals and paper fills. The venues' traffic is recorded once before the runs
(`record_traffic`: the simulator's frames built ahead on a simulated clock) and each monitor replays it at 1x:
the monitors parse, keep books and publish exactly as they would live, but building the venue's messages (the
venue's work, ~15 us a step) does not share the two cores with the pipeline under test, and every configuration
compared (ZMQ, Redis, real-time) gets the same traffic. Latencies are the services' own HDR histograms
(`.arbees/metrics/<service>.json`), taken over a window after warm-up (end snapshot minus start snapshot):
price (monitor -> game_shard), signal (game_shard -> execution_service), mirror (ZMQ -> Redis stream, ZMQ mode
only) and end_to_end (venue message in -> paper fill). The `e2e/...` rows split each signal's end-to-end time
into its stages, from the timestamps the signal and its trade results carry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import redis

from arbees_core.config import Env
from arbees_core.messages import TradeResult, TradingSignal
from arbees_core.harness import ProcessStack, pipeline_env, start_pipeline, wait_for
from arbees_core.topics import STREAMS
from arbees_core.venues.replay import record_sim
from arbees_core.venues.sim import SimConfig, SimVenue
from arbees_core.bench.common import HopRow, new_histogram, row_from_histogram, sleep_reporting, window_histogram

#: Top-of-book changes (= published price updates) per simulated venue update, measured on the simulator
#: (about one in four book updates moves the top of book). SIM_RATE per venue = rate / (2 x this).
UPDATES_PER_SIM_STEP = 0.25
SIM_GAMES = 8
MISPRICE_EVERY_S = 0.1
#: Hops read from the services: (row name, service, histogram name).
SERVICE_HOPS = (("price", "game_shard", "price"), ("signal", "execution_service", "signal"),
                ("mirror", "zmq_listener", "mirror"), ("end_to_end", "execution_service", "end_to_end"))
#: Stages of one signal's end-to-end time, in order.
STAGES = ("e2e/monitor", "e2e/price_hop", "e2e/shard", "e2e/signal_hop", "e2e/execution")

#: Recorded traffic beyond warm-up + window: the time from start to the first paper fill, with room to spare.
TRAFFIC_MARGIN_S = 30.0
MONITORS = ("kalshi_monitor", "polymarket_monitor")

Progress = Callable[[float], None]


@dataclass
class PipelineRun:
    """Rows of one pipeline run and what was measured alongside them."""

    mode: str
    rate: float
    rows: list[HopRow] = field(default_factory=list)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)


def bench_env(zmq_mode: bool, rate: float, redis_url: str, database_url: str, folder: Path,
              traffic: dict[str, Path] | None = None) -> dict[str, str]:
    """pipeline_env with the simulator at `rate` price updates/s over both venues and a signal every 0.1 s;
    with `traffic` (venue -> recording of that simulator), the monitors replay it instead of simulating."""
    env = pipeline_env(zmq_mode, redis_url, database_url, folder)
    if traffic:
        env.update({"KALSHI_SOURCE": f"replay:{traffic['kalshi']}@1x",
                    "POLYMARKET_SOURCE": f"replay:{traffic['polymarket']}@1x"})
    env.update({
        "SIM_GAMES": str(SIM_GAMES), "SIM_RATE": f"{rate / (2 * UPDATES_PER_SIM_STEP):g}",
        "SIM_MISPRICE_AT_S": "", "SIM_MISPRICE_EVERY_S": f"{MISPRICE_EVERY_S:g}", "SIM_MISPRICE_DURATION_MS": "60",
        "SIM_GAME_LENGTH_S": "0",  # the same games throughout: a recording is replayed long after it was built
        "GAME_COOLDOWN_MS": "100", "MAX_EXPOSURE_USD": "1000000000", "LOG_SAMPLE_PER_SEC": "2",
        "HEARTBEAT_INTERVAL_SECS": "0.5", "MIRROR_LOG_PER_SEC": "1",
    })
    return env


def record_traffic(rate: float, seconds: float, folder: Path) -> dict[str, Path]:
    """Both simulated venues' traffic at `rate` price updates/s for `seconds`, as replayable recordings (the
    configuration `bench_env` gives the simulator, so discovery maps the same markets)."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = SimConfig.from_env(Env(bench_env(True, rate, "", "", folder)))
    out = {}
    for venue in ("kalshi", "polymarket"):
        out[venue] = folder / f"{venue}.jsonl.gz"
        record_sim(SimVenue(venue, cfg), out[venue], seconds)
    return out


def reset_streams(redis_url: str) -> None:
    """Delete the pipeline's streams so a run reads only its own signals and results."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(*STREAMS.values())
    finally:
        client.close()


def run_pipeline(zmq_mode: bool, rate: float, duration_s: float, warmup_s: float, redis_url: str,
                 database_url: str, folder: Path, progress: Progress | None = None,
                 without: tuple[str, ...] = (), rt_priority: int = 0,
                 traffic: dict[str, Path] | None = None, spin_us: int = 0) -> PipelineRun:
    """Start the whole pipeline, let it warm up, measure for `duration_s`, stop it; `without` names services
    to stop right after start (to measure what they cost the others). rt_priority > 0 runs it with
    ARBEES_RT_PRIORITY (its rows are named `<hop>@rt`, without the per-stage split); spin_us > 0 with ZMQ_SPIN_US
    (rows `<hop>@spin`). `traffic`: recordings (`record_traffic`) the monitors replay; without it they run the
    simulator live."""
    mode = "zmq" if zmq_mode else "redis"
    suffix = "@rt" if rt_priority > 0 else "@spin" if spin_us > 0 else ""
    folder.mkdir(parents=True, exist_ok=True)
    reset_streams(redis_url)
    env = bench_env(zmq_mode, rate, redis_url, database_url, folder, traffic)
    env["ARBEES_RT_PRIORITY"] = str(max(0, rt_priority))  # explicit: never inherited from the caller's env
    env["ZMQ_SPIN_US"] = str(max(0, spin_us))
    stack = ProcessStack(folder, env)
    names = ("game_shard", "execution_service", "zmq_listener")
    try:
        start_pipeline(stack, zmq_mode)
        for name in without:
            stack.stop(name)
        wait_for(lambda: stack.counter("execution_service", "signals_executed") > 0, 60, "a first paper fill", stack)
        sleep_reporting(warmup_s, None)
        start = {n: stack.metrics(n) for n in names}
        sleep_reporting(duration_s, progress)
        end = {n: stack.metrics(n) for n in names}
        window = (_ts(start["game_shard"]), _ts(end["game_shard"]))
        if traffic:
            _check_still_replaying(stack)
    finally:
        stack.stop_all()
    run = PipelineRun(mode, rate)
    seconds = max(1e-9, (window[1] - window[0]) / 1e9)
    measured_rate = _delta(start, end, "game_shard", "prices_rx") / seconds
    for hop, service, hist_name in SERVICE_HOPS:
        if hop == "mirror" and (not zmq_mode or service in without):
            continue
        hist = window_histogram(_hdr(start[service], hist_name), _hdr(end[service], hist_name))
        lost = _delta(start, end, service, "lost") + (_delta(start, end, service, "mirror_dropped") if hop == "mirror" else 0)
        run.rows.append(row_from_histogram(hop + suffix, mode, measured_rate, hist, lost))
    if not suffix:
        run.rows += stage_rows(redis_url, mode, measured_rate, window)
    run.counters = {n: end[n].get("counters", {}) for n in names}
    return run


def _check_still_replaying(stack: ProcessStack) -> None:
    """A recording that ran out inside the window would measure a silent feed: fail instead."""
    for name in MONITORS:
        state = (stack.metrics(name) or {}).get("connection", {}).get("state")
        if state != "replaying":
            raise RuntimeError(f"{name}'s recorded traffic ran out before the measured window ended (state "
                               f"{state!r}): record more (TRAFFIC_MARGIN_S)")


def stage_rows(redis_url: str, mode: str, rate: float, window: tuple[int, int]) -> list[HopRow]:
    """Each signal's end-to-end split into stages, from the signals and results streams (both modes write them):
    monitor (venue message in -> price published), price_hop, shard (price received -> signal published),
    signal_hop and execution (signal received -> fill)."""
    client = redis.Redis.from_url(redis_url)
    try:
        signals = {s.signal_id: s for s in _read(client, STREAMS[_fam("SIGNALS")], TradingSignal)}
        results = [r for r in _read(client, STREAMS[_fam("RESULTS")], TradeResult) if r.leg == 0]
    finally:
        client.close()
    hists = {stage: new_histogram() for stage in STAGES}
    for res in results:
        sig = signals.get(res.signal_id)
        if sig is None or not window[0] <= sig.ts_detect_ns <= window[1]:
            continue
        trigger = next((p for p in sig.inputs if p.ts_origin_ns == sig.ts_origin_ns), None)
        if trigger is None:
            continue
        parts_ns = (trigger.ts_pub_ns - trigger.ts_origin_ns, trigger.ts_recv_ns - trigger.ts_pub_ns,
                    sig.ts_pub_ns - trigger.ts_recv_ns, res.signal_latency_ms * 1e6, res.execution_latency_ms * 1e6)
        for stage, ns in zip(STAGES, parts_ns):
            hists[stage].record_value(max(1, min(60_000_000, int(ns // 1000))))
    return [row_from_histogram(stage, mode, rate, hists[stage], 0) for stage in STAGES]


def _fam(name: str) -> Any:
    from arbees_core.topics import Family

    return Family[name]


def _read(client: redis.Redis, stream: str, kind: type) -> list[Any]:
    decoder = msgspec.json.Decoder(kind)
    out = []
    for _, fields in client.xrange(stream):
        try:
            out.append(decoder.decode(fields[b"data"]))
        except (msgspec.DecodeError, KeyError):
            continue
    return out


def _ts(snap: dict[str, Any]) -> int:
    return int(snap.get("ts_ns", time.time_ns()))


def _hdr(snap: dict[str, Any], hist_name: str) -> str | None:
    return snap.get("latency", {}).get(hist_name, {}).get("hdr")


def _delta(start: dict[str, dict], end: dict[str, dict], service: str, counter: str) -> int:
    return int(end[service].get("counters", {}).get(counter, 0)) - int(start[service].get("counters", {}).get(counter, 0))
