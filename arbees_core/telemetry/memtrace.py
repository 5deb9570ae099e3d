"""A census of large containers on a signal, tracemalloc on a setting: how the memory benchmark finds what grows.

Every service answers SIGUSR2 with a census of its large containers, written to
`<state dir>/tracemalloc/<service>.<pid>.<n>.census.json` (every dict, list, set and deque of at least
CENSUS_MIN_LEN items, and who holds it). `ARBEES_TRACEMALLOC=N` (0 or unset: off) also starts tracemalloc with N
frames per allocation before anything else is built, and each SIGUSR2 then writes a snapshot beside the census
(`.snap`). Two of one process compared name the containers that grew (`growing_containers`, tracing or not) and
the lines whose live allocations grew (`growth_sites`, tracing only). The lines alone can mislead: CPython keeps
freed small tuples, floats and dicts on free lists and hands them out again without a new allocation, so a block
keeps the traceback of its first allocation while something else holds it; a container that gained a thousand
entries names the holder itself. Tracing costs CPU and memory per live block (enough to move the RSS slopes
it would explain), so only a diagnosis turns it on; a census costs nothing until it is asked for, then a pause
of the process.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import itertools
import json
import re
import logging
import os
import signal
import sys
import time
import tracemalloc
import types
from pathlib import Path
from typing import Any

from arbees_core.config import Env, state_dir

SETTING = "ARBEES_TRACEMALLOC"
_LIB = re.compile(r".*/(?:site-packages|lib/python3\.\d+)/")
SNAPSHOT_SIGNAL = signal.SIGUSR2
FOLDER = "tracemalloc"


#: How often a service tidies its heap (`tidy_heap`): a full collection, then the C heap's free pages back.
TIDY_EVERY_S = 60.0
_libc: Any = None


def tidy_heap() -> float:
    """A full garbage collection, then `trim_heap`; returns the collection's pause in milliseconds.

    Why the collection: a full one is the only thing that empties the interpreter's free lists (freed tuples,
    floats, dicts... kept for reuse, up to 2000 tuples of each length), and in a service full collections are rare
    (the younger generations' counts drive them, and a steady service allocates little net). So the free lists
    fill for hours at the pace of their rarest bursts, which reads as growth in every soak, and cyclic garbage
    waits with them. The collection holds the interpreter, so it pauses the service's loop too (the pause returned
    goes into the heartbeat as `heap.gc_pause_ms`); after `settle_gc` it walks only what came since start-up, which
    keeps that pause short. The health thread calls it once a minute (services/runner.HealthReporter)."""
    start = time.perf_counter()
    gc.collect()
    pause_ms = (time.perf_counter() - start) * 1000
    trim_heap()
    return pause_ms


def trim_heap() -> bool:
    """glibc's malloc_trim(0): return the free pages of every malloc arena to the system. Freed memory otherwise
    stays resident in the arenas (a burst's high water, fragmentation across threads), and RSS then grows while the
    live memory does not (the api's did, in the memory benchmark). False where there is no glibc (nothing done)."""
    libc = _glibc()
    if not libc:
        return False
    libc.malloc_trim(0)
    return True


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def settle_gc() -> None:
    """Collect, freeze what survived start-up (modules, settings, the service's own objects) into the collector's
    permanent generation, and collect again so that its count of long-lived objects starts from zero.

    Why: a full collection walks every object the collector tracks while holding the interpreter, so it pauses the
    hot path for as long as that walk takes, and a service's start-up leaves tens of thousands of them (its
    imports) that will never be garbage. Frozen, they are never walked again: a full collection then costs what
    came since start-up. Called once, before the service's loop, so its own pause precedes any traffic. Garbage made
    later is collected as before."""
    gc.collect()
    gc.freeze()
    gc.collect()


def heap_stats() -> dict[str, int]:
    """Where a process's memory is, cheaply enough for every heartbeat: `py_blocks`, the blocks Python's allocator
    has handed out and not taken back (live objects, and those parked on the interpreter's free lists); `gc_full`,
    the cyclic collector's full collections so far (garbage in cycles is freed by those only); and glibc's
    `malloc_in_use` / `malloc_free` bytes (mallinfo2 over every arena, mmapped chunks counted in use). RSS growing
    while both stay flat is fragmentation. malloc_in_use is a hint, not a measure, of C memory alive: glibc counts
    the chunks parked in its per-thread caches as in use. The malloc figures are absent without glibc 2.33+."""
    stats = {"py_blocks": sys.getallocatedblocks(), "gc_full": gc.get_stats()[-1]["collections"]}
    libc = _glibc()
    if libc and hasattr(libc, "mallinfo2"):
        info = libc.mallinfo2()
        stats["malloc_in_use"] = int(info.uordblks + info.hblkhd)
        stats["malloc_free"] = int(info.fordblks)
    return stats


def _glibc() -> Any:
    """The C library's handle, loaded once (False where it cannot be)."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None)
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
            if hasattr(_libc, "mallinfo2"):
                _libc.mallinfo2.restype = _MallInfo2
        except (OSError, AttributeError):
            _libc = False
    return _libc


def frames_from_env(env: Env) -> int:
    """Frames per traced allocation (0: off), from ARBEES_TRACEMALLOC (declared in arbees_core/settings)."""
    from arbees_core import settings as S

    return int(env.get(S.ARBEES_TRACEMALLOC))


def install(service: str, frames: int, log: logging.Logger) -> bool:
    """Install the SIGUSR2 handler (a census, and a snapshot when tracing) and start tracing when `frames` > 0.
    Returns whether allocations are traced."""
    if frames > 0:
        tracemalloc.start(frames)
    folder = state_dir() / FOLDER
    counter = itertools.count(1)

    def _dump(_signum: int, _frame: object) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{service}.{os.getpid()}.{next(counter)}.census.json"
            tmp = path.with_name(f".{path.name}.tmp")
            traced = tracemalloc.is_tracing()
            if traced:
                snap = tracemalloc.take_snapshot().filter_traces((tracemalloc.Filter(False, tracemalloc.__file__),))
                snap.dump(str(tmp))
                os.replace(tmp, snapshot_of(path))
                del snap  # not counted by the census
            tmp.write_text(json.dumps(container_census()))
            os.replace(tmp, path)  # last, whole or absent: a reader that sees it finds the snapshot beside it
            log.info("Memory census written to %s%s", path, " (with a tracemalloc snapshot)" if traced else "")
        except OSError as e:
            log.warning("Cannot write a memory census to %s: %s", folder, e)

    signal.signal(SNAPSHOT_SIGNAL, _dump)
    if frames > 0:
        log.info("%s=%d: tracing allocations; SIGUSR2 writes a snapshot and a census to %s", SETTING, frames, folder)
    return frames > 0


def snapshot_of(census: Path) -> Path:
    """The tracemalloc snapshot taken with a census (`<service>.<pid>.<n>.snap`; present only when tracing)."""
    return census.with_name(census.name.removesuffix(".census.json") + ".snap")


def growth_sites(before: Path, after: Path, top: int = 5) -> tuple[list[dict[str, Any]], tuple[float, float]]:
    """The `top` source lines whose live allocations grew most from snapshot `before` to `after`, and the traced
    total (MB) of each. Live Python memory flat while RSS grows is the allocator keeping freed room (a burst's high
    water, fragmentation), not a structure growing."""
    old, new = tracemalloc.Snapshot.load(str(before)), tracemalloc.Snapshot.load(str(after))
    stats = [s for s in new.compare_to(old, "lineno") if s.size_diff > 0][:top]
    sites = [{"site": f"{_short(s.traceback[0].filename)}:{s.traceback[0].lineno}",
              "size_diff_kb": round(s.size_diff / 1024, 1), "count_diff": s.count_diff,
              "size_kb": round(s.size / 1024, 1)} for s in stats]
    totals = tuple(round(sum(t.size for t in snap.traces) / 2**20, 3) for snap in (old, new))
    return sites, totals  # type: ignore[return-value]


#: A census leaves out containers smaller than this: a growth worth finding makes its container large.
CENSUS_MIN_LEN = 64
_CONTAINERS = (dict, list, set, frozenset, collections.deque)


def container_census(min_len: int = CENSUS_MIN_LEN) -> dict[str, dict[str, Any]]:
    """Every dict, list, set and deque of at least `min_len` items reachable from a GC-tracked object, by id:
    {"type", "len", "owner"}. The referents of tracked objects are walked too, because CPython stops tracking a dict
    or tuple that holds only atomic values (a dict of str -> int is invisible to gc.get_objects()). owner names the
    holder as `Class.attribute`, `module.name` or the holder's type."""
    gc.collect()
    found: dict[int, tuple[Any, Any]] = {}
    for holder in gc.get_objects():
        if isinstance(holder, _CONTAINERS) and len(holder) >= min_len:
            found.setdefault(id(holder), (holder, None))
        for obj in gc.get_referents(holder):
            if isinstance(obj, _CONTAINERS) and len(obj) >= min_len and found.get(id(obj), (0, None))[1] is None:
                found[id(obj)] = (obj, holder)
    return {str(k): {"type": type(obj).__name__, "len": len(obj), "owner": _owner(obj, holder)}
            for k, (obj, holder) in found.items()}


def _owner(obj: Any, holder: Any) -> str:
    """`Class.attribute` / `module.name` / the holder's type name for the container `obj` held by `holder`."""
    if holder is None:
        return "?"
    if isinstance(holder, dict):
        key = next((k for k, v in holder.items() if v is obj), None)
        if key is None:
            return "dict"
        if isinstance(holder.get("__name__"), str):
            return f"{holder['__name__']}.{key}"  # a module's globals
        instance = next((o for o in gc.get_referrers(holder) if getattr(o, "__dict__", None) is holder), None)
        return f"{type(instance).__qualname__ if instance is not None else 'dict'}.{key}"
    attrs = getattr(holder, "__dict__", None)
    if attrs is obj and isinstance(holder, types.ModuleType):
        return f"{holder.__name__}.__dict__"  # a module's globals (new ones: a module imported since)
    if isinstance(attrs, dict):
        key = next((k for k, v in attrs.items() if v is obj), None)
        if key is not None:
            return f"{type(holder).__qualname__}.{key}"
    return type(holder).__qualname__


def growing_containers(before: Path, after: Path, top: int = 5) -> list[dict[str, Any]]:
    """The `top` containers of census `after` that gained most items since census `before` (the same object: same
    id, type and owner; a container new since counts from 0)."""
    old, new = (json.loads(p.read_text()) for p in (before, after))
    grown = []
    for key, c in new.items():
        prev = old.get(key)
        start = prev["len"] if prev and (prev["type"], prev["owner"]) == (c["type"], c["owner"]) else 0
        if c["len"] > start:
            grown.append({"owner": c["owner"], "type": c["type"], "len_before": start, "len_after": c["len"]})
    return sorted(grown, key=lambda g: g["len_before"] - g["len_after"])[:top]


def _short(filename: str) -> str:
    """A source path from the package or library it belongs to (`arbees_core/...`, `hdrh/...`, `pathlib.py`)."""
    m = _LIB.search(filename)
    if m:
        return filename[m.end():]
    for package in ("/arbees_core/", "/arbees_cli/"):
        if package in filename:
            return filename[filename.rindex(package) + 1:]
    return filename
