"""Sliding windows the dashboard keeps: per-hop latency of recent trades, and message rates per topic family.

Both are bounded (by time and by count) and fed from the api's feed thread; readers take copies under the
state's lock. Percentiles are exact over the window (a few thousand values at most: trades, not prices).
"""

from __future__ import annotations

import bisect
import collections
import math
import time

from arbees_core.dashboard.models import HopStats, LatencyView, RateView

HOPS = ("price", "signal", "execution", "end_to_end")
#: Upper bounds of the end-to-end histogram's buckets, milliseconds (the last bucket is everything above).
HISTOGRAM_BOUNDS_MS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 50.0, 100.0,
                                          250.0, 1000.0)
#: Most values a window keeps per mode (oldest dropped first), whatever its length.
MAX_VALUES = 20_000
#: The rate shown as "per second": over this many most recent whole seconds.
RATE_SPAN_S = 10


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank `q` percentile (0-100) of already sorted values, None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class LatencyWindow:
    """Per mode, the last `window_s` seconds of signals' hop latencies (one entry per executed signal)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._values: dict[str, collections.deque[tuple[float, dict[str, float]]]] = {}

    def add(self, mode: str, at_s: float, hops: dict[str, float]) -> None:
        """One executed signal's hops (ms) at `at_s` (Unix seconds)."""
        values = self._values.setdefault(mode, collections.deque(maxlen=MAX_VALUES))
        values.append((at_s, hops))

    def _recent(self, mode: str, now_s: float) -> list[dict[str, float]]:
        values = self._values.get(mode)
        if not values:
            return []
        since = now_s - self.window_s
        while values and values[0][0] < since:
            values.popleft()
        return [hops for at, hops in values if at >= since]  # a history entry may come in out of order

    def view(self, now_s: float | None = None) -> LatencyView:
        now_s = time.time() if now_s is None else now_s
        modes: dict[str, dict[str, HopStats]] = {}
        histogram: dict[str, list[int]] = {}
        for mode in sorted(self._values):
            recent = self._recent(mode, now_s)
            if not recent:
                continue
            modes[mode] = {}
            for hop in HOPS:
                values = sorted(h[hop] for h in recent if h.get(hop) is not None)
                modes[mode][hop] = HopStats(count=len(values), p50_ms=percentile(values, 50),
                                            p95_ms=percentile(values, 95), p99_ms=percentile(values, 99))
            counts = [0] * (len(HISTOGRAM_BOUNDS_MS) + 1)
            for h in recent:
                if h.get("end_to_end") is not None:
                    counts[bisect.bisect_left(HISTOGRAM_BOUNDS_MS, h["end_to_end"])] += 1
            histogram[mode] = counts
        return LatencyView(window_s=self.window_s, modes=modes, bounds_ms=list(HISTOGRAM_BOUNDS_MS),
                           histogram=histogram)


class RateMeter:
    """Messages per whole second per family, for the last `window_s` seconds."""

    def __init__(self, window_s: float) -> None:
        self.window_s = int(window_s)
        self._seconds: collections.deque[tuple[int, dict[str, int]]] = collections.deque()

    def count(self, family: str, n: int = 1, now_s: float | None = None) -> None:
        second = int(time.time() if now_s is None else now_s)
        if not self._seconds or self._seconds[-1][0] != second:
            self._seconds.append((second, {}))
            while self._seconds and self._seconds[0][0] <= second - self.window_s:
                self._seconds.popleft()
        counts = self._seconds[-1][1]
        counts[family] = counts.get(family, 0) + n

    def view(self, now_s: float | None = None) -> RateView:
        """Rates over the last RATE_SPAN_S whole seconds (the current, partial second left out), and the series."""
        now = int(time.time() if now_s is None else now_s)
        families = sorted({f for _, counts in self._seconds for f in counts})
        series: dict[str, list[list[float]]] = {f: [] for f in families}
        span = {f: 0 for f in families}
        for second, counts in self._seconds:
            if second >= now or second <= now - self.window_s:
                continue
            for f in families:
                series[f].append([float(second), float(counts.get(f, 0))])
                if second > now - 1 - RATE_SPAN_S:
                    span[f] += counts.get(f, 0)
        return RateView(per_s={f: round(span[f] / RATE_SPAN_S, 2) for f in families}, series=series)
