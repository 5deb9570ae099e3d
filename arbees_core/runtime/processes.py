"""How a runtime starts a service process (`SERVICE_SESSION`): the supervisor (`runtime/supervisor.py`) and the
process-stack harness (`arbees_core.harness`) start every service this way."""

from __future__ import annotations


#: How a service process is started: a process group of its own (a terminal's Ctrl-C does not reach it, and
#: `killpg` stops it with anything it started), but the session of whoever starts the stack, never one per
#: service. Linux schedules each session as one group (autogroup, on by default): with a session per service the
#: scheduler first shares the cores between the services' groups, and a hot-path thread woken by a price waited
#: behind another service's time slice, whatever the threads' niceness. One session for the stack measured price
#: hop p50 190-253 us (median 210) against 206-264 us (median 240), p99 1.0-1.3 ms against 1.2-1.6 ms in 8
#: alternating rounds (2 vCPUs, 2 000 prices/s; benchmarks/RESULTS.md). It is also how the raw hops are measured.
SERVICE_SESSION: dict[str, int] = {"process_group": 0}
