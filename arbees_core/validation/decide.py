"""`arbees decide`: GO / DEBUG / NO-GO from the stored phase 4 (latency) and phase 5 (soak) results.

The rows are the plan's Decision Matrix (stability, p50, p95, error rate, message rate) plus what canary practice
adds (lost messages, ZMQ errors, memory slope, ZMQ-vs-Redis ratios with bootstrap CIs) and what a trading desk
adds (unhedged exposure, critical; risk rejections, advisory: `decide_risk.py`). The memory row is in
`decide_memory.py`. Every row states the
observed value, the limit, the CI and the sample size; a row without enough data is DEBUG, never GO.
Thresholds live in `playbooks/decision.yaml` (see its comments for each rule); overrides re-judge offline.

Overall: NO-GO if any row is NO-GO, else DEBUG if any row is DEBUG, else GO. Exit codes 0 GO, 2 DEBUG, 1 NO-GO.
"""

from __future__ import annotations


from dataclasses import dataclass
from typing import Any

from arbees_core.validation.decide_risk import risk_rejections_row, unhedged_row
from arbees_core.validation.verdicts import DEBUG, EXIT_CODES, GO, NOGO, Row
from arbees_core.validation.stats import (BEYOND, WITHIN, Buckets, bootstrap_percentile_ci,
                                          bootstrap_ratio_ci, coefficient_of_variation, linear_fit, windows_percentile)
from arbees_core.validation.thresholds import Thresholds, load_thresholds, parse_overrides
from arbees_core.validation.decide_zmq_only import zmq_only_row
from arbees_core.validation.decide_memory import memory_row


@dataclass
class Decision:
    decision: str
    rows: list[Row]
    thresholds: Thresholds
    inputs: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.decision]

    @property
    def decided_by(self) -> list[str]:
        """The rows whose verdict is the overall one (empty for GO: every row passed)."""
        return [] if self.decision == GO else [r.metric for r in self.rows if r.verdict == self.decision]

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "exit_code": self.exit_code, "decided_by": self.decided_by,
                "rows": [r.to_dict() for r in self.rows], "thresholds": self.thresholds.to_dict(),
                "inputs": self.inputs}


def _data(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return result["data"] if isinstance(result.get("data"), dict) else result


def _insufficient(metric: str, target: str, what: str, n: int, need: int, critical: bool = False,
                  unit: str = "") -> Row:
    return Row(metric, target, None, DEBUG, f"insufficient data: n={n} {what}, need >= {need}", critical,
               None, n, unit)


def _band(value: float, lo: float, hi: float, go: float, limit: float, above: str, unit: str,
          ci: str) -> tuple[str, str]:
    """Verdict of a 'lower is better' estimate with CI against a GO target and an upper limit.

    GO: estimate < go and the CI stays <= limit. `above` (NO-GO or DEBUG): the CI lies entirely above the limit.
    Otherwise DEBUG, including every CI that straddles the limit (inconclusive).
    """
    bound = f"{limit:g} {unit} {above} limit"
    if value < go and hi <= limit:
        return GO, f"below the {go:g} {unit} target and the {ci} stays under the {bound}"
    if lo > limit:
        return above, f"the {ci} lies entirely above the {bound}"
    if value > limit:
        return DEBUG, f"above the {bound} but the {ci} reaches down to {lo:.1f} {unit}: not significant, inconclusive"
    if value >= go:
        return DEBUG, f"between the {go:g} {unit} target and the {bound}"
    return DEBUG, (f"below the {go:g} {unit} target but the {ci} reaches {hi:.1f} {unit}, above the {bound}: "
                   "inconclusive")


# ---------------------------------------------------------------- phase 4: latency and ZMQ vs Redis


def _mode_windows(data: dict[str, Any] | None, mode: str, hop: str) -> list[Buckets]:
    if not data:
        return []
    # a window where a service restarted or ran in the wrong mode measured something else: it is left out
    windows = sorted((w for w in data.get("windows", []) if w.get("mode") == mode and w.get("valid", True)),
                     key=lambda w: w.get("index", 0))
    out = []
    for window in windows:
        stats = (window.get("hops") or {}).get(hop) or {}
        if stats.get("count") and stats.get("hdr"):
            out.append(Buckets.from_histogram(stats["hdr"]))
    return out


def _short_of_data(windows: list[Buckets], mode: str, t: Thresholds) -> tuple[int, int, str] | None:
    values = sum(w.total for w in windows)
    if len(windows) < t.min_samples_windows_per_mode:
        return len(windows), t.min_samples_windows_per_mode, f"{mode} windows with {t.latency_hop} values"
    if values < t.min_samples_latency_values:
        return values, t.min_samples_latency_values, f"{t.latency_hop} values over {len(windows)} {mode} windows"
    return None


def _ci_words(t: Thresholds) -> str:
    return f"{t.bootstrap_confidence:.0%} CI"


def _latency_rows(zmq: list[Buckets], t: Thresholds) -> list[Row]:
    rows = []
    specs = [("p50", 50.0, t.p50_go_ms, t.p50_nogo_ms, NOGO, "plan: >150 ms -> rollback, 120-150 ms -> debug"),
             ("p95", 95.0, t.p95_go_ms, t.p95_debug_ms, DEBUG, "plan: >200 ms -> debug, never NO-GO on p95 alone")]
    for name, q, go, limit, above, rule in specs:
        metric = f"Latency {name} ZMQ ({t.latency_hop})"
        target = f"< {go:g} ms ({above} > {limit:g} ms)"
        short = _short_of_data(zmq, "ZMQ", t)
        if short:
            rows.append(_insufficient(metric, target, short[2], short[0], short[1], unit="ms"))
            continue
        ci = bootstrap_percentile_ci(zmq, q, t.bootstrap_n_boot, t.bootstrap_seed, t.bootstrap_confidence)
        est, lo, hi = ci.estimate / 1000, ci.lo / 1000, ci.hi / 1000
        verdict, why = _band(est, lo, hi, go, limit, above, "ms", _ci_words(t))
        reason = (f"ZMQ {t.latency_hop} {name} {est:.1f} ms, {_ci_words(t)} [{lo:.1f}, {hi:.1f}] ms, "
                  f"n={ci.n} values in {len(zmq)} windows: {why} ({rule})")
        rows.append(Row(metric, target, round(est, 3), verdict, reason, False, [round(lo, 3), round(hi, 3)],
                        ci.n, "ms"))
    return rows


def _compare_rows(zmq: list[Buckets], redis: list[Buckets], t: Thresholds) -> list[Row]:
    rows = []
    limit = t.zmq_redis_ratio_max
    for q in t.compare_percentiles:
        metric = f"ZMQ/Redis p{q:g} ratio ({t.latency_hop})"
        target = f"< {limit:g} (NO-GO if CI entirely > {limit:g})"
        short = _short_of_data(zmq, "ZMQ", t) or _short_of_data(redis, "Redis", t)
        if short:
            rows.append(_insufficient(metric, target, short[2], short[0], short[1]))
            continue
        paired = len(zmq) == len(redis)
        ratio = bootstrap_ratio_ci(zmq, redis, q, t.bootstrap_n_boot, t.bootstrap_seed, t.bootstrap_confidence,
                                   paired=paired)
        z_ms, r_ms = windows_percentile(zmq, q) / 1000, windows_percentile(redis, q) / 1000
        side = ratio.against(limit, inclusive=False)
        if side == WITHIN:
            verdict, why = GO, f"CI entirely below {limit:g}: ZMQ significantly faster"
        elif side == BEYOND:
            verdict, why = NOGO, (f"CI entirely above {limit:g}: ZMQ significantly slower than Redis "
                                  "(plan rollback trigger: latency WORSE than Redis mode)")
        else:
            verdict, why = DEBUG, f"CI straddles {limit:g}: no significant difference"
        reason = (f"ZMQ/Redis {t.latency_hop} p{q:g} ratio {ratio.estimate:.2f}, {_ci_words(t)} "
                  f"[{ratio.lo:.2f}, {ratio.hi:.2f}] (ZMQ {z_ms:.1f} ms vs Redis {r_ms:.1f} ms; "
                  f"{len(zmq)} ZMQ / {len(redis)} Redis windows{', paired' if paired else ''}, "
                  f"n={sum(w.total for w in zmq)}/{sum(w.total for w in redis)} values): {why}")
        rows.append(Row(metric, target, round(ratio.estimate, 4), verdict, reason, False,
                        [round(ratio.lo, 4), round(ratio.hi, 4)], len(zmq) + len(redis)))
    return rows


# ---------------------------------------------------------------- phase 5: soak


def _increase(samples: list[dict[str, Any]], key: str) -> tuple[int, list[str]]:
    """Sum of positive steps of a cumulative counter between consecutive samples, with where they happened."""
    total, where = 0, []
    for before, after in zip(samples, samples[1:]):
        step = int(after.get(key) or 0) - int(before.get(key) or 0)
        if step > 0:
            total += step
            where.append(f"t={after.get('t_s', 0):g} s: {before.get(key) or 0}->{after.get(key)}")
    return total, where


def _stability_row(samples: list[dict[str, Any]], t: Thresholds) -> Row:
    metric, target = "Stability (crashes)", f"<= {t.crashes_max} restarts or services down"
    restarts, down, events, seen = 0, set(), [], set()
    for i, sample in enumerate(samples):
        services = sample.get("services") or {}
        previous = (samples[i - 1].get("services") or {}) if i else {}
        for name in sorted(set(services) | seen):  # a service seen before and now absent counts as down
            state = (services.get(name) or {}).get("state", "missing")
            if state != "running" and name not in down:
                down.add(name)
                events.append(f"{name} {state} at t={sample.get('t_s', 0):g} s")
            if name in services and name in previous:
                step = int(services[name].get("restarts") or 0) - int(previous[name].get("restarts") or 0)
                if step > 0:
                    restarts += step
                    events.append(f"{name} restarted {step}x by t={sample.get('t_s', 0):g} s")
        seen |= set(services)
    crashes = restarts + len(down)
    if crashes > t.crashes_max:
        return Row(metric, target, crashes, NOGO, f"{crashes} crash(es) over {len(samples)} samples > limit "
                   f"{t.crashes_max}: {'; '.join(events[:6])} (plan: if crashes -> rollback)", True, None, len(samples))
    if len(samples) < t.min_samples_soak_samples:
        return _insufficient(metric, target, "soak samples", len(samples), t.min_samples_soak_samples, True)
    names = sorted({n for s in samples for n in (s.get("services") or {})})
    return Row(metric, target, 0, GO, f"0 restarts and no service down across {len(samples)} samples "
               f"({samples[-1].get('t_s', 0):g} s) of {len(names)} services (limit {t.crashes_max})", True,
               None, len(samples))


def _lost_row(samples: list[dict[str, Any]], phase4_lost: int, zmq_windows: int, t: Thresholds) -> Row:
    """Soak increase of the cumulative `lost` counter, plus the phase 4 ZMQ windows' `lost` (per-window deltas)."""
    metric, target = "Lost messages", f"<= {t.lost_max}"
    soak_lost, where = _increase(samples, "lost")
    lost = soak_lost + phase4_lost
    evidence = (f"lost counter rose by {soak_lost} during the soak over {len(samples)} samples"
                + (f" ({'; '.join(where[:6])})" if where else "")
                + f", {phase4_lost} lost in {zmq_windows} phase 4 ZMQ windows")
    if lost > t.lost_max:
        return Row(metric, target, lost, NOGO, f"{lost} lost > limit {t.lost_max}: {evidence}", True, None,
                   len(samples))
    if len(samples) < t.min_samples_soak_samples:
        return _insufficient(metric, target, "soak samples", len(samples), t.min_samples_soak_samples, True)
    return Row(metric, target, lost, GO, f"{lost} lost (limit {t.lost_max}): {evidence}", True, None, len(samples))


def _error_rate_row(samples: list[dict[str, Any]], t: Thresholds) -> Row:
    metric = "Error rate"
    target = f"< {t.error_rate_go:.0%} (NO-GO > {t.error_rate_nogo:.0%})"
    messages, _ = _increase(samples, "messages")
    if len(samples) < t.min_samples_soak_samples:
        return _insufficient(metric, target, "soak samples", len(samples), t.min_samples_soak_samples, True)
    if not messages:
        return _insufficient(metric, target, "messages counted after the first sample", 0, 1, True)
    errors = sum(int(s.get("error_lines") or 0) for s in samples[1:])
    rejected, _ = _increase(samples, "rejected")
    rate = max(errors, rejected) / messages
    verdict = GO if rate < t.error_rate_go else NOGO if rate > t.error_rate_nogo else DEBUG
    word = {GO: f"below {t.error_rate_go:.0%}", DEBUG: f"between {t.error_rate_go:.0%} and {t.error_rate_nogo:.0%}",
            NOGO: f"above {t.error_rate_nogo:.0%} (plan: >5% -> rollback)"}[verdict]
    what = "malformed inputs or failed writes" if any("malformed" in s for s in samples) else "rejected"
    reason = (f"error rate {rate:.3%} = max({errors} error lines, {rejected} {what}) / {messages} messages "
              f"over {len(samples) - 1} intervals: {word}"
              + ("; risk rejections are not errors (their own row)" if any("risk_rejected" in s for s in samples)
                 else ""))
    return Row(metric, target, round(rate, 6), verdict, reason, True, None, messages)


def _zmq_errors_row(samples: list[dict[str, Any]], t: Thresholds) -> Row:
    metric, target = "ZMQ errors", f"<= {t.zmq_errors_max} lines"
    if len(samples) < t.min_samples_soak_samples:
        return _insufficient(metric, target, "soak samples", len(samples), t.min_samples_soak_samples)
    count = sum(int(s.get("zmq_error_lines") or 0) for s in samples)
    verdict = DEBUG if count > t.zmq_errors_max else GO
    return Row(metric, target, count, verdict, f"{count} ZMQ error lines over {len(samples)} samples "
               f"(limit {t.zmq_errors_max}; plan: no ZMQ connection errors)", False, None, len(samples))


def _rate_row(samples: list[dict[str, Any]], mode: str, t: Thresholds) -> Row:
    key = "prices_per_s" if mode == "redis" and t.rate_metric == "mirrored_per_s" else t.rate_metric
    metric, target = f"Message rate ({key})", (f"steady: CV <= {t.rate_cv_max:g}, drop <= "
                                               f"{t.rate_drop_pct_per_hour_max:g} %/h")
    points = [(float(s.get("t_s") or 0) / 3600, float(s[key])) for s in samples if s.get(key) is not None]
    need = max(3, t.min_samples_soak_samples)
    if len(points) < need:
        return _insufficient(metric, target, f"samples with {key}", len(points), need, unit="/s")
    tail = samples[-t.stall_samples:] if t.stall_samples else []
    if key == "mirrored_per_s" and tail and all(not s.get(key) and (s.get("prices_per_s") or 0) > 0 for s in tail):
        return Row(metric, target, 0.0, NOGO, f"mirroring stopped: {key} = 0 in the last {len(tail)} samples while "
                   "prices still arrive (plan rollback trigger: messages not flowing)", True, None, len(points), "/s")
    rates = [r for _, r in points]
    mean = sum(rates) / len(rates)
    if mean <= 0:
        return Row(metric, target, 0.0, DEBUG, f"no traffic: {key} is 0 in all {len(points)} samples", False,
                   None, len(points), "/s")
    cv = coefficient_of_variation(rates)
    fit = linear_fit([x for x, _ in points], rates, t.bootstrap_confidence)
    drop_pct = -fit.slope / mean * 100
    dropping = fit.slope_hi < 0 and drop_pct > t.rate_drop_pct_per_hour_max
    problems = ([f"CV {cv:.2f} > {t.rate_cv_max:g}"] if cv > t.rate_cv_max else []) + \
               ([f"dropping {drop_pct:.1f} %/h > {t.rate_drop_pct_per_hour_max:g} %/h"] if dropping else [])
    reason = (f"{key} mean {mean:.1f}/s over {len(points)} samples ({points[-1][0] - points[0][0]:.2f} h): "
              f"CV {cv:.2f} (limit {t.rate_cv_max:g}), slope {fit.slope:+.2f}/s per hour = {-drop_pct:+.1f} %/h, "
              f"{_ci_words(t)} [{fit.slope_lo:+.2f}, {fit.slope_hi:+.2f}]/s per hour "
              f"(drop limit {t.rate_drop_pct_per_hour_max:g} %/h): "
              + ("; ".join(problems) + " (plan: if dropping -> debug)" if problems else "steady"))
    return Row(metric, target, round(cv, 4), DEBUG if problems else GO, reason, False,
               [round(fit.slope_lo, 4), round(fit.slope_hi, 4)], len(points), "CV")


def _soak_rows(data: dict[str, Any] | None, phase4: dict[str, Any] | None, t: Thresholds) -> list[Row]:
    samples = sorted((data or {}).get("samples") or [], key=lambda s: s.get("t_s") or 0)
    mode = (data or {}).get("mode", "zmq")
    zmq_windows = [w for w in (phase4 or {}).get("windows", []) if w.get("mode") == "zmq"]
    phase4_lost = sum(int((w.get("counters") or {}).get("lost") or 0) for w in zmq_windows)
    rows = [_stability_row(samples, t), _lost_row(samples, phase4_lost, len(zmq_windows), t),
            _error_rate_row(samples, t), unhedged_row(samples, t), risk_rejections_row(samples, t),
            _zmq_errors_row(samples, t), _rate_row(samples, mode, t), memory_row(samples, t)]
    if data is None:
        for row in rows:
            if row.verdict != NOGO:
                row.reason = f"no phase 5 result; {row.reason}"
    elif mode != "zmq":
        rows.insert(0, Row("Soak mode", "zmq", None, DEBUG, f"the soak ran in {mode} mode; the plan's 48-hour "
                           "test judges ZMQ mode", False, None, len(samples)))
    return rows


def _inputs(phase4: dict[str, Any] | None, phase5: dict[str, Any] | None) -> dict[str, Any]:
    def head(result: dict[str, Any] | None) -> dict[str, Any]:
        return {k: result.get(k) for k in ("command", "started_at", "passed", "duration_s") if k in result} \
            if result else {}
    d4, d5 = _data(phase4), _data(phase5)
    return {
        "phase4": None if d4 is None else {**head(phase4), "windows": {m: sum(1 for w in d4.get("windows", [])
                                                                                if w.get("mode") == m)
                                                                        for m in ("zmq", "redis")},
                                           "window_seconds": d4.get("window_seconds")},
        "phase5": None if d5 is None else {**head(phase5), "samples": len(d5.get("samples") or []),
                                           "mode": d5.get("mode"), "duration_s": d5.get("duration_s")},
    }


def overall(rows: list[Row]) -> str:
    verdicts = {r.verdict for r in rows}
    return NOGO if NOGO in verdicts else DEBUG if DEBUG in verdicts or not rows else GO


def decide(phase4: dict[str, Any] | None, phase5: dict[str, Any] | None,
           thresholds: Thresholds | None = None, zmq_only: dict[str, Any] | None = None) -> Decision:
    """Judge stored results (whole result dicts or their `data`); None means the phase has no result.
    zmq_only: the latest `arbees phase zmq-only` result (the plan's week 3), one advisory row."""
    t = thresholds or load_thresholds()
    d4 = _data(phase4)
    zmq = _mode_windows(d4, "zmq", t.latency_hop)
    redis = _mode_windows(d4, "redis", t.latency_hop)
    rows = _soak_rows(_data(phase5), d4, t)
    latency = _latency_rows(zmq, t) + _compare_rows(zmq, redis, t)
    if d4 is None:
        for row in latency:
            row.reason = f"no phase 4 result; {row.reason}"
    after_loss = next(i for i, r in enumerate(rows) if r.metric == "Lost messages") + 1
    rows = rows[:after_loss] + latency + rows[after_loss:]  # the plan's order: stability, latency, errors, rate
    rows.append(zmq_only_row(zmq_only))
    return Decision(overall(rows), rows, t, _inputs(phase4, phase5))


__all__ = ["DEBUG", "GO", "NOGO", "Decision", "Row", "Thresholds", "decide", "load_thresholds",
           "parse_overrides", "overall"]
