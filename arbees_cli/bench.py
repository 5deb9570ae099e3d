"""`arbees bench`: raw ZMQ/Redis limits, the pipeline's hops in both modes, throughput, ratios and targets."""

from __future__ import annotations

from typing import Optional

import typer

from arbees_cli.stack import JsonOpt


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(quick: bool = typer.Option(False, "--quick", help="About a minute instead of ~15: 3 s latency windows, one "
                                                               "throughput step (20k/s) held 2 s (full: 30 s windows, "
                                                               "steps 2k-40k held 30 s each)."),
              rate: float = typer.Option(2000.0, "--rate", help="msg/s of the latency runs (targets are at 2000)."),
              duration: Optional[float] = typer.Option(None, "--duration", help="Seconds measured per latency run "
                                                       "and held per throughput step (default 30; quick 3/2)."),
              rt_priority: int = typer.Option(10, "--rt-priority", help="Also measure raw hops and the pipeline "
                                              "with ARBEES_RT_PRIORITY=N (SCHED_FIFO for the hot path; rows <hop>@rt) "
                                              "when this process may use it; 0 skips."),
              spin_us: int = typer.Option(2000, "--spin-us", help="Also measure ZMQ mode with ZMQ_SPIN_US=N "
                                          "(game_shard busy-polls N us after each price; rows <hop>@spin); 0 skips."),
              compose: bool = typer.Option(True, "--compose/--no-compose", help="Also measure both modes through "
                                           "container networking on a Docker engine (rows <hop>@compose, against "
                                           "the local rows: <= 1.2 x); skipped with a note when no engine answers."),
              as_json: bool = JsonOpt) -> None:
        """Benchmark the hot path: per-hop and end-to-end latency and throughput, ZMQ against Redis, judged against
        ARCHITECTURE.md's targets on 95 % confidence intervals. Exit 0 when every target is met, 1 when one is
        missed, 2 when none is missed but some are inconclusive (too few samples, an interval across the limit, or
        a machine whose own bare hops already miss the limit: a bare pyzmq p99 over 1 ms, or bare pyzmq / bare Redis
        over 0.5). The exit code covers every configuration measured; the per-configuration table (and
        `configurations` in --json) says which of them missed nothing. Uses REDIS_URL / DATABASE_URL, or embedded
        servers when unset."""
        from benchmarks.cli import run_and_report

        raise typer.Exit(run_and_report(quick, as_json, rate, duration, rt_priority=rt_priority, spin_us=spin_us,
                                        compose=compose))
