"""What the memory benchmark's diagnosis finds in a real process (arbees_core/telemetry/memtrace.py): a structure
that keeps growing is named by its holder (`Class.attribute`) from two SIGUSR2 censuses of a running process, and,
when the process traces its allocations, by the line that allocates its entries."""

from __future__ import annotations

import json
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


SETTLE_CHILD = textwrap.dedent("""
    import gc, json, weakref
    import arbees_core.services.execution_service  # noqa: F401  a service's start-up: its imports and objects
    from arbees_core.telemetry.memtrace import heap_stats, settle_gc

    built = len(gc.get_objects())
    settle_gc()
    walked = len(gc.get_objects())

    class Order:
        pass

    order = Order()
    order.me = order  # garbage in a cycle, made after the freeze
    alive = weakref.ref(order)
    del order
    gc.collect()
    print(json.dumps({"built": built, "walked": walked, "frozen": gc.get_freeze_count(),
                      "cycle_freed": alive() is None, "gc_full": heap_stats()["gc_full"]}))
""")


def test_after_start_up_a_full_collection_walks_only_what_came_since() -> None:
    """Every service calls settle_gc before its loop (services/runner.main): what start-up built is frozen, so a
    full collection, which pauses the hot path while it walks every tracked object, walks only the objects made
    since, and garbage made since is still freed; the heartbeat's `gc_full` counts the full collections."""
    out = subprocess.run([sys.executable, "-c", SETTLE_CHILD], capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(out.stdout)
    assert got["built"] > 20_000
    assert got["frozen"] >= got["built"] * 0.9
    assert got["walked"] < got["built"] * 0.05
    assert got["cycle_freed"]
    assert got["gc_full"] >= 3  # settle_gc's two, then the test's own


def test_tidying_the_heap_empties_the_free_lists_that_fill_between_full_collections() -> None:
    """Once a minute each service's health thread runs tidy_heap: a full collection (the only thing that empties
    the interpreter's free lists, which otherwise fill at the pace of their rarest bursts and read as growth in
    every soak) and the C heap's free pages back. It reports its pause (the heartbeat's `heap.gc_pause_ms`)."""
    import gc

    from arbees_core.telemetry.memtrace import heap_stats, tidy_heap

    tidy_heap()
    burst = [(i, i, i) for i in range(10_000)]  # a burst of 3-tuples, all freed at once: 2000 go on the free list
    gc_was = gc.isenabled()
    gc.disable()  # no collection in between may empty the list before it is measured
    try:
        del burst
        parked = heap_stats()["py_blocks"]
        pause_ms = tidy_heap()
        after = heap_stats()["py_blocks"]
    finally:
        if gc_was:
            gc.enable()
    assert parked - after >= 1_900
    assert pause_ms >= 0


TCACHE_CHILD = textwrap.dedent("""
    import ctypes, json
    from arbees_core.telemetry.memtrace import heap_stats

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    sizes = [600 + 16 * k for k in range(20)]  # sizes Python itself does not use much: chunks of the C heap
    chunks = [libc.malloc(n) for n in sizes for _ in range(7)]
    before = heap_stats()["malloc_in_use"]
    for chunk in chunks:
        libc.free(chunk)
    print(json.dumps({"allocated": sum(sizes) * 7, "released": before - heap_stats()["malloc_in_use"]}))
""")


@pytest.mark.skipif(not hasattr(__import__("ctypes").CDLL(None), "mallinfo2"), reason="needs glibc 2.33+ (mallinfo2)")
def test_a_service_process_returns_freed_chunks_to_its_heap_instead_of_a_per_thread_cache() -> None:
    """Every service starts with glibc's per-thread cache off (runtime/processes.service_env; the image sets the
    same): chunks it frees are free in the heap, where malloc_trim can return them, instead of parked per thread and
    counted in use, which filled for hours in the memory benchmark. With glibc's default the same frees stay parked
    (the cache keeps 7 chunks of each size): what the setting changes."""
    from arbees_core.runtime.processes import service_env

    def run(env: dict[str, str]) -> dict[str, int]:
        out = subprocess.run([sys.executable, "-c", TCACHE_CHILD], capture_output=True, text=True, timeout=60,
                             check=True, env=env)
        return json.loads(out.stdout)

    base = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    service = run(service_env(base))
    assert service["released"] >= service["allocated"]
    glibc_default = run({**base, "GLIBC_TUNABLES": "glibc.malloc.tcache_count=7"})
    assert glibc_default["released"] < glibc_default["allocated"] / 2


def test_the_allocator_default_keeps_an_operators_own_tunables(tmp_path: Path) -> None:
    """The local runtime's services get the setting (`arbees up`'s supervisor; the harness of tests and benchmarks
    uses the same function). GLIBC_TUNABLES set by the operator: the cache setting is added to theirs, and their
    own tcache_count wins."""
    from arbees_core.registry import spec
    from arbees_core.runtime.processes import TCACHE_OFF, service_env
    from arbees_core.runtime.supervisor import Child, Supervisor

    sup = Supervisor(root=tmp_path, state=tmp_path / ".arbees", services=["execution_service"])
    assert sup.child_env(Child(spec("execution_service"), None))["GLIBC_TUNABLES"].endswith(TCACHE_OFF)

    assert service_env({})["GLIBC_TUNABLES"] == TCACHE_OFF == "glibc.malloc.tcache_count=0"
    assert service_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})["GLIBC_TUNABLES"] == \
        f"glibc.malloc.arena_max=2:{TCACHE_OFF}"
    assert service_env({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=3"})["GLIBC_TUNABLES"] == \
        "glibc.malloc.tcache_count=3"
