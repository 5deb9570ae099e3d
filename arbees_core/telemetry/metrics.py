"""Counters and per-hop latency histograms of one service, and where they are published.

Each service keeps plain integer counters (messages in/out, rejects per reason, sequence gaps, drops) and one
HDR histogram per hop (microseconds). A snapshot is written every heartbeat to
`.arbees/metrics/<service>.json` and to the Redis key `arbees:health:<service>` (with a TTL), so the CLI and
tests read figures from data, never from the wall clock of a unit test.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

#: Histogram range: 1 us .. 60 s, 3 significant digits.
_LOWEST_US = 1
_HIGHEST_US = 60_000_000
_SIG_DIGITS = 3
#: HDR's counters in blocks of one bucket half (1024 counters at 3 significant digits): the percentile search
#: walks block totals, then one block.
_BLOCK_BITS = 10
_BLOCK = 1 << _BLOCK_BITS


def _bucket_floor(value_us: int) -> int:
    """The lowest value HDR (3 significant digits) keeps apart from `value_us`: exact below 2048 us, above that
    the low bits HDR drops anyway. Aggregating on it loses nothing the histogram would have kept."""
    shift = value_us.bit_length() - 11
    return value_us if shift <= 0 else (value_us >> shift) << shift


def _bucket_ceil(floor_us: int) -> int:
    """The highest value of a bucket (what HDR reports for a percentile)."""
    shift = floor_us.bit_length() - 11
    return floor_us if shift <= 0 else floor_us + (1 << shift) - 1


class LatencyHistograms:
    """One HDR histogram per hop name; values recorded in nanoseconds, stored in microseconds.

    `record_ns` is on every service's hot path, and `HdrHistogram.record_value` is pure Python (several times the
    cost of a dict increment). So a sample only bumps a counter per HDR bucket; `summary()` (once per
    heartbeat) adds the pending bucket counts straight into the histogram's counts array (at the index that
    `record_value` would compute) and empties them. Percentiles are the histogram's own (highest equivalent value of
    the bucket holding the percentile), found through per-block totals (a block: the 1024 counters of one HDR bucket
    half) instead of walking the histogram's 17k counters. The memory is fixed: the HDR counts array and
    17 block totals per hop, however many distinct values come. Nothing is kept per distinct value: such a map, even
    bounded, fills for hours at a signal a second and reads as growth in every soak.
    """

    def __init__(self) -> None:
        self._hists: dict[str, HdrHistogram] = {}
        self._pending: dict[str, dict[int, int]] = {}
        self._blocks: dict[str, list[int]] = {}
        self._sum_us: dict[str, int] = {}
        self._count: dict[str, int] = {}
        self._max_us: dict[str, int] = {}

    def record_ns(self, hop: str, value_ns: int) -> None:
        value_us = value_ns // 1000
        value_us = _LOWEST_US if value_us < _LOWEST_US else _HIGHEST_US if value_us > _HIGHEST_US else value_us
        pending = self._pending.get(hop)
        if pending is None:
            pending = self._pending[hop] = {}
            hist = self._hists[hop] = HdrHistogram(_LOWEST_US, _HIGHEST_US, _SIG_DIGITS)
            self._blocks[hop] = [0] * ((hist.counts_len >> _BLOCK_BITS) + 1)
            self._sum_us[hop], self._count[hop], self._max_us[hop] = 0, 0, 0
        key = _bucket_floor(value_us)
        pending[key] = pending.get(key, 0) + 1
        self._sum_us[hop] += value_us
        self._count[hop] += 1
        if value_us > self._max_us[hop]:
            self._max_us[hop] = value_us

    def histogram(self, hop: str) -> HdrHistogram | None:
        """The hop's HDR histogram with every sample so far."""
        self._flush(hop)
        return self._hists.get(hop)

    def _flush(self, hop: str) -> None:
        pending = self._pending.get(hop)
        if not pending:
            return
        hist, blocks = self._hists[hop], self._blocks[hop]
        counts, index_for = hist.counts, hist._counts_index_for  # the index record_value computes
        for key, count in pending.items():
            i = index_for(key)
            counts[i] += count
            blocks[i >> _BLOCK_BITS] += count
        hist.total_count += sum(pending.values())
        hist.min_value = min(hist.min_value, min(pending))
        hist.max_value = max(hist.max_value, max(pending))
        pending.clear()

    def _below(self, hop: str, end: int) -> int:
        """Samples in the counters before index `end`."""
        block = end >> _BLOCK_BITS
        return sum(self._blocks[hop][:block]) + sum(self._hists[hop].counts[block << _BLOCK_BITS:end])

    def _percentiles(self, hop: str, percentiles: tuple[float, ...]) -> dict[float, int]:
        total, hist, blocks = self._count[hop], self._hists[hop], self._blocks[hop]
        out: dict[float, int] = {}
        for p in percentiles:
            rank = max(1, int(p / 100 * total + 0.5))
            seen, block = 0, 0
            while block < len(blocks) - 1 and seen + blocks[block] < rank:
                seen += blocks[block]
                block += 1
            start = block << _BLOCK_BITS
            i = start + bisect.bisect_left(list(itertools.accumulate(hist.counts[start:start + _BLOCK])), rank - seen)
            out[p] = _bucket_ceil(hist.get_value_from_index(min(i, hist.counts_len - 1)))
        return out

    def hops(self) -> list[str]:
        """The hops recorded so far."""
        return list(self._hists)

    def cumulative(self, hop: str, bounds_us: tuple[int, ...]) -> tuple[list[int], int, int]:
        """(samples <= each bound, total samples, sum in us) of a hop since the start, for a Prometheus histogram.
        A sample counts under a bound when its whole HDR bucket does (the bucket's highest value <= bound), so a
        bound inside a bucket (above 2 ms: buckets 0.1 % wide) counts that bucket in the next bound up."""
        self._flush(hop)
        hist = self._hists.get(hop)
        if hist is None:
            return [0] * len(bounds_us), 0, 0
        out = []
        for bound in bounds_us:
            floor = _bucket_floor(max(_LOWEST_US, min(_HIGHEST_US, int(bound))))
            i = hist._counts_index_for(floor)
            out.append(self._below(hop, i + 1 if _bucket_ceil(floor) <= bound else i))
        return out, self._count.get(hop, 0), self._sum_us.get(hop, 0)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per hop: count, p50/p95/p99/max in microseconds, and the encoded histogram for exact merging."""
        out: dict[str, dict[str, Any]] = {}
        for hop, hist in self._hists.items():
            self._flush(hop)
            count = self._count[hop]
            if not count:
                continue
            pct = self._percentiles(hop, (50, 95, 99))
            out[hop] = {
                "count": count,
                "p50_us": pct[50],
                "p95_us": pct[95],
                "p99_us": pct[99],
                "max_us": hist.get_max_value(),
                "mean_us": round(self._sum_us[hop] / count, 1),
                "hdr": hist.encode().decode("ascii"),
            }
        return out


def decode_histogram(encoded: str | bytes) -> HdrHistogram:
    """The histogram from a snapshot's `hdr` field (for merging windows in the CLI)."""
    return HdrHistogram.decode(encoded.encode("ascii") if isinstance(encoded, str) else encoded)


class Metrics:
    """Counters + histograms of one service instance, with a JSON snapshot."""

    def __init__(self, service: str, instance: str) -> None:
        self.service = service
        self.instance = instance
        self.started_ns = time.time_ns()
        self.counters: defaultdict[str, int] = defaultdict(int)
        self.gauges: dict[str, float] = {}
        self.latency = LatencyHistograms()

    def inc(self, name: str, by: int = 1) -> None:
        self.counters[name] += by

    def snapshot(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        snap: dict[str, Any] = {
            "service": self.service,
            "instance": self.instance,
            "pid": os.getpid(),
            "started_ns": self.started_ns,
            "ts_ns": time.time_ns(),
            "counters": dict(self.counters),
            "gauges": dict(self.gauges),
            "latency": self.latency.summary(),
            "rss_bytes": _rss_bytes(),
        }
        if extra:
            snap.update(extra)
        return snap


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def write_snapshot(folder: Path, service: str, snap: dict[str, Any]) -> Path:
    """Atomically replace `<folder>/<service>.json` with the snapshot."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{service}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(snap, default=str))
    os.replace(tmp, path)
    return path


def read_snapshot(folder: Path, service: str) -> dict[str, Any] | None:
    """The last snapshot a service wrote, or None."""
    try:
        return json.loads((folder / f"{service}.json").read_text())
    except (OSError, ValueError):
        return None
