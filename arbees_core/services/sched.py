"""Real-time scheduling for the hot path's receiving threads, when the operator asks for it and the OS allows it.

Why. On a small machine the hot-path services are idle most of the time, yet with default scheduling a price
waited about 0.2 ms at p50 and 1.5 ms at p99 between the monitor's send and game_shard's receive (2 vCPUs,
2 000 prices/s, the simulated venues and the mirror busy on the same cores). A bare subscriber that did nothing
but receive measured the same wait, so it is not game_shard's work: it is the time a woken thread waits for a
core while another process finishes its time slice (Linux's EEVDF scheduler lets the running task run on).
Starting the services in one session (one scheduling group, `runtime.processes.SERVICE_SESSION`) took a tenth
to a fifth off that; with SCHED_FIFO the wakeup preempts at once: price hop p50 0.23 -> 0.13 ms and p99
1.5 -> 0.5-1.0 ms, signal hop p99 1.5 -> 0.23 ms (benchmarks/RESULTS.md).

Who gets it (`rt_scope` of each service class):
- `process` (game_shard, execution_service): the receive loop and every thread started after it (ZMQ I/O
  threads, the trade writer); not the health reporter, which starts before, nor Redis mode's book-cache thread
  in execution_service, which reads every price: under FIFO it took the monitors' CPU and they fell behind
  (game_shard got 1 650 of 2 000 prices/s), so it returns to normal scheduling (`normal_scheduling`).
  (Running the I/O threads one priority above the loop, so that a sent signal need not wait for the loop to
  block, measured no different.)
- `zmq_io` (the monitors): only libzmq's I/O threads, which carry the published prices out. The main thread
  parses venue data; under FIFO a venue burst could take a core from everything else.
- `none` (zmq_listener, market_discovery): off the hot path.

On by default where permitted (DEFAULT_PRIORITY): the benchmark's latency targets are met with it and missed
without it on small shared hosts (benchmarks/RESULTS.md), and an operator's default run should meet them.
ARBEES_RT_PRIORITY=0 turns it off; another value sets the priority. It needs CAP_SYS_NICE or an RLIMIT_RTPRIO at
least the priority (systemd: `LimitRTPRIO=`; containers: see the README). Where the process may not use it, the
service logs one line and runs with normal scheduling (a warning when it was asked for explicitly). The kernel's
RT throttling (`sched_rt_runtime_us`, 95 % by default) still leaves other work a share of each core.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

from arbees_core import settings as S
from arbees_core.config import Env

RT_ENV = S.ARBEES_RT_PRIORITY.name
#: 99 is left to the kernel's own watchdogs and migration threads.
MAX_PRIORITY = S.ARBEES_RT_PRIORITY.maximum
#: The priority used when ARBEES_RT_PRIORITY is unset, where the process may use real-time scheduling: above
#: ordinary kernel threads' default of 0/1, far below the kernel's own watchdogs.
DEFAULT_PRIORITY = S.ARBEES_RT_PRIORITY.default

Scope = Literal["process", "zmq_io", "none"]


def rt_priority(env: Env) -> int:
    """ARBEES_RT_PRIORITY: 0 = normal scheduling, 1..98 = SCHED_FIFO at that priority; unset = DEFAULT_PRIORITY
    where permitted (`rt_explicit` tells the two apart)."""
    return env.get(S.ARBEES_RT_PRIORITY)


def rt_explicit(env: Env) -> bool:
    """Whether ARBEES_RT_PRIORITY was set (an explicit request warns when it cannot be met; the default does not)."""
    return env.is_set(S.ARBEES_RT_PRIORITY)


def rt_permitted(priority: int) -> bool:
    """Whether this process may run a thread under SCHED_FIFO at `priority` (tried on the calling thread, then
    undone). libzmq aborts the process when it cannot apply a requested thread policy, so this is asked first."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    before, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, ValueError):
        return False
    os.sched_setscheduler(0, before, param)
    return True


def apply_rt(scope: Scope, priority: int, log: logging.Logger, explicit: bool = True) -> bool:
    """Give this service's hot-path threads SCHED_FIFO `priority`; call before the service creates its ZMQ
    sockets and worker threads. Returns whether it was applied; logs one line either way (`explicit`: asked for
    in the environment, so a refusal is a warning; the default's refusal is information)."""
    if priority <= 0 or scope == "none":
        return False
    origin = f"{RT_ENV}={priority}" if explicit else f"the default where permitted; {RT_ENV}=0 turns it off"
    if not rt_permitted(priority):
        (log.warning if explicit else log.info)(
            "Real-time scheduling (%s) is not permitted for this process (needs CAP_SYS_NICE or an rtprio limit "
            ">= %d); running with normal scheduling", origin, priority)
        return False
    if scope == "process":
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        log.info("Real-time scheduling: SCHED_FIFO priority %d for the receive loop and its threads (%s)",
                 priority, origin)
        return True
    import zmq

    ctx = zmq.Context.instance()  # its I/O threads start with the first socket, with these parameters
    ctx.set(zmq.THREAD_SCHED_POLICY, os.SCHED_FIFO)
    ctx.set(zmq.THREAD_PRIORITY, priority)
    log.info("Real-time scheduling: SCHED_FIFO priority %d for the ZMQ I/O threads that send prices (%s)",
             priority, origin)
    return True


def normal_scheduling() -> bool:
    """Put the calling thread back under SCHED_OTHER if it inherited SCHED_FIFO; returns whether it changed.
    For threads a real-time service starts that are not its hot path (Redis mode's book cache)."""
    if not hasattr(os, "sched_getscheduler") or os.sched_getscheduler(0) != os.SCHED_FIFO:
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True
