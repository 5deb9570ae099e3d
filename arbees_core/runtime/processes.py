"""How a runtime starts a service process (`SERVICE_SESSION`, `service_env`): the supervisor
(`runtime/supervisor.py`) and the process-stack harness (`arbees_core.harness`) start every service this way; the
image (Dockerfile) sets the same allocator default for the containers."""

from __future__ import annotations

from collections.abc import Mapping

from arbees_core import settings as S
from arbees_core.config import Env


#: How a service process is started: a process group of its own (a terminal's Ctrl-C does not reach it, and
#: `killpg` stops it with anything it started), but the session of whoever starts the stack, never one per
#: service. Linux schedules each session as one group (autogroup, on by default): with a session per service the
#: scheduler first shares the cores between the services' groups, and a hot-path thread woken by a price waited
#: behind another service's time slice, whatever the threads' niceness (alternating rounds measured a slower price
#: hop, p50 and p99, with a session per service; the figures are in the change's commit message). It is also how
#: the raw hops are measured.
SERVICE_SESSION: dict[str, int] = {"process_group": 0}

#: The glibc tunable every service runs with unless GLIBC_TUNABLES sets a tcache_count of its own.
TCACHE_OFF = S.GLIBC_TUNABLES.default


def service_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for a service process: glibc's per-thread cache of freed chunks (tcache) turned off, unless
    GLIBC_TUNABLES already chooses a tcache_count.

    Why: each thread's tcache keeps up to 7 freed chunks of each of 64 sizes (up to 1 KiB) for reuse. glibc counts
    them as in use, malloc_trim does not return them, and a service fills them at the pace of its rarest
    allocation sizes, so its RSS grows for hours before it stops: bounded, but in a soak it is growth no census
    explains (no Python object, no live allocation), on every thread of every service. Python's own small objects
    do not go through malloc (pymalloc serves them), so the cache only sped up the C allocations of larger buffers;
    the latency benchmark runs its pipeline with this environment, against raw pyzmq, so a cost would show there.
    The variable is read by the dynamic loader at exec: it must be in the environment the process starts with."""
    tunables = Env(env).get(S.GLIBC_TUNABLES)  # the declared default (TCACHE_OFF) when unset
    if "glibc.malloc.tcache_count=" not in tunables:
        tunables = f"{tunables}:{TCACHE_OFF}"
    return {**env, S.GLIBC_TUNABLES.name: tunables}
