"""The decision matrix's memory row ("Memory usage stable (not growing)"), judged on the soak samples.

Each service's RSS samples after the warm-up (`memory_warmup_s`: caches filling, the first games ending, so a
service that fills its caches and then stays flat reads flat) are fitted with a line; the slope's interval comes
from `stats.trend_fit`, which widens it for autocorrelated samples (RSS moves in steps that span many samples).

* GO: every service's interval lies within +-`memory_slope_mb_per_hour_max`, over at least `memory_min_span_s`.
* DEBUG "RSS growing": a slope over the limit whose interval lies above 0 (growth is real, not noise); the rule
  is `stats.trend_verdict`, the memory benchmark's too.
* DEBUG "inconclusive": a soak shorter than `memory_min_span_s` after warm-up (whatever the slopes: caches still
  filling look like a leak; the benchmark reads it so too), an interval wider than the limit
  (the soak cannot tell flat from growth at that limit: it says how wide the interval is), or one across it.
"""

from __future__ import annotations

import math
from typing import Any

from arbees_core.validation.stats import TREND_GROWING, LinearFit, trend_fit, trend_verdict
from arbees_core.validation.thresholds import Thresholds
from arbees_core.validation.verdicts import DEBUG, GO, Row

METRIC = "Memory growth (RSS slope)"


def memory_row(samples: list[dict[str, Any]], t: Thresholds) -> Row:
    """The memory row on the soak samples (see the module docstring)."""
    limit = t.memory_slope_mb_per_hour_max
    target = f"within +-{limit:g} MB/h per service"
    need = max(3, t.min_samples_soak_samples)
    series = rss_series(samples, t.memory_warmup_s)
    fits: dict[str, LinearFit] = {n: trend_fit([x for x, _ in p], [y for _, y in p], t.bootstrap_confidence)
                                  for n, p in series.items() if len(p) >= need and len({x for x, _ in p}) > 1}
    warm = f"after the {t.memory_warmup_s / 60:g}-min warm-up"
    if not fits:
        n = max((len(p) for p in series.values()), default=0)
        return Row(METRIC, target, None, DEBUG, f"insufficient data: n={n} samples with rss_mb per service {warm}, "
                   f"need >= {need}" + _soak_length_words(samples, t), False, None, n, "MB/h")
    ci = f"{t.bootstrap_confidence:.0%} CI, autocorrelation-adjusted"
    growing = sorted((n for n, f in fits.items() if trend_verdict(f, limit) == TREND_GROWING), key=lambda n: -fits[n].slope)
    worst = growing[0] if growing else max(fits, key=lambda n: max(abs(fits[n].slope_lo), abs(fits[n].slope_hi)))
    fit = fits[worst]
    span_s = max(p[-1][0] - p[0][0] for p in series.values() if p) * 3600
    verdict, reason = DEBUG, _debug_reason(fits, growing, worst, span_s, warm, ci, t)
    if not reason:
        verdict = GO
        reason = (f"all {len(fits)} services' {ci} within +-{limit:g} MB/h over {span_s / 60:.0f} min {warm}; "
                  f"widest {_words(worst, fit)} (n={fit.n} samples)")
    ci_list = [round(fit.slope_lo, 4), round(fit.slope_hi, 4)] if math.isfinite(fit.half_width) else None
    return Row(METRIC, target, round(fit.slope, 4), verdict, reason, False, ci_list, fit.n, "MB/h")


def _debug_reason(fits: dict[str, LinearFit], growing: list[str], worst: str, span_s: float, warm: str, ci: str,
                  t: Thresholds) -> str:
    """Why the row is DEBUG, or "" when it is GO."""
    limit, fit = t.memory_slope_mb_per_hour_max, fits[worst]
    if span_s < t.memory_min_span_s:  # first, as the memory benchmark does: caches still filling look like a leak
        return (f"inconclusive: {span_s / 60:.1f} min measured {warm}, need >= {t.memory_min_span_s / 60:g} min "
                f"to tell a leak from caches filling; {'steepest' if growing else 'widest'} {_words(worst, fit)} "
                f"({ci}, n={fit.n})")
    if growing:
        return (f"RSS growing in {len(growing)} service(s): {'; '.join(_words(g, fits[g]) for g in growing)} "
                f"({ci}, n={fit.n} samples {warm}) > limit {limit:g} MB/h (plan: memory usage stable)")
    if fit.half_width > limit:
        return (f"inconclusive: {_words(worst, fit)} ({ci}, n={fit.n} samples {warm}, worth {fit.n_eff or 0:.1f} "
                f"independent ones): the interval is wider than the +-{limit:g} MB/h limit, so this soak cannot "
                f"tell flat from growing at that limit; a longer soak narrows it")
    if fit.slope_lo < -limit or fit.slope_hi > limit:
        return (f"inconclusive: {_words(worst, fit)} reaches past the +-{limit:g} MB/h limit ({ci}, n={fit.n} "
                f"samples {warm}); a longer soak narrows it")
    return ""


def _words(name: str, fit: LinearFit) -> str:
    if not math.isfinite(fit.half_width):
        return f"{name} {fit.slope:+.2f} MB/h [unbounded]"
    return f"{name} {fit.slope:+.2f} MB/h [{fit.slope_lo:+.2f}, {fit.slope_hi:+.2f}]"


def rss_series(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, list[tuple[float, float]]]:
    """(hours, rss_mb) per service, from the samples taken at or after `warmup_s`."""
    series: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        t_s = float(s.get("t_s") or 0)
        if t_s < warmup_s:
            continue
        for name, svc in (s.get("services") or {}).items():
            if svc.get("rss_mb") is not None:
                series.setdefault(name, []).append((t_s / 3600, float(svc["rss_mb"])))
    return series


def _soak_length_words(samples: list[dict[str, Any]], t: Thresholds) -> str:
    last = max((float(s.get("t_s") or 0) for s in samples), default=0.0)
    return (f" (the soak lasted {last / 60:.1f} min; memory is judged over >= {t.memory_min_span_s / 60:g} min after "
            f"its first {t.memory_warmup_s / 60:g} min)")
