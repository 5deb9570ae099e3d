"""`arbees bench`: raw ZMQ/Redis limits, the pipeline's hops in both modes, throughput, ratios and targets; with
`--memory` the memory soak, with `--shards` the shard-scaling run. The one benchmark CLI (`python -m
arbees_core.bench` runs this same command)."""

from __future__ import annotations

from typing import Optional

import typer

from arbees_cli.stack import JsonOpt

QuickOpt = typer.Option(False, "--quick", help="About a minute instead of ~15: 3 s latency windows, one throughput "
                        "step (20k/s) held 2 s (full: 30 s windows, steps 2k-40k held 30 s each).")
RateOpt = typer.Option(2000.0, "--rate", help="msg/s of the latency runs (targets are at 2000).")
DurationOpt = typer.Option(None, "--duration", help="Seconds measured per latency run and held per throughput step "
                           "(default 30; quick 3/2); with --shards, seconds each rate is held (default 5).")
RtOpt = typer.Option(10, "--rt-priority", help="Also measure raw hops and the pipeline with ARBEES_RT_PRIORITY=N "
                     "(SCHED_FIFO for the hot path; rows <hop>@rt) when this process may use it; 0 skips.")
SpinOpt = typer.Option(2000, "--spin-us", help="Also measure ZMQ mode with ZMQ_SPIN_US=N (game_shard busy-polls N us "
                       "after each price; rows <hop>@spin); 0 skips.")
ComposeOpt = typer.Option(True, "--compose/--no-compose", help="Also measure both modes through container networking "
                          "on a Docker engine (rows <hop>@compose, against the local rows: <= 1.2 x); skipped with a "
                          "note when no engine answers.")
MarkdownOpt = typer.Option("", "--markdown", help="Also write the hop and per-configuration tables (and the JSON "
                           "object) as Markdown to this file, for benchmarks/RESULTS.md.")
MemoryOpt = typer.Option(False, "--memory", help="Run the memory benchmark instead: a soak of the whole pipeline at a "
                         "mispricing per second, each service's RSS slope after warm-up with its 95 % interval (flat: "
                         "within +-1 MB/h), and for a service that is not flat the containers that grew (with "
                         "--tracemalloc, the lines too).")
SoakOpt = typer.Option("30m", "--soak", help="--memory: the soak's length, warm-up included.")
WarmupOpt = typer.Option("10m", "--warmup", help="--memory: left out of the slope (caches filling).")
SimRateOpt = typer.Option(100.0, "--sim-rate", help="--memory: venue messages/s per venue.")
TracemallocOpt = typer.Option(0, "--tracemalloc", help="--memory: ARBEES_TRACEMALLOC frames per allocation in every "
                              "service, so that a service that is not flat gets its growing lines too (0: off; "
                              "tracing's own memory moves the slopes).")
DiagnoseOpt = typer.Option("5m", "--diagnose", help="--memory: when a service is not flat, how long after the soak "
                           "what grows in it is looked for (two censuses of its containers, and snapshots when "
                           "tracing).")
ShardsOpt = typer.Option("", "--shards", help="Run the shard-scaling benchmark instead, for these shard counts "
                         "(e.g. 1,2,4): prices/s held with 0 lost and CPU per price, per shard and game count.")
GamesOpt = typer.Option("4,50,400", "--games", help="--shards: the game counts to measure.")
RatesOpt = typer.Option("1000,2000,4000,8000", "--rates", help="--shards: the rates stepped through (prices/s).")


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(quick: bool = QuickOpt, rate: float = RateOpt, duration: Optional[float] = DurationOpt,
              rt_priority: int = RtOpt, spin_us: int = SpinOpt, compose: bool = ComposeOpt, markdown: str = MarkdownOpt,
              memory: bool = MemoryOpt, soak: str = SoakOpt, warmup: str = WarmupOpt, sim_rate: float = SimRateOpt,
              tracemalloc_frames: int = TracemallocOpt, diagnose: str = DiagnoseOpt, shards: str = ShardsOpt,
              games: str = GamesOpt, rates: str = RatesOpt, as_json: bool = JsonOpt) -> None:
        """Benchmark the hot path: per-hop and end-to-end latency and throughput, ZMQ against Redis, judged against
        ARCHITECTURE.md's targets on 95 % confidence intervals. Exit 0 when every target is met, 1 when one is
        missed, 2 when none is missed but some are inconclusive (too few samples, an interval across the limit, or
        a machine whose own bare hops already miss the limit: a bare pyzmq p99 over 1 ms, or bare pyzmq / bare Redis
        over 0.5), 3 when it could not run. The exit code covers every configuration measured; the
        per-configuration table (and `configurations` in --json) says which of them missed nothing. Uses REDIS_URL /
        DATABASE_URL, or embedded servers when unset."""
        if memory:
            from arbees_cli.bench_memory import run_memory_soak

            raise typer.Exit(run_memory_soak(soak, warmup, sim_rate, tracemalloc_frames, diagnose, as_json))
        if shards:
            from arbees_cli.bench_run import run_shards

            raise typer.Exit(run_shards(shards, games, rates, duration or 5.0, as_json))
        from arbees_cli.bench_run import run_and_report

        raise typer.Exit(run_and_report(quick, as_json, rate, duration, markdown, rt_priority, spin_us, compose))
