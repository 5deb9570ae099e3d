"""Counters and per-hop latency histograms of one service, and where they are published.

Each service keeps plain integer counters (messages in/out, rejects per reason, sequence gaps, drops) and one
HDR histogram per hop (microseconds). A snapshot is written every heartbeat to
`.arbees/metrics/<service>.json` and to the Redis key `arbees:health:<service>` (with a TTL), so the CLI and
tests read figures from data, never from the wall clock of a unit test.
"""

from __future__ import annotations

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


class LatencyHistograms:
    """One HDR histogram per hop name; values recorded in nanoseconds, stored in microseconds."""

    def __init__(self) -> None:
        self._hists: dict[str, HdrHistogram] = {}
        self._sum_us: dict[str, int] = {}

    def record_ns(self, hop: str, value_ns: int) -> None:
        hist = self._hists.get(hop)
        if hist is None:
            hist = self._hists[hop] = HdrHistogram(_LOWEST_US, _HIGHEST_US, _SIG_DIGITS)
        value_us = max(_LOWEST_US, min(_HIGHEST_US, value_ns // 1000))
        hist.record_value(value_us)
        self._sum_us[hop] = self._sum_us.get(hop, 0) + value_us

    def summary(self) -> dict[str, dict[str, float]]:
        """Per hop: count, p50/p95/p99/max in microseconds, and the encoded histogram for exact merging."""
        out: dict[str, dict[str, Any]] = {}
        for hop, hist in self._hists.items():
            count = hist.get_total_count()
            if not count:
                continue
            # one pass for the percentiles, and our own running sum for the mean: the library's
            # get_mean_value() walks every bucket in Python (~30 ms), which stalled the hot path each heartbeat
            pct = hist.get_percentile_to_value_dict([50, 95, 99])
            out[hop] = {
                "count": count,
                "p50_us": pct[50],
                "p95_us": pct[95],
                "p99_us": pct[99],
                "max_us": hist.get_max_value(),
                "mean_us": round(self._sum_us.get(hop, 0) / count, 1),
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
