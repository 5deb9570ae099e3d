"""The decision matrix's execution-risk rows, judged on the soak samples (`validation/soak.py`).

* **Unhedged exposure** (critical): an arbitrage is two legs, and one filled without the other is an open,
  one-sided position. Every sample carries execution_service's unhedged contracts (pairs whose legs hold
  different quantities); more than `unhedged_max_contracts` in any sample is NO-GO.
* **Risk rejections** (advisory): signals execution refused before any order (exposure or order-size limit, kill
  switch, expired, positions unknown), counted per kind. They are the limits working, not errors, so the error
  rate leaves them out; this row reports them with their reasons, and is DEBUG when more than
  `risk_rejected_share_max` of the signals were refused (exposure that is never freed looks like that).
"""

from __future__ import annotations

from typing import Any

from arbees_core.validation.thresholds import Thresholds
from arbees_core.validation.verdicts import DEBUG, GO, NOGO, Row


def counter_increase(samples: list[dict[str, Any]], value: Any) -> int:
    """Sum of the positive steps of a cumulative counter read by `value(sample)` between consecutive samples (a
    counter that went down restarted with its process: the new count is the step)."""
    total = 0
    for before, after in zip(samples, samples[1:]):
        a, b = int(value(before) or 0), int(value(after) or 0)
        total += b - a if b >= a else b
    return total


def _kinds(samples: list[dict[str, Any]]) -> dict[str, int]:
    """Risk rejections per kind over the soak."""
    kinds = sorted({k for s in samples for k in (s.get("risk_rejected") or {})})
    counts = {k: counter_increase(samples, lambda s, k=k: (s.get("risk_rejected") or {}).get(k, 0)) for k in kinds}
    return {k: n for k, n in counts.items() if n}


def risk_rejections_row(samples: list[dict[str, Any]], t: Thresholds) -> Row:
    """The advisory row of risk rejections, with their reasons."""
    metric = "Risk rejections"
    target = f"advisory; DEBUG above {t.risk_rejected_share_max:.0%} of signals"
    judged = [s for s in samples if "risk_rejected" in s]
    if len(judged) < max(2, t.min_samples_soak_samples):
        return Row(metric, target, None, DEBUG, f"insufficient data: n={len(judged)} soak samples with risk "
                   f"rejections counted, need >= {max(2, t.min_samples_soak_samples)}", False, None, len(judged))
    kinds = _kinds(judged)
    rejected = sum(kinds.values())
    signals = counter_increase(judged, lambda s: s.get("signals", 0))
    share = rejected / signals if signals else 0.0
    why = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])) or "none"
    exposure = judged[-1].get("exposure_usd")
    reason = (f"{rejected} of {signals} signals ({share:.1%}) refused before any order: {why}; the limits working, "
              f"not errors (the error rate leaves them out)"
              + (f"; open exposure ${exposure:.2f} at the last sample" if exposure is not None else ""))
    if signals and share > t.risk_rejected_share_max:
        return Row(metric, target, round(share, 6), DEBUG, f"{reason}: more than {t.risk_rejected_share_max:.0%} "
                   f"of the signals were refused; {_freed(judged)}", False, None, signals)
    return Row(metric, target, round(share, 6), GO, reason, False, None, signals)


def _freed(samples: list[dict[str, Any]]) -> str:
    """Whether the soak's exposure ever fell (positions closing free it), for a row where the limit binds."""
    exposure = [float(s["exposure_usd"]) for s in samples if s.get("exposure_usd") is not None]
    falls = sum(1 for a, b in zip(exposure, exposure[1:]) if b < a)
    if not exposure:
        return "is exposure freed when positions close?"
    if not falls:
        return "the exposure never fell: is exposure freed when positions close?"
    return (f"the exposure fell in {falls} of {len(exposure) - 1} intervals as positions closed, so the limit binds "
            "because signals come faster than positions settle (MAX_EXPOSURE_USD, or the markets' horizon)")


def unhedged_row(samples: list[dict[str, Any]], t: Thresholds) -> Row:
    """The critical row: unhedged contracts in every sample, with the worst one's size and age."""
    limit = t.unhedged_max_contracts
    metric, target = "Unhedged exposure", f"{limit:g} contracts"
    judged = [s for s in samples if isinstance(s.get("unhedged"), dict)]
    if len(judged) < t.min_samples_soak_samples:
        return Row(metric, target, None, DEBUG, f"insufficient data: n={len(judged)} soak samples with "
                   f"execution_service's positions, need >= {t.min_samples_soak_samples}", True, None, len(judged))
    worst = max(judged, key=lambda s: (float(s["unhedged"].get("contracts") or 0),
                                       float(s["unhedged"].get("oldest_s") or 0)))
    contracts = float(worst["unhedged"].get("contracts") or 0)
    misses = counter_increase(judged, lambda s: s.get("leg_misses", 0))
    if contracts > limit:
        u = worst["unhedged"]
        return Row(metric, target, contracts, NOGO, f"{contracts:g} contracts unhedged in {u.get('pairs', 0)} "
                   f"pair(s) at t={worst.get('t_s', 0):g} s, the oldest open {u.get('oldest_s', 0):g} s (limit "
                   f"{limit:g}): a leg filled without its partner; {misses} leg misses over the soak", True, None,
                   len(judged))
    return Row(metric, target, contracts, GO, f"{contracts:g} contracts unhedged in all {len(judged)} samples; "
               f"{misses} leg misses over the soak, each left no naked leg", True, None, len(judged))
