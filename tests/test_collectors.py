"""Phase 4 and phase 5 collectors against a real local stack.

Criteria: interleaved latency windows alternate the modes, each holds this window's price and end-to-end
histograms (S1 - S0) and counters, and `.env` is put back; the histogram subtraction is exact; the soak writes each
sample when taken with every field, continues after an interruption for the remaining duration, and shows a killed
service as a restart. No assertion on latency values (they depend on the machine).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from arbees_core.config import parse_dotenv
from arbees_core.polling import eventually
from arbees_core.runtime.local import LocalRuntime
from arbees_core.telemetry.metrics import decode_histogram
from arbees_core.validation.latency import (collect_windows, new_histogram, subtract, summarize, window_counters,
                                            window_problems)
from arbees_core.validation.soak import read_samples, run_soak
from arbees_core.registry import SERVICES

DOTENV = ("ZMQ_ENABLED=true\nSIM_RATE=100\nSIM_GAMES=2\nHEARTBEAT_INTERVAL_SECS=0.2\nSIM_MISPRICE_EVERY_S=2\n"
          "GAME_COOLDOWN_MS=500\nDISCOVERY_INTERVAL_S=30\n")
SAMPLE_FIELDS = {"at", "t_s", "services", "error_lines", "zmq_error_lines", "mirrored", "mirrored_per_s",
                 "prices_per_s", "end_to_end", "lost", "rejected", "messages", "malformed", "failed_writes",
                 "risk_rejected", "signals", "leg_misses", "exposure_usd", "unhedged"}
SERVICE_NAMES = {s.name for s in SERVICES}  # every service of the registry is sampled






# -- subtract (no stack) ---------------------------------------------------------------------------------------

def test_subtract_is_the_bucket_wise_difference() -> None:
    h0, h1 = new_histogram(), new_histogram()
    for value, n in ((100, 5), (2_000, 3)):
        h0.record_value(value, n)
        h1.record_value(value, n)
    for value, n in ((100, 2), (50_000, 4), (1_500_000, 1)):  # recorded between the two snapshots
        h1.record_value(value, n)

    diff = subtract(h1.encode().decode("ascii"), h0.encode().decode("ascii"))  # as snapshots carry them
    assert diff.get_total_count() == 7
    assert diff.get_count_at_value(100) == 2
    assert diff.get_count_at_value(2_000) == 0
    assert diff.get_count_at_value(50_000) == 4
    assert diff.get_count_at_value(1_500_000) == 1
    assert diff.get_max_value() == h1.get_max_value()
    assert subtract(h1, None).get_total_count() == h1.get_total_count()  # empty baseline
    assert subtract(h1, h1).get_total_count() == 0
    round_trip = decode_histogram(diff.encode().decode("ascii"))
    assert round_trip.get_total_count() == 7

    with pytest.raises(ValueError, match="fewer than the baseline"):  # h0 is not an earlier state of h1
        subtract(h0, h1)


def test_summarize_merges_valid_windows_only() -> None:
    def hop(values: list[int]) -> dict:
        h = new_histogram()
        for v in values:
            h.record_value(v)
        return {"count": len(values), "mean_us": sum(values) / len(values), "hdr": h.encode().decode("ascii")}

    data = {"windows": [
        {"index": 0, "mode": "zmq", "valid": True, "hops": {"price": hop([1000, 1000, 3000])}},
        {"index": 1, "mode": "redis", "valid": True, "hops": {"price": hop([5000])}},
        {"index": 2, "mode": "zmq", "valid": True, "hops": {"price": hop([1000])}},
        {"index": 3, "mode": "redis", "valid": False, "reason": "x restarted", "hops": {"price": hop([90000])}},
    ], "window_seconds": 1.0, "warmup_seconds": 0.0}
    table = summarize(data)
    assert table["zmq"]["price"]["count"] == 4 and table["zmq"]["price"]["windows"] == 2
    assert table["zmq"]["price"]["p50_ms"] == pytest.approx(1.0, rel=0.01)
    assert table["zmq"]["price"]["mean_ms"] == pytest.approx(1.5, rel=0.01)
    assert table["redis"]["price"]["count"] == 1 and table["redis"]["price"]["max_ms"] == pytest.approx(5.0, rel=0.01)


def _snap(instance: str, mode: str = "zmq", **counters: int) -> dict:
    return {"instance": instance, "started_ns": hash(instance), "mode": mode, "ts_ns": 1, "counters": counters,
            "latency": {}}


def test_a_restart_or_the_wrong_mode_invalidates_a_window() -> None:
    s0 = {"game_shard": _snap("gs.1", prices_rx=100, signals_published=3, lost=1),
          "execution_service": _snap("ex.1", signals_executed=3, signals_rejected=1, rx_rejected=0)}
    s1 = {"game_shard": _snap("gs.1", prices_rx=160, signals_published=5, lost=1),
          "execution_service": _snap("ex.1", signals_executed=6, signals_rejected=1, **{"rx_rejected": 2})}
    assert window_problems(s0, s1, "zmq") == []
    assert window_counters(s0, s1) == {"signals": 2, "trades": 3, "lost": 0, "rejected": 2, "prices": 60}

    restarted = {**s1, "execution_service": _snap("ex.2", signals_executed=1)}
    assert window_problems(s0, restarted, "zmq") == ["execution_service restarted during the window "
                                                     "(instance ex.1 -> ex.2)"]
    assert "game_shard ran in zmq mode, the window asked for redis" in window_problems(s0, s1, "redis")


class _FailingRuntime:
    """Enough of a runtime for collect_windows to fail in its second window's restart."""

    def __init__(self) -> None:
        self.restarts = 0

    def restart(self) -> list:
        self.restarts += 1
        if self.restarts == 2:
            raise RuntimeError("restart failed")
        return []

    def status(self) -> list:
        return []

    def metrics(self, service: str) -> dict:
        return {}


@pytest.mark.parametrize("dotenv", ["ZMQ_ENABLED=true\nSIM_RATE=100\n", "SIM_RATE=100\n"])
def test_dotenv_is_restored_when_a_window_fails(tmp_path: Path, dotenv: str) -> None:
    (tmp_path / ".env").write_text(dotenv)
    rt = _FailingRuntime()
    with pytest.raises(RuntimeError, match="restart failed"):
        collect_windows(rt, tmp_path, windows=2, window_s=0.1, warmup_s=0)
    assert (tmp_path / ".env").read_text() == dotenv  # absent stays absent (the default, Redis mode)
    assert rt.restarts == 3  # the stack is restarted into the original mode (the failed restart left it unknown)


# -- against a running stack -----------------------------------------------------------------------------------

@pytest.fixture
def project(local_project: Callable[[str], Path]) -> Path:
    return local_project(DOTENV)


@pytest.fixture
def stack(project: Path) -> LocalRuntime:
    rt = LocalRuntime(project)
    rt.up()
    return rt


@pytest.mark.e2e
def test_collect_windows_alternates_modes_and_restores_dotenv(stack: LocalRuntime, project: Path) -> None:
    seen: list[tuple[str, float]] = []
    data = collect_windows(stack, project, windows=2, window_s=4, warmup_s=2,
                           progress=lambda msg, frac: seen.append((msg, frac)))

    assert data["window_seconds"] == 4.0 and data["warmup_seconds"] == 2.0
    windows = data["windows"]
    assert [w["index"] for w in windows] == [0, 1]
    assert [w["mode"] for w in windows] == ["zmq", "redis"]
    for w in windows:
        assert w["valid"], w["reason"]
        assert w["duration_s"] >= 4.0
        assert set(w["counters"]) == {"signals", "trades", "lost", "rejected", "prices"}
        assert w["counters"]["prices"] > 0 and w["counters"]["signals"] > 0
        for hop in ("price", "end_to_end"):
            stats = w["hops"][hop]
            assert stats["count"] > 0, (w["mode"], hop)
            assert set(stats) == {"count", "p50_us", "p95_us", "p99_us", "max_us", "mean_us", "hdr"}
            assert decode_histogram(stats["hdr"]).get_total_count() == stats["count"]  # this window only
            assert stats["p50_us"] <= stats["p95_us"] <= stats["p99_us"] <= stats["max_us"]
        # the window holds no more prices than game_shard received in it (S1 - S0, not since process start)
        assert w["hops"]["price"]["count"] <= w["counters"]["prices"]
    assert "mirror" in windows[0]["hops"] and "mirror" not in windows[1]["hops"]  # ZMQ mode only

    assert (project / ".env").read_text() == DOTENV  # ZMQ_ENABLED=true again, nothing else touched
    assert parse_dotenv((project / ".env").read_text())["ZMQ_ENABLED"] == "true"
    eventually(lambda: stack.metrics("game_shard").get("mode") == "zmq", 20, what="stack back in ZMQ mode")
    assert seen and seen[-1][1] == pytest.approx(1.0) and all(0.0 <= f <= 1.0 for _, f in seen)

    table = summarize(data)
    assert table["zmq"]["end_to_end"]["count"] == windows[0]["hops"]["end_to_end"]["count"]
    assert table["redis"]["price"]["count"] == windows[1]["hops"]["price"]["count"]


def _check_sample(sample: dict) -> None:
    assert set(sample) == SAMPLE_FIELDS
    assert set(sample["services"]) == SERVICE_NAMES
    for name, view in sample["services"].items():
        assert set(view) == {"state", "restarts", "rss_mb", "cpu_pct"}
        if view["state"] == "running":
            assert view["rss_mb"] > 0, name
    assert set(sample["end_to_end"]) == {"count", "p50_ms", "p95_ms", "mean_ms"}
    for key in ("error_lines", "zmq_error_lines", "mirrored", "lost", "rejected", "messages", "malformed",
                "failed_writes", "signals", "leg_misses"):
        assert isinstance(sample[key], int) and sample[key] >= 0, key
    assert sample["rejected"] == sample["malformed"] + sample["failed_writes"]  # risk rejections are not errors
    assert set(sample["unhedged"]) == {"contracts", "pairs", "oldest_s"} and sample["exposure_usd"] >= 0


@pytest.mark.e2e
def test_soak_writes_samples_as_it_goes_and_resumes(stack: LocalRuntime, tmp_path: Path) -> None:
    folder = tmp_path / "soak"
    stop = threading.Event()
    lines_when_stopped: list[int] = []

    def stop_after_first_sample(msg: str, frac: float) -> None:
        samples_file = folder / "samples.jsonl"
        if samples_file.exists() and len(read_samples(samples_file)) >= 1 and not stop.is_set():
            lines_when_stopped.append(len(samples_file.read_text().splitlines()))
            stop.set()  # as Ctrl-C would: the CLI sets the event

    first = run_soak(stack, folder, duration_s=3, interval_s=1, progress=stop_after_first_sample, stop=stop)
    assert lines_when_stopped == [1]  # the sample was on disk before the run returned
    assert first["resumed"] == 0 and len(first["samples"]) == 1
    assert first["mode"] == "zmq" and first["duration_s"] == 3.0 and first["interval_s"] == 1.0
    meta = json.loads((folder / "soak.json").read_text())
    assert meta["duration_s"] == 3.0 and meta["interval_s"] == 1.0 and meta["started_at"]

    second = run_soak(stack, folder, duration_s=3, interval_s=1)
    assert second["resumed"] == 1
    on_disk = read_samples(folder / "samples.jsonl")
    assert on_disk == second["samples"]
    times = [s["t_s"] for s in on_disk]
    assert len(on_disk) == 3 and times == sorted(times)
    assert times[0] == pytest.approx(1.0, abs=0.5) and times[-1] >= 3.0 - 1e-6  # the whole duration, no more
    assert json.loads((folder / "soak.json").read_text())["started_at"] == meta["started_at"]
    for sample in on_disk:
        _check_sample(sample)
        assert all(v["state"] == "running" and v["restarts"] == 0 for v in sample["services"].values())
    assert all(s["prices_per_s"] > 0 for s in on_disk)
    assert any(s["mirrored_per_s"] > 0 for s in on_disk)  # counter rate (log lines are rate-limited)
    assert any(s["mirrored"] > 0 for s in on_disk)
    assert on_disk[-1]["messages"] >= on_disk[0]["messages"] > 0


@pytest.mark.e2e
def test_soak_shows_a_killed_service_as_a_restart(stack: LocalRuntime, tmp_path: Path) -> None:
    folder = tmp_path / "soak"
    victim = next(s.pid for s in stack.status() if s.name == "game_shard")
    assert victim
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(run_soak(stack, folder, duration_s=6, interval_s=1)))
    runner.start()
    try:
        eventually(lambda: len(read_samples(folder / "samples.jsonl")) >= 1, 20, what="first soak sample")
        os.kill(victim, signal.SIGKILL)
    finally:
        runner.join(60)
    assert not runner.is_alive()
    samples = result["samples"]
    assert samples == read_samples(folder / "samples.jsonl")
    for sample in samples:
        _check_sample(sample)
    restarts = [s["services"]["game_shard"]["restarts"] for s in samples]
    assert restarts[0] == 0 and restarts[-1] >= 1 and restarts == sorted(restarts)
    assert all(s["services"]["execution_service"]["restarts"] == 0 for s in samples)
