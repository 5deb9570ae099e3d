"""Statistics for `arbees decide`: HDR histogram percentiles, bootstrap confidence intervals, soak trends (slopes
with intervals that allow for autocorrelated samples: `trend_fit`).

Pure Python (no numpy) and deterministic: every random draw comes from a `random.Random(seed)`.

Latency values are in microseconds, as the phase 4 HDR histograms store them.

The bootstrap is two-level (windows, then values): each replicate resamples the interleaved windows of a mode
with replacement, merges their bucket counts, and takes the q-th percentile of `m` values drawn from that merged
distribution. Drawing the `m` values one by one is not needed: the k-th smallest of `m` i.i.d. draws from a
distribution F is exactly F^-1(U) with U ~ Beta(k, m - k + 1), so one `betavariate` per replicate gives the same
replicate distribution as weighted sampling of `m` bucket values, whatever `m` is. `m` is therefore the full
merged count by default (`max_draws=None`); pass `max_draws` to cap it (wider, more conservative intervals).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

from hdrh.histogram import HdrHistogram

from arbees_core.telemetry.metrics import decode_histogram


@dataclass(frozen=True)
class Buckets:
    """A histogram as sorted bucket values (highest equivalent value, us) and their counts."""

    values: tuple[int, ...]
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)

    @classmethod
    def from_histogram(cls, hist: HdrHistogram | str | bytes) -> "Buckets":
        if not isinstance(hist, HdrHistogram):
            hist = decode_histogram(hist)
        values: list[int] = []
        counts: list[int] = []
        raw = hist.counts
        for index in range(hist.counts_len):
            count = raw[index]
            if count:
                # the value HDR reports for a percentile falling in this bucket (get_value_at_percentile)
                values.append(hist.get_highest_equivalent_value(hist.get_value_from_index(index)))
                counts.append(int(count))
        return cls(tuple(values), tuple(counts))


#: Where an interval lies against a limit (`Interval.against`).
WITHIN, BEYOND, SPANS = "within", "beyond", "spans"


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval."""

    estimate: float
    lo: float
    hi: float
    confidence: float
    n: int  # values behind the estimate (or pairs/samples for ratios and fits)

    def as_list(self) -> list[float]:
        return [self.lo, self.hi]

    def against(self, limit: float, inclusive: bool = True) -> str:
        """Where the whole interval lies against an upper limit: `within` (hi <= limit, or < when not
        `inclusive`), `beyond` (lo > limit) or `spans`. The one judgement under `arbees decide` (GO / NO-GO /
        DEBUG, strict `<`) and the benchmark's verdicts (met / missed / inconclusive, `<=` as ARCHITECTURE.md
        states its targets)."""
        if self.hi < limit or (inclusive and self.hi == limit):
            return WITHIN
        return BEYOND if self.lo > limit else SPANS


@dataclass(frozen=True)
class LinearFit:
    """Least-squares line y = intercept + slope * x, with the slope's standard error and t-based CI."""

    slope: float
    intercept: float
    slope_stderr: float
    slope_lo: float
    slope_hi: float
    n: int
    #: Independent samples the interval is worth: `n` for `linear_fit`, fewer for `trend_fit` when the residuals
    #: are autocorrelated (None: not estimated).
    n_eff: float | None = None
    #: Lag-1 autocorrelation of the residuals (`trend_fit`; None: not estimated).
    lag1: float | None = None

    @property
    def half_width(self) -> float:
        return (self.slope_hi - self.slope_lo) / 2


def merge_histograms(hists: Sequence[HdrHistogram | str | bytes]) -> HdrHistogram:
    """One histogram holding every value of `hists` (encoded strings are decoded)."""
    decoded = [h if isinstance(h, HdrHistogram) else decode_histogram(h) for h in hists]
    if not decoded:
        raise ValueError("no histogram to merge")
    merged = HdrHistogram(decoded[0].lowest_trackable_value, decoded[0].highest_trackable_value,
                          decoded[0].significant_figures)
    for hist in decoded:
        merged.add(hist)
    return merged


def histogram_percentile(hist: HdrHistogram | str | bytes, q: float) -> int:
    """The q-th percentile (0..100) of a histogram, in its unit (us), as HDR reports it."""
    if not isinstance(hist, HdrHistogram):
        hist = decode_histogram(hist)
    return int(hist.get_percentile_to_value_dict([q])[q])


def _target_rank(q: float, total: int) -> int:
    """HDR's rank of the q-th percentile among `total` values (1-based)."""
    return max(1, min(total, int(min(q, 100.0) * total / 100 + 0.5)))


def _grid(windows: Sequence[Buckets]) -> tuple[list[int], list[list[int]]]:
    """The union of bucket values, and per window its cumulative counts over that grid."""
    grid = sorted({v for w in windows for v in w.values})
    position = {v: i for i, v in enumerate(grid)}
    cumulative: list[list[int]] = []
    for w in windows:
        row = [0] * len(grid)
        for v, c in zip(w.values, w.counts):
            row[position[v]] += c
        running = 0
        for i, c in enumerate(row):
            running += c
            row[i] = running
        cumulative.append(row)
    return grid, cumulative


class _WindowSampler:
    """Resamples windows, then the q-th percentile of `m` draws from their merged values (see module doc)."""

    def __init__(self, windows: Sequence[Buckets], max_draws: int | None) -> None:
        self.windows = [w for w in windows if w.total]
        if not self.windows:
            raise ValueError("no window with values")
        self.grid, self.cumulative = _grid(self.windows)
        self.totals = [row[-1] for row in self.cumulative]
        self.max_draws = max_draws

    def percentile_all(self, q: float) -> float:
        total = sum(self.totals)
        return self._inverse_cdf([1] * len(self.windows), _target_rank(q, total) / total)

    def replicate(self, q: float, rng: random.Random, chosen: Sequence[int] | None = None) -> float:
        k = len(self.windows)
        picks = chosen if chosen is not None else [rng.randrange(k) for _ in range(k)]
        weights = [0] * k
        for i in picks:
            weights[i] += 1
        total = sum(w * t for w, t in zip(weights, self.totals))
        m = total if self.max_draws is None else min(total, self.max_draws)
        rank = _target_rank(q, m)
        u = rng.betavariate(rank, m - rank + 1)
        return self._inverse_cdf(weights, u)

    def _inverse_cdf(self, weights: Sequence[int], u: float) -> float:
        """Smallest bucket value whose merged cumulative share is >= u (binary search, O(windows * log grid))."""
        used = [(w, row) for w, row in zip(weights, self.cumulative) if w]
        total = sum(w * row[-1] for w, row in used)
        target = u * total
        lo, hi = 0, len(self.grid) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if sum(w * row[mid] for w, row in used) >= target:
                hi = mid
            else:
                lo = mid + 1
        return float(self.grid[lo])


def _as_buckets(windows: Sequence[Buckets | HdrHistogram | str | bytes]) -> list[Buckets]:
    return [w if isinstance(w, Buckets) else Buckets.from_histogram(w) for w in windows]


def _quantile_sorted(values: Sequence[float], p: float) -> float:
    """Linear-interpolated quantile (p in 0..1) of sorted values."""
    if len(values) == 1:
        return float(values[0])
    pos = p * (len(values) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(values) - 1)
    return float(values[low] + (values[high] - values[low]) * (pos - low))


def _percentile_interval(estimate: float, replicates: list[float], conf: float, n: int) -> Interval:
    replicates.sort()
    alpha = (1 - conf) / 2
    return Interval(estimate, _quantile_sorted(replicates, alpha), _quantile_sorted(replicates, 1 - alpha), conf, n)


def windows_percentile(windows: Sequence[Buckets | HdrHistogram | str | bytes], q: float) -> float:
    """q-th percentile (us) of all values of the windows merged (same definition as HDR's percentiles)."""
    return _WindowSampler(_as_buckets(windows), None).percentile_all(q)


def bootstrap_percentile_ci(windows_hists: Sequence[Buckets | HdrHistogram | str | bytes], q: float,
                            n_boot: int = 1000, seed: int = 0, conf: float = 0.95,
                            max_draws: int | None = None) -> Interval:
    """q-th percentile (us) of the merged windows, with a two-level percentile-bootstrap CI."""
    sampler = _WindowSampler(_as_buckets(windows_hists), max_draws)
    rng = random.Random(seed)
    replicates = [sampler.replicate(q, rng) for _ in range(n_boot)]
    return _percentile_interval(sampler.percentile_all(q), replicates, conf, sum(sampler.totals))


def bootstrap_ratio_ci(zmq_windows: Sequence[Buckets | HdrHistogram | str | bytes],
                       redis_windows: Sequence[Buckets | HdrHistogram | str | bytes], q: float,
                       n_boot: int = 1000, seed: int = 0, conf: float = 0.95,
                       max_draws: int | None = None, paired: bool = False) -> Interval:
    """Ratio zmq/redis of the q-th percentile, with a bootstrap CI.

    `paired=True` (same number of windows, i-th zmq window run next to the i-th redis window in the ABAB
    schedule) resamples pairs with the same indices, so slow drift of the machine cancels in the ratio.
    `n` of the result is the number of zmq windows.
    """
    zmq = _WindowSampler(_as_buckets(zmq_windows), max_draws)
    redis = _WindowSampler(_as_buckets(redis_windows), max_draws)
    paired = paired and len(zmq.windows) == len(redis.windows)
    rng = random.Random(seed)
    replicates: list[float] = []
    for _ in range(n_boot):
        picks = [rng.randrange(len(zmq.windows)) for _ in zmq.windows] if paired else None
        replicates.append(zmq.replicate(q, rng, picks) / redis.replicate(q, rng, picks))
    estimate = zmq.percentile_all(q) / redis.percentile_all(q)
    return _percentile_interval(estimate, replicates, conf, len(zmq.windows))


def _t_quantile(p: float, df: int) -> float:
    """Student-t quantile: exact for df 1 and 2, Cornish-Fisher expansion beyond (error < 1e-3 for df >= 3)."""
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = NormalDist().inv_cdf(p)
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def linear_fit(xs: Sequence[float], ys: Sequence[float], conf: float = 0.95) -> LinearFit:
    """Least-squares fit with a t-based CI of the slope (needs >= 2 points with distinct x)."""
    n = len(xs)
    if n != len(ys) or n < 2:
        raise ValueError(f"need >= 2 paired points, got {n} x and {len(ys)} y")
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("all x values are equal")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
    intercept = mean_y - slope * mean_x
    if n <= 2:
        return LinearFit(slope, intercept, math.inf, -math.inf, math.inf, n)
    residual_ss = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    stderr = math.sqrt(residual_ss / (n - 2) / sxx)
    half = _t_quantile(1 - (1 - conf) / 2, n - 2) * stderr
    return LinearFit(slope, intercept, stderr, slope - half, slope + half, n)


def lag1_autocorrelation(values: Sequence[float]) -> float:
    """Lag-1 autocorrelation of a series about its mean (0 for fewer than 3 values or a constant series)."""
    n = len(values)
    if n < 3:
        return 0.0
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values)
    if var == 0:
        return 0.0
    return sum((values[i] - mean) * (values[i + 1] - mean) for i in range(n - 1)) / var


def trend_fit(xs: Sequence[float], ys: Sequence[float], conf: float = 0.95) -> LinearFit:
    """Least-squares slope of a series sampled over time, with an interval that holds when consecutive residuals
    are correlated (what a soak's RSS samples are: memory moves in steps that last many samples, so the samples are
    not independent and `linear_fit`'s interval is too narrow).

    The adjustment for AR(1) residuals used for trends in climate series (Santer et al. 2000, 2008): with r1 the
    residuals' lag-1 autocorrelation (negative taken as 0), the samples are worth n_eff = n (1 - r1) / (1 + r1)
    independent ones; the slope's standard error is scaled by sqrt((n - 2) / (n_eff - 2)) and the t quantile
    taken at n_eff - 2 degrees of freedom (rounded down). n_eff <= 3 leaves too little to bound the slope: the
    interval is infinite, which every caller reads as inconclusive."""
    base = linear_fit(xs, ys, conf)
    n = base.n
    residuals = [y - base.intercept - base.slope * x for x, y in zip(xs, ys)]
    r1 = min(max(lag1_autocorrelation(residuals), 0.0), 1.0)
    n_eff = n * (1 - r1) / (1 + r1)
    df = math.floor(n_eff - 2)
    if n <= 2 or df < 1 or not math.isfinite(base.slope_stderr):
        return replace(base, slope_lo=-math.inf, slope_hi=math.inf, n_eff=n_eff, lag1=r1)
    stderr = base.slope_stderr * math.sqrt((n - 2) / (n_eff - 2))
    half = _t_quantile(1 - (1 - conf) / 2, df) * stderr
    return replace(base, slope_stderr=stderr, slope_lo=base.slope - half, slope_hi=base.slope + half,
                   n_eff=n_eff, lag1=r1)


#: How a slope's interval reads against a limit (`trend_verdict`).
TREND_FLAT, TREND_GROWING, TREND_TOO_WIDE, TREND_ACROSS = "flat", "growing", "too_wide", "across"


def trend_verdict(fit: LinearFit, limit: float) -> str:
    """The one rule for "is this series flat at +-limit per unit of x", shared by the memory benchmark and
    `arbees decide`'s memory row so that the two never read the same samples differently.

    flat: the whole interval lies within +-limit. growing: the slope is over the limit and the interval lies above
    0 (the growth is real, and its best estimate is over the limit; a leak is worth chasing before the interval
    clears the limit too). Otherwise the samples cannot tell: too_wide when the interval is wider than the limit
    (a longer soak, or steadier samples, would narrow it), across when it reaches past the limit."""
    if -limit <= fit.slope_lo and fit.slope_hi <= limit:
        return TREND_FLAT
    if fit.slope > limit and fit.slope_lo > 0:
        return TREND_GROWING
    return TREND_TOO_WIDE if fit.half_width > limit else TREND_ACROSS


def linear_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs."""
    return linear_fit(xs, ys).slope


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation / mean (0 for a constant series; inf when the mean is 0 but values vary)."""
    n = len(values)
    if n < 2:
        raise ValueError(f"need >= 2 values, got {n}")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    if mean == 0:
        return 0.0 if sd == 0 else math.inf
    return sd / abs(mean)

