"""Record then replay: the same frames, the same published prices, at the recorded pace or faster; and the monitor's
source selection, staleness and feed liveness with the new sources."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path

import pytest

from arbees_core.config import ConfigError, Env
from arbees_core.services.kalshi_monitor import KalshiMonitor
from arbees_core.services.market_discovery import DiscoveryConfig, discover
from arbees_core.services.polymarket_monitor import PolymarketMonitor
from arbees_core.venues.book import BookChange
from arbees_core.venues.kalshi.feed import KalshiFeed
from arbees_core.venues.source import SourceSpec, parse_source
from arbees_core.venues.polymarket.feed import PolymarketFeed
from arbees_core.venues.replay import (ReplaySource, load_listings, read_reads, read_recording, record, record_sim,
                                       save_listings)
from arbees_core.venues.sim import SimConfig, SimVenue


class ListSource:
    """A source of given frames with given gaps (seconds before each)."""

    def __init__(self, frames: list[tuple[float, bytes]]) -> None:
        self.frames = frames

    async def stream(self, stop: asyncio.Event | None = None):
        for gap, raw in self.frames:
            await asyncio.sleep(gap)
            yield raw
        if stop is not None:
            await stop.wait()


def tops(feed_cls: type, frames: list[bytes]) -> list[BookChange]:
    feed = feed_cls()
    return [(c.ticker, c.top, c.venue_seq) for raw in frames for c in feed.handle(raw, 1)]


async def replayed(path: Path, speed: float) -> list[bytes]:
    stop = asyncio.Event()
    out: list[bytes] = []
    source = ReplaySource(path, speed)

    async def read() -> None:
        async for raw in source.stream(stop):
            out.append(raw)

    task = asyncio.create_task(read())
    while source.connected:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    return out


@pytest.mark.parametrize(("venue", "feed_cls"), [("kalshi", KalshiFeed), ("polymarket", PolymarketFeed)])
def test_record_then_replay_reproduces_the_published_prices(tmp_path: Path, venue: str, feed_cls: type) -> None:
    sim = SimVenue(venue, SimConfig(seed=3, games=2, rate_per_s=400.0, mispricing_at_s=(0.2,),
                                    mispricing_duration_ms=300.0, start_date="2026-11-24"))
    original: list[bytes] = []
    path = tmp_path / f"{venue}.jsonl.gz"
    stats = asyncio.run(record(sim, path, 1.0, venue, on_frame=lambda raw, t, s: original.append(raw)))
    assert stats.frames == len(original) > 50
    rows = [json.loads(line) for line in gzip.open(path, "rt")]
    assert set(rows[0]) == {"t_ns", "venue", "raw"} and rows[0]["venue"] == venue
    assert all(a["t_ns"] <= b["t_ns"] for a, b in zip(rows, rows[1:]))
    again = asyncio.run(replayed(path, 0))
    assert again == original
    assert tops(feed_cls, again) == tops(feed_cls, original) and len(tops(feed_cls, original)) > 20


def test_replay_keeps_the_recorded_pace_divided_by_speed(tmp_path: Path) -> None:
    """Never earlier than the recorded gaps / speed, and faster at a higher speed (no upper wall-clock bound:
    the machine is shared)."""
    frames = [(0.0, b'{"a":1}'), (0.3, b'{"a":2}'), (0.3, b'{"a":3}')]
    path = tmp_path / "paced.jsonl.gz"
    asyncio.run(record(ListSource(frames), path, 2.0, "kalshi", stop=None))
    recorded = [t for t, _, _ in read_recording(path)]
    span = (recorded[-1] - recorded[0]) / 1e9
    assert span >= 0.55
    took: dict[float, float] = {}
    for speed in (1.0, 4.0):
        started = time.monotonic()
        assert asyncio.run(replayed(path, speed)) == [raw for _, raw in frames]
        took[speed] = time.monotonic() - started
        assert took[speed] >= span / speed * 0.95, (speed, took)
    assert took[4.0] < took[1.0]


@pytest.mark.parametrize(("venue", "feed_cls"), [("kalshi", KalshiFeed), ("polymarket", PolymarketFeed)])
def test_a_prebuilt_simulator_recording_is_the_stream_the_simulator_sends(tmp_path: Path, venue: str,
                                                                          feed_cls: type) -> None:
    """record_sim builds the traffic ahead on a simulated clock (the benchmark's venue load): the same frames, one
    read per step at the configured rate, the mispricing at its time, and the listings beside it."""
    cfg = SimConfig(seed=5, games=2, rate_per_s=200.0, mispricing_at_s=(0.5,), mispricing_duration_ms=200.0,
                    mispricing_venue=venue, start_date="2026-11-24")
    path = tmp_path / f"{venue}.jsonl.gz"
    start = 1_795_000_000.0  # a fixed simulated clock, so the traffic can be built again below

    stats = record_sim(SimVenue(venue, cfg), path, 2.0, start_wall_s=start)

    reads = list(read_reads(path))
    steps = reads[1:]  # the first read is the subscription's snapshots
    assert stats.frames == sum(len(frames) for _, frames in reads) and stats.seconds == pytest.approx(2.0)
    assert len(steps) == 400  # every step sends something (a size jitter when the price did not move)
    gaps = {round((b - a) / 1e9, 6) for (a, _), (b, _) in zip(steps, steps[1:])}
    assert gaps == {0.005}  # one read per step, at the configured rate
    assert [x.ticker for x in load_listings(path)] == [x.ticker for x in SimVenue(venue, cfg).listings()]
    frames = [raw for _, batch in reads for raw in batch]
    again = [raw for _, batch in SimVenue(venue, cfg).prebuilt(2.0, start) for raw in batch]
    assert frames == again  # deterministic: the same seed and clock build the same traffic
    # the injected game's home contract is 12c cheaper on this venue from 0.5 s to 0.7 s
    sim = SimVenue(venue, cfg)
    game = sim.games[0]
    home = next(m.ticker for m in sim.markets if m.game is game and m.team is game.home)
    feed, asks = feed_cls(), []
    for t_ns, batch in reads:
        for raw in batch:
            asks += [((t_ns - reads[0][0]) / 1e9, c.top.yes_ask) for c in feed.handle(raw, t_ns)
                     if c.ticker == home and c.top.yes_ask is not None]
    before = [ask for at, ask in asks if at < 0.5][-1]
    during = [ask for at, ask in asks if 0.5 <= at < 0.7]
    assert during and min(during) <= before - 10, (before, during)


def test_replay_delivers_each_recorded_read_as_one_batch_and_the_frames_one_by_one(tmp_path: Path) -> None:
    """Frames recorded with one receive time arrived in one read: `stream_batches` gives them together (the
    monitor publishes each market once per read), `stream` one at a time, in the same order."""
    path = tmp_path / "sim.jsonl.gz"
    record_sim(SimVenue("kalshi", SimConfig(seed=2, games=3, rate_per_s=500.0, start_date="2026-11-24")), path, 0.4)
    expected = [frames for _, frames in read_reads(path)]
    assert any(len(frames) > 1 for frames in expected)  # the snapshot read at least

    async def batches() -> list[list[bytes]]:
        stop, out = asyncio.Event(), []
        async for frames in ReplaySource(path, 0, hold=False).stream_batches(stop):
            out.append(frames)
        return out

    assert asyncio.run(batches()) == expected
    assert asyncio.run(replayed(path, 0)) == [raw for frames in expected for raw in frames]


def test_a_recording_that_spans_a_kalshi_reconnect_replays_without_a_false_gap(tmp_path: Path) -> None:
    """After a reconnect the new connection's subscriptions restart at seq 1 (and reuse sid numbers): the
    replayed feed starts them afresh instead of counting a gap, and quotes from the new snapshot."""
    session = _kalshi_session()  # subscribed (sid 2), snapshot seq 1, deltas seq 2..4
    path = tmp_path / "reconnect.jsonl.gz"  # the same session again: a new connection's sid 2 from seq 1
    asyncio.run(record(ListSource([(0.0, raw) for raw in session + session]), path, 2.0, "kalshi"))
    feed = KalshiFeed()
    quotes = [c for raw in asyncio.run(replayed(path, 0)) for c in feed.handle(raw, 1)]
    assert feed.gaps == 0 and feed.take_resync() == set()
    fresh = KalshiFeed()
    first_quotes = [c for raw in session for c in fresh.handle(raw, 1)]
    assert len(quotes) == 2 * len(first_quotes) and quotes[len(first_quotes):] == first_quotes
    # a real gap inside one subscription still counts
    gapped = KalshiFeed()
    for raw in session[:2] + session[3:]:
        gapped.handle(raw, 1)
    assert gapped.gaps == 1


def _kalshi_session() -> list[bytes]:
    path = Path(__file__).parent / "data" / "kalshi" / "orderbook_session.jsonl"
    return [line.encode() for line in path.read_text().splitlines() if line.strip()]


def test_source_selection_parses_sim_live_and_replay(tmp_path: Path) -> None:
    assert parse_source("", "KALSHI_SOURCE") == SourceSpec("sim")
    assert parse_source("replay:/data/k.jsonl.gz@10x", "KALSHI_SOURCE") == SourceSpec("replay", "/data/k.jsonl.gz", 10.0)
    assert parse_source("replay:k.gz@max", "X").speed == 0.0
    with pytest.raises(ConfigError, match="KALSHI_SOURCE"):
        parse_source("websocket", "KALSHI_SOURCE")
    with pytest.raises(ConfigError, match="no recording"):
        KalshiMonitor.config_from_env(Env({"KALSHI_SOURCE": f"replay:{tmp_path}/missing.gz"}))
    with pytest.raises(ConfigError, match="KALSHI_API_KEY_ID"):
        KalshiMonitor.config_from_env(Env({"KALSHI_SOURCE": "live", "DATABASE_URL": "postgresql://x/y"}))
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        PolymarketMonitor.config_from_env(Env({"POLYMARKET_SOURCE": "live"}))
    live = PolymarketMonitor.config_from_env(Env({"POLYMARKET_SOURCE": "live", "DATABASE_URL": "postgresql://x/y",
                                                  "POLYMARKET_WS_URL": "ws://127.0.0.1:1/ws/market"}))
    assert live.source == "live" and live.live.ws_url == "ws://127.0.0.1:1/ws/market" and live.stale_feed_s == 30.0


def test_discovery_in_replay_mode_uses_the_listings_stored_beside_the_recording(tmp_path: Path) -> None:
    cfg = SimConfig(seed=5, games=3, start_date="2026-11-24")
    path = tmp_path / "k.jsonl.gz"
    path.write_bytes(gzip.compress(b""))
    save_listings(path, SimVenue("kalshi", cfg).listings()[:2])  # one game only
    env = Env({"DATABASE_URL": "postgresql://x/y", "KALSHI_SOURCE": f"replay:{path}", "SIM_SEED": "5",
               "SIM_GAMES": "3", "SIM_DATE": "2026-11-24", "SIM_GAME_LENGTH_S": "0"})  # the recording's games
    games, unmatched = discover(DiscoveryConfig.from_env(env))
    assert len(games) == 1 and len([x for x in unmatched if x.venue == "polymarket"]) == 4


def test_monitor_feed_liveness_stops_when_the_replay_ends_and_its_markets_are_withdrawn(tmp_path: Path) -> None:
    """A finished replay is a silent, disconnected feed: feed_live_ns stops; STALE_FEED_S after it stopped, each
    market gets one cleared quote and counts in `stale_markets`; once the feed is intact again, the valid books are
    published again."""
    sim = SimVenue("kalshi", SimConfig(seed=3, games=1, rate_per_s=200.0, start_date="2026-11-24"))
    frames = sim.snapshots() + [raw for _ in range(20) for raw in sim.step()]
    path = tmp_path / "k.jsonl.gz"
    asyncio.run(record(ListSource([(0.0, f) for f in frames]), path, 0.5, "kalshi"))
    monitor = KalshiMonitor.__new__(KalshiMonitor)
    cfg = KalshiMonitor.config_from_env(Env({"KALSHI_SOURCE": f"replay:{path}@max", "STALE_FEED_S": "0.2"}))
    published: list[tuple[str, object]] = []

    class Outbox:
        def publish_many(self, items: list) -> None:
            published.extend(items)

        def serve_late_joiners(self) -> None:
            pass

    from arbees_core.transport import TransportSettings

    KalshiMonitor.__init__(monitor, TransportSettings.from_env(Env({})), cfg)
    monitor.outbox = Outbox()  # type: ignore[assignment]

    async def run() -> tuple[int, int]:
        done = asyncio.Event()
        monitor.source = monitor.make_source()
        reader = asyncio.create_task(monitor._read(monitor.source, done))
        while monitor.source.connected:
            await asyncio.sleep(0.01)
        live_at_end = monitor.feed_live_ns()
        await asyncio.sleep(0.05)
        live_later = monitor.feed_live_ns()
        done.set()
        await asyncio.wait_for(reader, 5)
        return live_at_end, live_later

    live_at_end, live_later = asyncio.run(run())
    assert live_at_end > 0 and live_later == live_at_end
    assert len(published) > 2

    def cleared() -> list:
        return [u for _, u in published if u.yes_bid is None and u.yes_ask is None]

    monitor.check_stale(live_at_end + 100_000_000)  # over for 0.1 s, STALE_FEED_S = 0.2: not yet
    assert cleared() == []
    monitor.check_stale(live_at_end + 1_000_000_000)
    assert len(cleared()) == 2 and monitor.metrics.gauges["stale_markets"] == 2
    monitor.check_stale(live_at_end + 2_000_000_000)
    assert len(cleared()) == 2  # once per market, not every check
    monitor.source.connected = True  # the feed intact again: both books are still valid, so published again
    before = len(published)
    monitor.check_stale(time.time_ns())
    assert [u.yes_bid is not None for _, u in published[before:]] == [True, True]
    assert monitor.metrics.gauges["stale_markets"] == 0


def test_cli_record_and_markets(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from arbees_cli.main import app
    from arbees_core.store.db import connect
    from arbees_core.store.mappings import save_mappings
    from arbees_core.store.schema import migrate
    from arbees_core.strategy.matching import match_markets

    monkeypatch.setenv("ARBEES_HOME", str(tmp_path))
    monkeypatch.setenv("SIM_RATE", "300")
    out = tmp_path / "k.jsonl.gz"
    result = CliRunner().invoke(app, ["record", "--venue", "kalshi", "--duration", "1s", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "recorded" in result.output and len(list(read_recording(out))) > 10
    assert Path(f"{out}.listings.json").exists()
    out_json = tmp_path / "p.jsonl.gz"
    result = CliRunner().invoke(app, ["record", "--venue", "polymarket", "--duration", "1s", "--out", str(out_json),
                                      "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)  # nothing but the object on stdout: no progress, no summary line
    assert body["passed"] and body["exit_code"] == 0 and body["venue"] == "polymarket" and body["source"] == "sim"
    assert body["frames"] == len(list(read_recording(out_json))) > 10 and body["out"] == str(out_json)
    assert body["listings"] > 0 and "gaps" in body["feed"]

    cfg = SimConfig(seed=2, games=2, start_date="2026-11-24")
    games, unmatched = match_markets(SimVenue("kalshi", cfg).listings(), SimVenue("polymarket", cfg).listings()[:2])
    with connect(database_url) as conn:
        migrate(conn)
        save_mappings(conn, games, unmatched)
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = CliRunner().invoke(app, ["markets", "--json", "--unmatched"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert len(body["games"]) == 1 and len(body["unmatched"]) == 2
    table = CliRunner().invoke(app, ["markets", "--unmatched"])
    assert table.exit_code == 0 and "1 games mapped" in table.output and "2 markets unmatched" in table.output


def test_a_replay_behind_its_schedule_still_gives_the_loop_turns_and_stops_when_asked(tmp_path: Path) -> None:
    """A monitor that cannot keep up with its recording must still run its housekeeping and honour a stop
    (SIGTERM): before, a replay with every read overdue never suspended, and the monitor was killed."""
    path = tmp_path / "dense.jsonl.gz"
    base = time.time_ns()
    with gzip.open(path, "wt") as out:  # 2 000 reads 10 us apart: all overdue after the first few
        for i in range(2000):
            out.write(json.dumps({"t_ns": base + i * 10_000, "venue": "kalshi", "raw": "{}"}) + "\n")

    async def run() -> tuple[int, int]:
        stop, reads, ticks = asyncio.Event(), 0, 0

        async def housekeeping() -> None:
            nonlocal ticks
            while not stop.is_set():
                await asyncio.sleep(0.01)
                ticks += 1
                if ticks == 5:
                    stop.set()  # the stop request, as the monitor's housekeeping passes it on

        keeper = asyncio.create_task(housekeeping())
        async for _ in ReplaySource(path, 1.0).stream_batches(stop):
            reads += 1
            time.sleep(0.002)  # parsing slower than the recording's pace
        await keeper
        return reads, ticks

    reads, ticks = asyncio.run(run())
    assert ticks == 5
    assert reads < 2000  # stopped mid-recording, not after replaying all of it
