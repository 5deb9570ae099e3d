"""The memory benchmark's judgement (arbees_core/bench/memory.py) on RSS series given to it: flat, growing, too short."""

from __future__ import annotations

import random

from arbees_core.bench.memory import FLAT, GROWING, INCONCLUSIVE, MemoryConfig, MemoryResult, ServiceMemory, judge


def _series(minutes: float, fill_mb: float = 0.0, slope_mb_h: float = 0.0, seed: int = 1,
            name: str = "game_shard") -> ServiceMemory:
    """RSS every 10 s: `fill_mb` gained over the first 4 minutes (caches filling), then `slope_mb_h`, plus noise."""
    rng = random.Random(seed)
    svc = ServiceMemory(name)
    for k in range(int(minutes * 6) + 1):
        t = k * 10.0
        svc.samples.append((t, 60 + fill_mb * min(1.0, t / 240) + slope_mb_h * t / 3600 + rng.uniform(-0.05, 0.05)))
    return svc


def test_caches_that_fill_during_warm_up_then_stay_read_flat() -> None:
    svc = _series(30, fill_mb=10)
    judge(svc, warmup_s=300, limit=1.0)
    assert svc.verdict == FLAT and svc.ci_mb_h is not None and -1 <= svc.ci_mb_h[0] and svc.ci_mb_h[1] <= 1
    counted = _series(30, fill_mb=10)
    judge(counted, warmup_s=0, limit=1.0)
    # without the warm-up the fill is not read flat: a ramp then a plateau fits no line, its residuals run in long
    # stretches of one sign, and the interval says the soak cannot tell
    assert counted.verdict == INCONCLUSIVE and (counted.slope_mb_h or 0) > 1 and "wider than" in counted.reason


def test_a_leak_reads_growing_and_a_short_soak_inconclusive() -> None:
    leak = _series(30, slope_mb_h=4)
    judge(leak, warmup_s=300, limit=1.0)
    assert leak.verdict == GROWING and 3 < (leak.slope_mb_h or 0) < 5
    short = _series(12)
    judge(short, warmup_s=300, limit=1.0)
    assert short.verdict == INCONCLUSIVE and "too short" in short.reason


def test_rss_that_moves_in_steps_is_not_judged_on_a_too_narrow_interval() -> None:
    """RSS that moves in a few lasting steps (arenas, dict resizes) and is otherwise flat: the samples are not
    independent, and an interval that assumed they were would call a chance sequence of upward steps growth."""
    from arbees_core.validation.stats import linear_fit

    svc = ServiceMemory("execution_service")
    for k in range(181):
        t = k * 10.0
        svc.samples.append((t, 60 + 0.3 * (t >= 900) + 0.3 * (t >= 1300) - 0.2 * (t >= 1600)))
    judge(svc, warmup_s=600, limit=1.0)
    naive = linear_fit([t / 3600 for t, _ in svc.samples if t >= 600], [m for t, m in svc.samples if t >= 600])
    assert naive.slope_lo > 1.0  # read as independent samples: "growing"
    assert svc.verdict == INCONCLUSIVE and svc.n_eff < 10
    assert svc.ci_mb_h is not None and svc.ci_mb_h[0] < naive.slope_lo and svc.ci_mb_h[1] > naive.slope_hi


def test_the_run_exits_0_flat_1_growing_2_inconclusive() -> None:
    result = MemoryResult(MemoryConfig(), [ServiceMemory("a", verdict=FLAT), ServiceMemory("b", verdict=FLAT)])
    assert result.exit_code() == 0
    result.services.append(ServiceMemory("c", verdict=INCONCLUSIVE))
    assert result.exit_code() == 2 and result.verdict() == INCONCLUSIVE
    result.services.append(ServiceMemory("d", verdict=GROWING))
    assert result.exit_code() == 1


def test_the_report_carries_decides_memory_row_on_the_same_samples() -> None:
    from arbees_core.bench.memory import decide_memory_row

    flat = MemoryResult(MemoryConfig(), [_series(30, fill_mb=10, seed=s, name=f"s{s}") for s in (1, 2)])
    assert decide_memory_row(flat)["verdict"] == "GO"
    leak = MemoryResult(MemoryConfig(), [_series(30, seed=1, name="api"), _series(30, slope_mb_h=4, name="leaky")])
    row = decide_memory_row(leak)
    assert row["verdict"] == "DEBUG" and "leaky +3.9" in row["reason"] and "api" not in row["reason"]


def test_the_benchmark_and_decide_read_the_same_samples_the_same_way() -> None:
    """One rule (`stats.trend_verdict`): a slope over the limit whose interval lies above 0 is growing for both,
    though the interval still reaches below the limit; the same samples then flat for both once the slope is small."""
    from arbees_core.bench.memory import decide_memory_row

    rng = random.Random(7)
    svc = ServiceMemory("execution_service")
    for k in range(181):  # +1.5 MB/h with noise that leaves the interval's lower bound between 0 and the limit
        t = k * 10.0
        svc.samples.append((t, 60 + 1.5 * t / 3600 + rng.gauss(0, 0.5)))
    judge(svc, warmup_s=600, limit=1.0)
    assert svc.ci_mb_h is not None and 0 < svc.ci_mb_h[0] < 1.0 < (svc.slope_mb_h or 0)
    assert svc.verdict == GROWING
    row = decide_memory_row(MemoryResult(MemoryConfig(), [svc]))
    assert row["verdict"] == "DEBUG" and "RSS growing" in row["reason"]


def test_a_suspect_is_diagnosed_from_its_censuses_and_its_snapshots_only_when_traced(tmp_path) -> None:
    """Untraced (the default), the report names the containers that grew from the two censuses and no lines."""
    import json

    from arbees_core.bench.memory import _sites

    folder = tmp_path / ".arbees" / "tracemalloc"
    folder.mkdir(parents=True)
    for n, size in ((1, 100), (2, 1600)):
        census = {"1": {"type": "set", "len": size, "owner": "BookCache._closed"},
                  "2": {"type": "dict", "len": 500, "owner": "sys.modules"}}
        (folder / f"execution_service.42.{n}.census.json").write_text(json.dumps(census))
    svc = ServiceMemory("execution_service")
    _sites(svc, tmp_path, 42)
    assert svc.growing_containers == [{"owner": "BookCache._closed", "type": "set", "len_before": 100,
                                       "len_after": 1600}]
    assert svc.growth_sites == [] and svc.traced_mb is None


def test_rss_growing_with_nothing_alive_growing_is_told_apart_from_a_leak() -> None:
    """Beside RSS the benchmark fits the service's own heap figures: live Python blocks and the C heap in use. A
    leak grows them; fragmentation grows RSS alone."""
    frag, leak = _series(30, slope_mb_h=3), _series(30, slope_mb_h=3, name="execution_service")
    for k, (t, _) in enumerate(frag.samples):
        frag.heap_samples.append((t, 200_000 + (k % 3), 12 << 20))  # nothing alive grows
        leak.heap_samples.append((t, 200_000 + int(t * 10), (12 << 20) + int(t * 300)))  # 36 000 blocks/h, ~1 MB/h
    judge(frag, warmup_s=300, limit=1.0)
    judge(leak, warmup_s=300, limit=1.0)
    assert frag.verdict == leak.verdict == GROWING
    assert frag.py_blocks_h is not None and frag.py_blocks_h[1] < 0 < frag.py_blocks_h[2] and abs(frag.py_blocks_h[0]) < 10
    assert frag.malloc_mb_h is not None and abs(frag.malloc_mb_h[0]) < 1e-9
    assert leak.py_blocks_h is not None and round(leak.py_blocks_h[0]) == 36_000
    assert leak.malloc_mb_h is not None and abs(leak.malloc_mb_h[0] - 300 * 3600 / 2**20) < 1e-6


def test_without_heap_figures_there_is_no_heap_trend() -> None:
    svc = _series(30)
    judge(svc, warmup_s=300, limit=1.0)
    assert svc.py_blocks_h is None and svc.malloc_mb_h is None


def test_the_table_says_what_is_alive_under_a_service_that_is_not_flat() -> None:
    from rich.console import Console

    from arbees_cli.bench_memory import table

    frag = _series(30, slope_mb_h=3, name="execution_service")
    frag.heap_samples = [(t, 200_000, 12 << 20) for t, _ in frag.samples]
    flat = _series(30)
    flat.heap_samples = list(frag.heap_samples)
    for svc in (frag, flat):
        judge(svc, warmup_s=300, limit=1.0)
    console = Console(width=400, record=True)
    console.print(table(MemoryResult(MemoryConfig(), [frag, flat])))
    lines = [line for line in console.export_text().splitlines() if "alive after warm-up" in line]
    assert len(lines) == 1 and "Python blocks +0/h" in lines[0] and "glibc in use +0.00 MB/h" in lines[0]
