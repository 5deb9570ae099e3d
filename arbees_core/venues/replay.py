"""Record a venue's raw frames with receive times, and replay them into a monitor at 1x or N x speed.

A recording is gzip-compressed JSON lines, one per frame: `{"t_ns": <receive time, ns since the epoch>,
"venue": "kalshi"|"polymarket", "raw": "<frame text>"}`. The listings the recording's markets came from can be
stored beside it (`<file>.listings.json`), so discovery in replay mode maps the same markets.

`ReplaySource(path, speed)` yields the frames with the recorded gaps divided by `speed` (0 = as fast as
possible), so a validation run can be repeated on the same traffic and produces the same prices. Frames recorded
with the same receive time arrived in one read and are replayed as one (`stream_batches`), so the monitor
publishes each market once per read, as it did live.

`record_sim` writes the simulator's traffic without waiting for it: built at once on a simulated clock, each
step's frames one read. The benchmark replays it so that building venue messages (the venue's work) does not
share the CPU with the pipeline under test, and every configuration it compares sees the same traffic.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from arbees_core.venues.listing import MarketListing
from arbees_core.venues.pacing import LoopTurns

if TYPE_CHECKING:
    from arbees_core.venues.sim import SimVenue


class FrameSource(Protocol):
    def stream(self, stop: asyncio.Event | None = None) -> AsyncIterator[bytes]: ...


@dataclass
class RecordStats:
    """What a recording holds: frames, bytes of frame text, seconds recorded."""

    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0
    path: str = ""


def listings_path(path: str | Path) -> Path:
    return Path(f"{path}.listings.json")


def save_listings(path: str | Path, listings: list[MarketListing]) -> Path:
    """Store the listings beside a recording (raw venue fields dropped)."""
    out = listings_path(path)
    rows = [{k: v for k, v in asdict(x).items() if k != "raw"} for x in listings]
    out.write_text(json.dumps(rows, indent=1))
    return out


def load_listings(path: str | Path) -> list[MarketListing] | None:
    """The listings stored beside a recording, or None when there are none."""
    try:
        rows = json.loads(listings_path(path).read_text())
    except FileNotFoundError:
        return None
    return [MarketListing(**row) for row in rows]


async def record(source: FrameSource, path: str | Path, duration_s: float, venue: str = "",
                 stop: asyncio.Event | None = None,
                 on_frame: Callable[[bytes, int, RecordStats], None] | None = None) -> RecordStats:
    """Write `source`'s frames to `path` for `duration_s` seconds (or until `stop`); returns what was written.
    `on_frame(raw, recv_ns, stats)` is called after each frame (progress display, a feed that asks to resync)."""
    stop = stop or asyncio.Event()
    stats = RecordStats(path=str(path))
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    timer = loop.call_later(duration_s, stop.set)
    try:
        with gzip.open(path, "wt", encoding="utf-8") as out:
            async for raw in source.stream(stop):
                recv_ns = time.time_ns()
                text = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
                out.write(json.dumps({"t_ns": recv_ns, "venue": venue, "raw": text}, separators=(",", ":")) + "\n")
                stats.frames += 1
                stats.bytes += len(text)
                if on_frame is not None:
                    on_frame(raw, recv_ns, stats)
                if stop.is_set():
                    break
    finally:
        timer.cancel()
        stats.seconds = time.monotonic() - started
    return stats


def record_sim(sim: SimVenue, path: str | Path, seconds: float, compresslevel: int = 1,
               start_wall_s: float | None = None,
               on_frame: Callable[[bytes, int, RecordStats], None] | None = None) -> RecordStats:
    """Write `seconds` of `sim`'s traffic to `path` as fast as it can be built (`SimVenue.prebuilt`, from
    `start_wall_s`, default now); the frames of one step share their receive time, so a replay delivers them as
    one read. Listings go beside it (every game played during the recording). `on_frame(raw, t_ns, stats)` as in
    `record`."""
    stats = RecordStats(path=str(path))
    save_listings(path, sim.listings(seconds, start_wall_s))
    first = last = 0.0
    with gzip.open(path, "wb", compresslevel=compresslevel) as out:
        for wall_s, frames in sim.prebuilt(seconds, start_wall_s):
            t_ns = int(wall_s * 1e9)
            first, last = first or wall_s, wall_s
            for raw in frames:
                out.write(orjson.dumps({"t_ns": t_ns, "venue": sim.venue, "raw": raw.decode()}) + b"\n")
                stats.frames += 1
                stats.bytes += len(raw)
                if on_frame is not None:
                    on_frame(raw, t_ns, stats)
    stats.seconds = last - first
    return stats


def read_recording(path: str | Path) -> Iterator[tuple[int, str, bytes]]:
    """(t_ns, venue, raw frame) of every line of a recording, in order."""
    with gzip.open(path, "rb") as lines:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row: dict[str, Any] = orjson.loads(line)
                yield int(row["t_ns"]), str(row.get("venue") or ""), str(row["raw"]).encode()
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: not a recording line ({type(e).__name__}: {e})") from None


def read_reads(path: str | Path) -> Iterator[tuple[int, list[bytes]]]:
    """(t_ns, frames) of every read of a recording: consecutive frames with the same receive time together."""
    for t_ns, group in itertools.groupby(read_recording(path), key=lambda row: row[0]):
        yield t_ns, [raw for _, _, raw in group]


class ReplaySource:
    """A recording played back as a venue source: the same frames, the recorded gaps divided by `speed`.
    With `hold`, the stream stays open (silent, `connected` False) after the last frame until `stop`."""

    def __init__(self, path: str | Path, speed: float = 1.0, hold: bool = True) -> None:
        if speed < 0:
            raise ValueError("replay speed cannot be negative")
        self.path = Path(path)
        self.speed = speed
        self.hold = hold
        self.frames = 0
        self.connected = True
        if not self.path.exists():
            raise FileNotFoundError(f"no recording at {self.path}")

    #: A recording has no connections to count (the monitor's VenueSource protocol).
    connects = 0

    def intact(self, now_ns: int) -> bool:
        """While it plays: a finished replay is a silent feed whose prices age out."""
        return self.connected

    def gauges(self) -> dict[str, int]:
        return {}

    def stats(self) -> dict[str, Any]:
        return {"state": "replaying" if self.connected else "finished", "path": str(self.path),
                "speed": self.speed or "max", "frames": self.frames}

    async def stream(self, stop: asyncio.Event | None = None) -> AsyncIterator[bytes]:
        """The frames one at a time."""
        async for frames in self.stream_batches(stop):
            for raw in frames:
                yield raw

    async def stream_batches(self, stop: asyncio.Event | None = None) -> AsyncIterator[list[bytes]]:
        """The frames of each recorded read together, each read when it is due."""
        stop = stop or asyncio.Event()
        start_wall = time.monotonic()
        first_ns: int | None = None
        turns = LoopTurns()  # behind schedule, or as fast as possible: the monitor's housekeeping and stop still run
        for t_ns, frames in read_reads(self.path):
            first_ns = t_ns if first_ns is None else first_ns
            if self.speed > 0:
                due = start_wall + (t_ns - first_ns) / 1e9 / self.speed
                while (delay := due - time.monotonic()) > 0 and not stop.is_set():
                    await asyncio.sleep(min(delay, 0.05))
                    turns.suspended()
            await turns.take()
            if stop.is_set():
                break
            self.frames += len(frames)
            yield frames
        self.connected = False
        if self.hold:
            await stop.wait()  # a finished replay is a silent feed: its prices age out, the monitor keeps running
