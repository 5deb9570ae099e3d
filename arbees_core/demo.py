"""`python -m arbees_core.demo`: the whole pipeline on the embedded stack, in ZMQ mode and then in Redis mode.

Every service runs as its own process against a real Redis and a real PostgreSQL (embedded unless
`REDIS_URL` / `DATABASE_URL` are set). The simulated venues inject one cross-venue mispricing. The demo prints the
signal, the paper trades and the per-hop latencies for each mode, then stops everything. Exit 0 when both modes
traded the mispricing, 1 otherwise.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from rich.console import Console
from rich.table import Table

from arbees_core import settings as S
from arbees_core.config import Env, state_dir
from arbees_core.harness import ProcessStack, pipeline_env, start_pipeline
from arbees_core.polling import NotReached, eventually
from arbees_core.runtime.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError
from arbees_core.runtime.ports import PortCheckError, free_port

console = Console()


def _database(admin_url: str, name: str) -> str:
    """A fresh database `name` on the server of `admin_url`."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def run_mode(zmq_mode: bool, redis_url: str, admin_db_url: str, folder: Path) -> bool:
    """Run the pipeline in one mode until the injected mispricing is traded; print the evidence."""
    mode = "zmq" if zmq_mode else "redis"
    database_url = _database(admin_db_url, f"arbees_demo_{mode}")
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    stack = ProcessStack(folder / mode, pipeline_env(zmq_mode, redis_url, database_url, folder / mode))
    (folder / mode).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        with console.status(f"[bold]{mode.upper()} mode[/]: starting 6 services, waiting for the injected mispricing"):
            start_pipeline(stack, zmq_mode)
            eventually(lambda: client.xlen("signals:trades") >= 1, 60, "a signal", details=stack.dump)
            with psycopg.connect(database_url) as conn:
                rows = eventually(lambda: _trades(conn), 30, "paper trades", details=stack.dump)
            time.sleep(1.5)  # let heartbeats carry the final figures
        _show(mode, rows, stack, client, time.monotonic() - started)
        return len(rows) == 2
    except NotReached as e:
        console.print(f"[red]{mode} mode failed:[/] {e}")
        return False
    finally:
        stack.stop_all()
        client.close()


def _trades(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT order_id, venue, side, status, filled_qty, avg_price, latency_ms FROM paper_trades "
                        "ORDER BY created_at, leg").fetchall() if _has_two(conn) else []


def _has_two(conn: psycopg.Connection) -> bool:
    try:
        return conn.execute("SELECT count(*) FROM paper_trades").fetchone()[0] >= 2  # type: ignore[index]
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return False


def _show(mode: str, rows: list[tuple], stack: ProcessStack, client: redis.Redis, took: float) -> None:
    table = Table(title=f"{mode.upper()} mode: paper_trades ({took:.1f}s)")
    for col in ("order_id", "venue", "side", "status", "filled", "avg ¢", "latency_ms"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r[0]), r[1], r[2], r[3], f"{r[4]:g}", f"{r[5]:g}" if r[5] is not None else "-", f"{r[6]:.3f}")
    console.print(table)
    hops = Table(title=f"{mode.upper()} mode: latency per hop (µs)")
    for col in ("hop", "service", "count", "p50", "p99", "max"):
        hops.add_column(col)
    for service, hop in (("game_shard", "price"), ("execution_service", "signal"), ("execution_service", "execution"),
                         ("execution_service", "end_to_end"), ("zmq_listener", "mirror")):
        h = stack.metrics(service).get("latency", {}).get(hop)
        if h:
            hops.add_row(hop, service, str(h["count"]), str(h["p50_us"]), str(h["p99_us"]), str(h["max_us"]))
    console.print(hops)
    streams = ", ".join(f"{s}={client.xlen(s)}" for s in ("prices:kalshi", "prices:poly", "signals:trades", "trades:results"))
    console.print(f"streams: {streams}; lost messages at game_shard: {stack.counter('game_shard', 'lost')}\n")


def main() -> int:
    folder = state_dir() / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    servers: list = []
    try:
        env = Env()
        redis_url = env.get(S.REDIS_URL, "")
        if not redis_url:
            servers.append(EmbeddedRedis(folder / "redis", free_port()).start())
            redis_url = servers[-1].url
        db_url = given_db = env.get(S.DATABASE_URL)
        if not db_url:
            servers.append(EmbeddedPostgres(state_dir() / "postgres").start())
            db_url = servers[-1].url
        console.print(f"Redis: {redis_url}  PostgreSQL: {'DATABASE_URL' if given_db else 'embedded'}")
        ok = [run_mode(zmq, redis_url, db_url, folder) for zmq in (True, False)]
    except (EmbeddedServerError, PortCheckError) as e:
        console.print(f"[red]Cannot start the embedded stack:[/] {e}")
        return 1
    finally:
        for server in reversed(servers):
            server.stop()
    verdict = all(ok)
    console.print("[green]PASS[/]: both modes traded the injected mispricing" if verdict else "[red]FAIL[/]")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
