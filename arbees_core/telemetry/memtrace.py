"""tracemalloc on a setting, snapshots on a signal: how the memory benchmark finds what grows.

`ARBEES_TRACEMALLOC=N` (0 or unset: off) starts tracemalloc in a service with N frames per allocation before
anything else is built, and installs a SIGUSR2 handler: each SIGUSR2 dumps a snapshot to
`<state dir>/tracemalloc/<service>.<pid>.<n>.snap`. Two snapshots of one process compared
(`growth_sites`) name the lines whose live allocations grew between them. Off, nothing is traced and SIGUSR2
keeps its default action; on, tracing costs CPU and some memory per live block, so only benchmarks turn it on.
"""

from __future__ import annotations

import ctypes
import itertools
import re
import logging
import os
import signal
import tracemalloc
from pathlib import Path
from typing import Any

from arbees_core.config import Env, state_dir

SETTING = "ARBEES_TRACEMALLOC"
_LIB = re.compile(r".*/(?:site-packages|lib/python3\.\d+)/")
SNAPSHOT_SIGNAL = signal.SIGUSR2
FOLDER = "tracemalloc"


#: How often a service hands the C heap's free pages back to the system (`trim_heap`).
TRIM_EVERY_S = 60.0
_libc: Any = None


def trim_heap() -> bool:
    """glibc's malloc_trim(0): return the free pages of every malloc arena to the system. Freed memory otherwise
    stays resident in the arenas (a burst's high water, fragmentation across threads), and RSS then grows while the
    live memory does not: in the memory benchmark the api's RSS rose 6.6 MB/h while its live Python memory rose
    0.08 MB/h. False where there is no glibc (nothing done)."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None)
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    _libc.malloc_trim(0)
    return True


def frames_from_env(env: Env) -> int:
    """Frames per traced allocation (0: off), from ARBEES_TRACEMALLOC (declared in arbees_core/settings)."""
    from arbees_core import settings as S

    return int(env.get(S.ARBEES_TRACEMALLOC))


def install(service: str, frames: int, log: logging.Logger) -> bool:
    """Start tracing and install the snapshot handler when `frames` > 0; False (nothing done) otherwise."""
    if frames <= 0:
        return False
    tracemalloc.start(frames)
    folder = state_dir() / FOLDER
    counter = itertools.count(1)

    def _dump(_signum: int, _frame: object) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{service}.{os.getpid()}.{next(counter)}.snap"
            snap = tracemalloc.take_snapshot().filter_traces((
                tracemalloc.Filter(False, tracemalloc.__file__),))
            tmp = path.with_name(f".{path.name}.tmp")
            snap.dump(str(tmp))
            os.replace(tmp, path)  # whole or absent: a reader never loads half a snapshot
            log.info("tracemalloc snapshot written to %s", path)
        except OSError as e:
            log.warning("Cannot write a tracemalloc snapshot to %s: %s", folder, e)

    signal.signal(SNAPSHOT_SIGNAL, _dump)
    log.info("%s=%d: tracing allocations; SIGUSR2 writes a snapshot to %s", SETTING, frames, folder)
    return True


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


def _short(filename: str) -> str:
    """A source path from the package or library it belongs to (`arbees_core/...`, `hdrh/...`, `pathlib.py`)."""
    m = _LIB.search(filename)
    if m:
        return filename[m.end():]
    for package in ("/arbees_core/", "/arbees_cli/"):
        if package in filename:
            return filename[filename.rindex(package) + 1:]
    return filename
