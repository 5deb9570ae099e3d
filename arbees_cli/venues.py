"""Venue commands: `arbees record` (raw venue frames to a replayable file) and `arbees markets` (the mapping)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from arbees_cli.output import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, PlainProgress, console, fail, parse_duration, print_json
from arbees_cli.stack import JsonOpt
from arbees_core import settings as S
from arbees_core.config import ConfigError, Env, load_dotenv_into_environ
from arbees_core.venues import NAMES, adapter
from arbees_core.venues.feed import VenueFeed
from arbees_core.venues.listing import MarketListing
from arbees_core.venues.live import LiveSource, VenueError
from arbees_core.venues.replay import RecordStats, record, record_sim, save_listings


def build_live_source(venue: str, env: Env, feed: VenueFeed) -> tuple[LiveSource, list[MarketListing]]:
    """The live venue source to record and the listings its markets come from (stored beside the recording):
    every open game market the venue's discovery finds."""
    parts = adapter(venue)
    listings = parts.discover(parts.discovery_config(env))
    tickers = [x.ticker for x in listings]
    return parts.make_live_source(parts.live_config(env), tickers, feed), listings


def record_venue(venue: str, source: str, duration_s: float, out: str, env: Env,
                 on_frame: Any = None) -> tuple[RecordStats, dict[str, Any]]:
    """Record `venue` for `duration_s` into `out` (+ `out.listings.json`); returns the stats and the feed's.
    The simulator's traffic is built ahead on a simulated clock (`record_sim`): ten minutes take seconds."""
    feed = adapter(venue).make_feed()

    def handle(raw: bytes, recv_ns: int, stats: RecordStats) -> None:
        feed.handle_many([raw], recv_ns)  # keeps books, so a sequence gap is resubscribed while recording
        if on_frame is not None:
            on_frame(stats, feed)

    if source == "sim":
        from arbees_core.venues.sim import SimConfig, SimVenue

        sim = SimVenue(venue, SimConfig.from_env(env))
        stats = record_sim(sim, out, duration_s, on_frame=handle)
        return stats, {"feed": feed.stats(), "connection": {}, "listings": len(sim.listings())}
    src, listings = build_live_source(venue, env, feed)
    save_listings(out, listings)
    stats = asyncio.run(record(src, out, duration_s, venue, on_frame=handle))
    return stats, {"feed": feed.stats(), "connection": src.stats(), "listings": len(listings)}


def database_url() -> str:
    """DATABASE_URL, else the running local stack's database."""
    load_dotenv_into_environ()
    url = Env().get(S.DATABASE_URL)
    if url:
        return url
    from arbees_core.runtime.local import LocalRuntime

    return LocalRuntime().urls().get("DATABASE_URL", "")


def load_markets(url: str) -> tuple[list[Any], list[MarketListing]]:
    """The stored mapping and unmatched markets (read only: empty when discovery has not run on this database)."""
    import psycopg

    from arbees_core.store.db import connect
    from arbees_core.store.mappings import load_mappings, load_unmatched

    with connect(url, retries=1) as conn:
        try:
            return load_mappings(conn), load_unmatched(conn)
        except psycopg.errors.UndefinedTable:
            return [], []


def _record_with_progress(venue: str, source: str, seconds: float, out: str,
                          quiet: bool) -> tuple[RecordStats, dict[str, Any]]:
    """Record while showing how far it got: a spinner in a terminal, plain lines in a script or a log file,
    nothing under --json (stdout is the JSON object's)."""
    plain = None if console.is_terminal or quiet else PlainProgress()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=quiet or plain is not None) as progress:
        task = progress.add_task(f"recording {venue} ({source})", total=None)

        def show(stats: RecordStats, feed: Any) -> None:
            if quiet or stats.frames % 50 != 1:
                return
            text = (f"recording {venue} ({source}): {stats.frames} frames, {stats.bytes / 1e6:.1f} MB, "
                    f"{len(feed.books)} markets")
            if plain is None:
                progress.update(task, description=text)
            else:
                plain(text, None)

        return record_venue(venue, source, seconds, out, Env(), show)


def record_summary(venue: str, source: str, stats: RecordStats, extra: dict[str, Any]) -> dict[str, Any]:
    """The recording as `--json` prints it: what was written where, and what the feed saw while recording.
    `passed` is false when no frame was recorded (exit 1)."""
    return {"venue": venue, "source": source, "out": stats.path, "frames": stats.frames, "bytes": stats.bytes,
            "seconds": round(stats.seconds, 3), "listings": extra["listings"], "feed": extra["feed"],
            "connection": extra["connection"], "passed": stats.frames > 0,
            "exit_code": EXIT_PASS if stats.frames > 0 else EXIT_FAIL}


def record_cmd(venue: str = typer.Option(..., "--venue", help=f"{' or '.join(NAMES)}."),
               duration: str = typer.Option("10m", "--duration", help="How long to record (30s, 10m, 1h)."),
               out: str = typer.Option(..., "--out", help="Recording file (gzip JSON lines)."),
               source: str = typer.Option("sim", "--source", help="sim (the simulator's traffic, built ahead "
                                          "at once: ten minutes take seconds) or live (the venue: every open "
                                          "game market its discovery finds)."),
               as_json: bool = JsonOpt) -> None:
    """Record a venue's raw messages with receive timestamps, for `<VENUE>_SOURCE=replay:<file>`. Exit 0 when
    frames were recorded, 1 when none came, 3 when it could not run."""
    if venue not in NAMES:
        fail(f"--venue {venue!r}: expected {' or '.join(NAMES)}", as_json=as_json)
    if source not in ("sim", "live"):
        fail(f"--source {source!r}: expected sim or live", as_json=as_json)
    seconds = parse_duration(duration)
    load_dotenv_into_environ()
    try:
        stats, extra = _record_with_progress(venue, source, seconds, out, as_json)
    except (ConfigError, VenueError) as e:
        fail(str(e), code=EXIT_ERROR, as_json=as_json)
    summary = record_summary(venue, source, stats, extra)
    summary["out"] = summary["out"] or out
    if as_json:
        print_json(summary)
    else:
        console.print(f"recorded {stats.frames} frames ({stats.bytes / 1e6:.2f} MB) from {venue} in "
                      f"{stats.seconds:.1f}s to {out}; {extra['listings']} listings beside it; "
                      f"feed: {extra['feed'].get('markets', 0)} markets, gaps {extra['feed'].get('gaps', 0)}, "
                      f"errors {extra['feed'].get('errors', {})}", highlight=False)
    raise typer.Exit(summary["exit_code"])


def markets_cmd(as_json: bool = JsonOpt,
                unmatched: bool = typer.Option(False, "--unmatched", help="Also list the unmatched markets.")
                ) -> None:
    """The cross-venue mapping discovery stored (market_mappings) and, with --unmatched, what it could not pair."""
    url = database_url()
    if not url:
        fail("no database: set DATABASE_URL or start the stack (arbees up)", as_json=as_json)
    try:
        games, left = load_markets(url)
    except Exception as e:  # noqa: BLE001 - one clear line, whatever the database said
        fail(f"cannot read the mapping: {type(e).__name__}: {e}", as_json=as_json)
    if as_json:
        body: dict[str, Any] = {"games": [asdict(g) for g in games]}
        if unmatched:
            body["unmatched"] = [{k: v for k, v in asdict(x).items() if k != "raw"} for x in left]
        print_json(body)
        return
    table = Table(title=f"{len(games)} games mapped", title_justify="left")
    for col in ("game", "shard", "outcome", "kalshi ticker", "polymarket token"):
        table.add_column(col)
    for g in games:
        for p in g.pairs:
            table.add_row(g.game_id, g.shard_id, p.outcome, p.kalshi_ticker, p.poly_token)
    console.print(table)
    if unmatched:
        t2 = Table(title=f"{len(left)} markets unmatched", title_justify="left")
        for col in ("venue", "ticker", "event", "title", "outcome", "league", "date"):
            t2.add_column(col)
        for x in left:
            t2.add_row(x.venue, x.ticker, x.event_id, x.title, x.outcome, x.league, x.start_date)
        console.print(t2)


def register(app: typer.Typer) -> None:
    app.command("record")(record_cmd)
    app.command("markets")(markets_cmd)
