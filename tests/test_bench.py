"""The benchmark harness: a tiny run produces every row and the issue's JSON shape, and loss is counted.

No assertion here is about a wall-clock figure: those belong in benchmarks/RESULTS.md, not in a test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arbees_core.services.sched import rt_permitted
from arbees_core.bench.common import HopRow, SeqTracker, new_histogram, window_histogram
from arbees_core.bench.raw import RawSpec, run_raw
from arbees_core.bench.machine import machine_info
from arbees_core.bench.targets import THROUGHPUT_MIN, ratios
from arbees_core.bench.suite import SIGNAL_RATE, BenchConfig, BenchResult, merged_raw_row, raw_drift_note, run_suite

EXPECTED_ROWS = {("raw", "zmq"), ("raw", "redis"), ("raw@signal", "zmq"), ("raw@signal", "redis"), ("price", "zmq"),
                 ("price", "redis"), ("signal", "zmq"), ("signal", "redis"), ("mirror", "zmq"), ("end_to_end", "zmq"),
                 ("end_to_end", "redis"), ("price@replay", "zmq"), ("price@replay", "redis"), ("mirror@replay", "zmq")}


def test_seq_tracker_counts_skipped_sequence_numbers_and_a_missing_tail() -> None:
    seqs = SeqTracker()
    for seq in (1, 2, 5, 6, 6, 9):
        seqs.see(seq)
    assert seqs.lost == 4  # 3, 4, 7, 8
    assert seqs.finish(sent=12) == 7  # and 10, 11, 12 never arrived


def test_window_histogram_holds_only_what_was_recorded_between_two_snapshots() -> None:
    hist = new_histogram()
    for v in (100, 100, 200):
        hist.record_value(v)
    start = hist.encode().decode("ascii")
    for v in (5000, 5000, 7000):
        hist.record_value(v)
    window = window_histogram(start, hist.encode().decode("ascii"))
    assert window is not None and window.get_total_count() == 3
    assert window.get_min_value() >= 4990


def test_raw_zmq_hop_counts_drops_of_a_slow_subscriber_behind_a_tiny_hwm() -> None:
    row = run_raw(RawSpec("zmq", rate=2000, duration_s=1.0, hwm=1, slow_us=3000, warmup_s=0.0))
    assert row.lost > 0
    assert row.count > 0


def test_raw_hop_without_pressure_loses_nothing(redis_url: str) -> None:
    row = run_raw(RawSpec("redis", rate=500, duration_s=0.5, redis_url=redis_url, warmup_s=0.0))
    assert row.lost == 0 and row.count == 250


@pytest.mark.parametrize("mode", ["zmq", "redis"])
def test_raw_hop_with_the_signal_payload_carries_signals_at_a_low_rate(mode: str, redis_url: str) -> None:
    """`raw@signal`: the receiver decodes TradingSignals (a price decoder would reject them) at the signal's rate."""
    row = run_raw(RawSpec(mode, rate=40, duration_s=0.5, redis_url=redis_url, warmup_s=0.0, payload="signal"),
                  "raw@signal")
    assert (row.hop, row.rate, row.count, row.lost) == ("raw@signal", 40, 20, 0)


@pytest.mark.e2e
def test_tiny_benchmark_run_produces_every_row_and_the_json_shape(
        tmp_path: Path, redis_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    cfg = BenchConfig(rate=400, duration_s=1.5, warmup_s=0.2, hold_s=1.0, rates=(500.0,), raw_s=0.5, folder=tmp_path,
                      compose=False)
    result = run_suite(cfg)
    data = json.loads(json.dumps(result.to_json()))

    assert set(data) == {"machine", "rows", "throughput", "ratios", "targets", "configurations", "notes"}
    assert {"cpu", "cores", "python", "pyzmq", "libzmq", "redis", "cpuidle"} <= set(data["machine"])
    for row in data["rows"]:
        assert set(row) == {"hop", "mode", "rate", "p50_us", "p95_us", "p99_us", "max_us", "lost"}
    produced = {(r["hop"], r["mode"]) for r in data["rows"]}
    assert EXPECTED_ROWS <= produced
    for hop, mode in EXPECTED_ROWS:
        row = next(r for r in data["rows"] if (r["hop"], r["mode"]) == (hop, mode))
        assert row["p50_us"] is not None and row["p50_us"] <= row["p99_us"] <= row["max_us"], row
    assert {(t["path"], t["mode"]) for t in data["throughput"]} == {
        ("monitor->game_shard", "zmq"), ("monitor->game_shard", "redis"), ("mirror", "zmq")}
    for t in data["throughput"]:
        assert set(t) == {"path", "mode", "max_rate", "lost"}
    assert {"zmq_hop_over_raw_p50", "zmq_over_redis_p50"} <= set(data["ratios"])
    # the raw hops are measured on both sides of the pipeline runs: one row each, merging both windows
    assert [(r["hop"], r["mode"]) for r in data["rows"][:2]] == [("raw", "zmq"), ("raw", "redis")]
    assert sum(r["hop"] == "raw" for r in data["rows"]) == 2
    # the signal hop's own reference: the raw hops at its rate (one signal per MISPRICE_EVERY_S) and payload
    signal_raw = [r for r in data["rows"] if r["hop"] == "raw@signal"]
    assert [r["mode"] for r in signal_raw] == ["zmq", "redis"] and all(r["rate"] == SIGNAL_RATE for r in signal_raw)
    assert {"signal_zmq_over_raw_p50", "signal_redis_over_raw_p50", "raw_zmq_over_redis_p50_at_signal_rate"} <= set(
        data["ratios"]) and data["ratios"]["signal_zmq_over_raw_p50"] is not None
    raw_counts = {r.mode: r.count for r in result.rows if r.hop == "raw"}
    assert raw_counts["redis"] == 2 * int(cfg.rate * cfg.raw_s - cfg.rate * min(0.5, cfg.raw_s / 4))
    assert sum(n.startswith(("raw zmq hop p50", "raw redis hop p50")) and "before" in n and "after" in n
               for n in data["notes"]) == 2
    assert data["targets"] and all(
        set(t) == {"name", "target", "actual", "met", "verdict", "ci", "n", "reason", "config"} for t in data["targets"])
    # every configuration measured is counted on its own, and the counts add up to the run's targets
    assert [c["config"] for c in data["configurations"]][0] == "default"
    assert sum(c["met"] + c["missed"] + c["inconclusive"] for c in data["configurations"]) == len(data["targets"])
    assert all(t["verdict"] in ("met", "missed", "inconclusive") and t["reason"] for t in data["targets"])

    # The real-time configuration (ARBEES_RT_PRIORITY, default 10) is measured when this process may use it,
    # and said to be skipped otherwise.
    rt_rows = {(h + "@rt", m) for h, m in EXPECTED_ROWS if h in ("price", "signal", "end_to_end", "mirror")}
    if rt_permitted(cfg.rt_priority):
        assert rt_rows <= produced
        assert data["machine"]["rt_priority"] == cfg.rt_priority
        assert {"rt_zmq_hop_over_raw_p50", "rt_zmq_over_redis_p50", "rt_signal_zmq_over_redis_p50"} <= set(data["ratios"])
        assert sum("[ARBEES_RT_PRIORITY=" in t["name"] for t in data["targets"]) == 6
    else:
        assert not rt_rows & produced
        assert any("real-time rows" in n and "skipped" in n for n in data["notes"])

    # ZMQ_SPIN_US (default 2000): ZMQ mode once more with game_shard busy-polling; Redis mode does not spin, so
    # its ratios are taken against the default Redis rows
    spin_rows = {(h + "@spin", "zmq") for h in ("price", "signal", "end_to_end", "mirror")}
    assert spin_rows <= produced and not {(h, "redis") for h, _ in spin_rows} & produced
    assert data["machine"]["spin_us"] == cfg.spin_us == 2000
    spin_row = next(r for r in result.rows if (r.hop, r.mode) == ("price@spin", "zmq"))
    assert data["ratios"]["spin_zmq_over_redis_p50"] == round(
        spin_row.p50_us / next(r.p50_us for r in result.rows if (r.hop, r.mode) == ("price", "redis")), 3)
    assert sum("[ZMQ_SPIN_US=2000]" in t["name"] for t in data["targets"]) == 6
    # and their own reference: bare pyzmq whose receiver polls the same way
    assert ("raw@spin", "zmq") in produced and data["ratios"]["spin_zmq_hop_over_raw_spin_p50"] is not None


def _raw_window(*values_us: int) -> tuple:
    hist = new_histogram()
    for v in values_us:
        hist.record_value(v)
    return hist, 0


def test_raw_windows_before_and_after_merge_into_one_row_and_a_moved_machine_is_said() -> None:
    before, after = _raw_window(100, 100, 100), _raw_window(200, 200, 200)
    row = merged_raw_row("zmq", 2000, before, (after[0], 2))
    assert row.count == 6 and row.lost == 2 and row.p50_us is not None and 99 <= row.p50_us <= 201
    assert "the machine's speed changed" in raw_drift_note("zmq", before, after)
    steady = raw_drift_note("redis", _raw_window(100, 100), _raw_window(110, 110))
    assert steady.startswith("raw redis hop p50 100 us before") and "110 us after" in steady
    assert "changed" not in steady
    assert "- after" in raw_drift_note("zmq", before, (None, 0))  # a window that timed nothing


def test_quick_plans_about_a_minute_and_holds_the_target_rate() -> None:
    """--quick is the issue's one-minute run: its planned windows leave room for start-up within a minute, and
    its one throughput step is the rate the target names."""
    quick = BenchConfig.quick()
    assert sum(seconds for _, seconds in quick.phases()) <= 45
    assert quick.rates == (THROUGHPUT_MIN,)
    assert BenchConfig().rates[-1] > THROUGHPUT_MIN and BenchConfig().hold_s == 30


def test_the_replayed_hop_is_a_ratio_to_raw_only_at_the_raw_hops_rate() -> None:
    def result(replay_rate: float) -> BenchResult:
        return BenchResult({}, rows=[HopRow("raw", "zmq", 2000, 100, 150, 200, 300, 0, 10),
                                     HopRow("price@replay", "zmq", replay_rate, 120, 150, 200, 300, 0, 10)])

    assert ratios(result(2000))["zmq_hop_replay_over_raw_p50"] == 1.2
    assert ratios(result(20000))["zmq_hop_replay_over_raw_p50"] is None  # --quick replays at 20k/s only


def test_the_machine_facts_say_how_idle_cpus_wait() -> None:
    """Waking a halted vCPU was half of a bare hop on the VMs here: a run says how its machine's idle CPUs wait."""
    driver = Path("/sys/devices/system/cpu/cpuidle/current_driver")
    info = machine_info()["cpuidle"]
    if driver.exists():
        assert info is not None and info.startswith(driver.read_text().strip() + "/")
    else:
        assert info is None
