"""`python -m benchmarks [--quick] [--json] [--rate N] [--duration S]`: the whole benchmark, one report.

Exit 0 when every target is met, 1 when one is missed, 2 when none is missed but some are inconclusive (too few
samples, a 95 % confidence interval across the limit, or a machine whose own bare hops already miss the limit:
a bare pyzmq p99 over 1 ms, or bare pyzmq / bare Redis over 0.5). The exit code covers every configuration
measured (default settings, ARBEES_RT_PRIORITY, ZMQ_SPIN_US); the per-configuration table, and `configurations`
in --json, says which of them missed nothing."""

from __future__ import annotations

import argparse
import sys

from benchmarks.cli import run_and_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="about a minute: 3 s latency windows, one throughput step (20k/s) held 2 s")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (rows, throughput, ratios, targets, configurations)")
    p.add_argument("--rate", type=float, default=2000.0, help="msg/s of the latency runs (default 2000)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds measured per latency run and held per throughput step (default 30, quick 3/2)")
    p.add_argument("--markdown", default="",
                   help="also write the hop and per-configuration tables as Markdown to this file")
    p.add_argument("--rt-priority", type=int, default=10,
                   help="also measure raw hops and the pipeline with ARBEES_RT_PRIORITY=N (SCHED_FIFO for the hot "
                        "path; rows <hop>@rt) when this process may use it; 0 skips (default 10)")
    p.add_argument("--spin-us", type=int, default=2000,
                   help="also measure ZMQ mode with ZMQ_SPIN_US=N (game_shard busy-polls N us after each price; "
                        "rows <hop>@spin); 0 skips (default 2000)")
    p.add_argument("--no-compose", action="store_true",
                   help="skip the rows through container networking (<hop>@compose), which need a Docker engine")
    p.add_argument("--memory", action="store_true",
                   help="run the memory benchmark instead (benchmarks/memory.py): RSS slope per service after warm-up")
    p.add_argument("--soak", type=float, default=1800.0, help="--memory: soak seconds, warm-up included (1800)")
    p.add_argument("--warmup", type=float, default=600.0, help="--memory: seconds left out of the slope (600)")
    p.add_argument("--tracemalloc", type=int, default=1, help="--memory: ARBEES_TRACEMALLOC frames; 0 = off (1)")
    p.add_argument("--diagnose", type=float, default=300.0,
                   help="--memory: seconds between the two snapshots taken when a service is not flat (300)")
    a = p.parse_args(argv)
    if a.memory:
        from benchmarks.memory import MemoryConfig
        from benchmarks.memory_cli import run_and_report as run_memory

        return run_memory(MemoryConfig(duration_s=a.soak, warmup_s=a.warmup, tracemalloc_frames=max(0, a.tracemalloc),
                                       diagnose_s=a.diagnose),
                          a.json)
    return run_and_report(a.quick, a.json, a.rate, a.duration, a.markdown, a.rt_priority, a.spin_us,
                          not a.no_compose)


if __name__ == "__main__":
    sys.exit(main())
