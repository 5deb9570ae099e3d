"""What the memory benchmark's diagnosis finds in a real process (arbees_core/telemetry/memtrace.py): a structure
that keeps growing is named by its holder (`Class.attribute`) from two SIGUSR2 censuses of a running process, and,
when the process traces its allocations, by the line that allocates its entries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from arbees_core.polling import eventually
from arbees_core.telemetry.memtrace import container_census, growing_containers, growth_sites, snapshot_of

CHILD = textwrap.dedent("""
    import logging, sys
    from arbees_core.telemetry import memtrace
    memtrace.install("leaky", int(sys.argv[1]), logging.getLogger("leaky"))

    class Leaky:
        def __init__(self):
            self.seen = {}     # the structure that grows
            self.small = {}    # one that does not

    leaky = Leaky()
    for line in sys.stdin:     # each line: add this many entries, then say so
        for k in range(int(line)):
            leaky.seen[f"market-{len(leaky.seen)}"] = len(leaky.seen) * 1000003
        print("ok", flush=True)
""")


def _censuses(folder: Path) -> list[Path]:
    return sorted(folder.glob("leaky.*.census.json"), key=lambda p: int(p.name.split(".")[-3]))


def _grow(tmp_path: Path, frames: int) -> tuple[Path, Path]:
    """The child process with ARBEES_TRACEMALLOC=`frames`: 100 entries, a census, 5 000 more, a census."""
    env = {**os.environ, "ARBEES_STATE_DIR": str(tmp_path)}
    with subprocess.Popen([sys.executable, "-c", CHILD, str(frames)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, env=env) as child:
        assert child.stdin is not None and child.stdout is not None

        def step(n: int, snaps: int) -> None:
            child.stdin.write(f"{n}\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "ok"
            child.send_signal(signal.SIGUSR2)
            eventually(lambda: len(_censuses(tmp_path / "tracemalloc")) >= snaps, timeout=30,
                       what=f"census {snaps}")

        step(100, 1)
        step(5000, 2)
        child.stdin.close()
        child.wait(timeout=10)
    before, after = _censuses(tmp_path / "tracemalloc")
    return before, after


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="SIGUSR2 is POSIX")
def test_two_censuses_name_the_container_that_grew_without_tracing(tmp_path: Path) -> None:
    before, after = _grow(tmp_path, 0)
    grown = growing_containers(before, after)
    assert grown[0] == {"owner": "Leaky.seen", "type": "dict", "len_before": 100, "len_after": 5100}
    assert all(g["owner"] != "Leaky.small" for g in grown)
    assert not snapshot_of(before).exists() and not snapshot_of(after).exists()  # nothing traced, nothing to load


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="SIGUSR2 is POSIX")
def test_with_tracing_the_snapshots_beside_them_name_the_line_whose_entries_grew(tmp_path: Path) -> None:
    before, after = _grow(tmp_path, 1)
    assert growing_containers(before, after)[0]["owner"] == "Leaky.seen"
    sites, (total_before, total_after) = growth_sites(snapshot_of(before), snapshot_of(after))
    assert sites and "<string>" in sites[0]["site"] and sites[0]["count_diff"] >= 5000
    assert total_after > total_before


def test_a_census_sees_dicts_the_garbage_collector_does_not_track() -> None:
    """A dict of str -> int is untracked by CPython's GC (it cannot be in a cycle); the census still finds it
    through its holder."""
    import gc

    class Holder:
        def __init__(self) -> None:
            self.counts = {f"k{i}": i for i in range(200)}

    holder = Holder()
    gc.collect()
    assert not gc.is_tracked(holder.counts)
    census = container_census()
    assert {"type": "dict", "len": 200, "owner": f"{Holder.__qualname__}.counts"} in census.values()


def test_the_heap_figures_say_where_the_memory_is() -> None:
    """What every heartbeat's snapshot carries (services/runner.HealthReporter): live Python blocks and, with glibc,
    the C heap's bytes in use, so a soak can tell objects piling up from allocator pages."""
    from arbees_core.telemetry.memtrace import heap_stats

    before = heap_stats()
    kept = [object() for _ in range(50_000)]
    blob = bytearray(8 << 20)  # a large block (mmapped by malloc): counted in use while alive
    after = heap_stats()
    assert after["py_blocks"] - before["py_blocks"] >= 50_000
    if "malloc_in_use" in before:
        assert after["malloc_in_use"] - before["malloc_in_use"] >= 8 << 20
    del kept, blob
