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
              memory: bool = typer.Option(False, "--memory", help="Run the memory benchmark instead: a soak of the "
                                          "whole pipeline at a mispricing per second, each service's RSS slope after "
                                          "warm-up with its 95 % interval (flat: within +-1 MB/h), tracemalloc's "
                                          "top growing lines for a service that is not flat."),
              soak: str = typer.Option("30m", "--soak", help="--memory: the soak's length, warm-up included."),
              warmup: str = typer.Option("10m", "--warmup", help="--memory: left out of the slope (caches filling)."),
              sim_rate: float = typer.Option(100.0, "--sim-rate", help="--memory: venue messages/s per venue."),
              tracemalloc_frames: int = typer.Option(1, "--tracemalloc", help="--memory: ARBEES_TRACEMALLOC frames "
                                                     "per allocation in every service; 0 turns tracing off."),
              diagnose: str = typer.Option("5m", "--diagnose", help="--memory: when a service is not flat, how long "
                                           "after the soak its growing lines are traced (two snapshots)."),
              as_json: bool = JsonOpt) -> None:
        """Benchmark the hot path: per-hop and end-to-end latency and throughput, ZMQ against Redis, judged against
        ARCHITECTURE.md's targets on 95 % confidence intervals. Exit 0 when every target is met, 1 when one is
        missed, 2 when none is missed but some are inconclusive (too few samples, an interval across the limit, or
        a machine whose own bare hops already miss the limit: a bare pyzmq p99 over 1 ms, or bare pyzmq / bare Redis
        over 0.5). The exit code covers every configuration measured; the per-configuration table (and
        `configurations` in --json) says which of them missed nothing. Uses REDIS_URL / DATABASE_URL, or embedded
        servers when unset."""
        if memory:
            from arbees_cli.output import parse_duration
            from benchmarks.memory import MemoryConfig
            from benchmarks.memory_cli import run_and_report as run_memory

            cfg = MemoryConfig(duration_s=parse_duration(soak), warmup_s=parse_duration(warmup), sim_rate=sim_rate,
                               tracemalloc_frames=max(0, tracemalloc_frames), diagnose_s=parse_duration(diagnose))
            raise typer.Exit(run_memory(cfg, as_json))
        from benchmarks.cli import run_and_report

        raise typer.Exit(run_and_report(quick, as_json, rate, duration, rt_priority=rt_priority, spin_us=spin_us,
                                        compose=compose))
