"""Three-valued verdicts for the benchmark's targets: met, missed, or inconclusive, each with its reason.

Why. A figure from one run on a shared VM is a sample, and a bare "yes / no" against the limit hides how sure it
is. Following the practice of canary analysis (Argo Rollouts' Successful / Inconclusive / Failed, Kayenta's minimum
of about 50 data points; ../shared/research/venues-messaging-canary.md, A.4), a target is judged on its 95 %
bootstrap confidence interval (`arbees_core.validation.stats`, the same two-level bootstrap `arbees decide` uses):

- met: the whole interval is within the limit;
- missed: the whole interval is beyond it, and the machine itself could have met it;
- inconclusive: fewer than `MIN_SAMPLES` values, no values at all, an interval that spans the limit (for a ratio to
  the raw hop this is what a machine whose speed moved between the raw windows before and after the pipeline runs
  gives: the bootstrap resamples those windows), or an absolute latency limit that the bare pyzmq hop between
  two processes which receives the same way (`raw`, or `raw@spin` for a polling game_shard; `targets.Config.bare`),
  measured in the same run, already exceeds, or a ZMQ / Redis ratio that the same run's bare pyzmq and bare Redis
  hops (same rate and payload as the hop judged) are already surely beyond: that machine cannot show whether the
  pipeline meets it. ARCHITECTURE.md set 0.5 on a machine whose bare hops were 120-140 against 320 us (0.4); where
  the bare transports are only 1.4-1.7 x apart (0.58-0.74 on the 2-vCPU VMs here), a pipeline at its raw limit in both
  modes lands at the bare ratio, and "missed" would blame the pipeline for the machine.

The benchmark exits 0 when every target is met, 1 when one is missed, and 2 when none is missed but some are
inconclusive (`exit_code`), the exit codes of every arbees verdict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from arbees_core.validation.stats import BEYOND, WITHIN, Interval, bootstrap_percentile_ci, bootstrap_ratio_ci
from arbees_core.bench.common import HopRow

MET, MISSED, INCONCLUSIVE = "met", "missed", "inconclusive"
#: Fewer values than this behind a figure make its target inconclusive (Kayenta's rule of thumb).
MIN_SAMPLES = 50
CONFIDENCE = 0.95
#: Bootstrap replicates per target; the verdicts are deterministic (seeded).
N_BOOT = 400


@dataclass(frozen=True)
class Verdict:
    """How one target was judged: `ci` is the 95 % interval of the figure (None where none applies), `n` the
    values behind it (the smaller side, for a ratio), `reason` one line an operator can act on."""

    verdict: str
    ci: tuple[float, float] | None
    n: int
    reason: str

    @property
    def met(self) -> bool:
        return self.verdict == MET


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"


def _interval(ci: Interval) -> str:
    return f"[{_fmt(ci.lo)}, {_fmt(ci.hi)}]"


def _too_few(rows: Iterable[HopRow | None]) -> Verdict | None:
    """Inconclusive when a row is missing or holds fewer than MIN_SAMPLES values."""
    rows = list(rows)
    if any(r is None or not r.windows for r in rows):
        return Verdict(INCONCLUSIVE, None, 0, "no samples")
    n = min(r.count for r in rows)  # type: ignore[union-attr]
    if n < MIN_SAMPLES:
        return Verdict(INCONCLUSIVE, None, n, f"{n} samples, fewer than {MIN_SAMPLES}: run longer")
    return None


def _against(ci: Interval, limit: float, n: int) -> Verdict:
    """The verdict of an interval against an upper limit."""
    ci_pair, side = (round(ci.lo, 3), round(ci.hi, 3)), ci.against(limit)
    if side == WITHIN:
        return Verdict(MET, ci_pair, n, f"95 % CI {_interval(ci)} within {_fmt(limit)}")
    if side == BEYOND:
        return Verdict(MISSED, ci_pair, n, f"95 % CI {_interval(ci)} beyond {_fmt(limit)}")
    return Verdict(INCONCLUSIVE, ci_pair, n, f"95 % CI {_interval(ci)} spans the limit {_fmt(limit)}")


def judge_ratio(num: HopRow | None, den: HopRow | None, limit: float, q: float = 50,
                machine: tuple[HopRow | None, HopRow | None] | None = None) -> Verdict:
    """The ratio num/den of the q-th percentiles against `limit`; each row's windows are resampled on their own,
    so a reference measured in two windows that disagree widens the interval. `machine`: the bare hops of the same
    run that num and den compare (ZMQ / Redis: bare pyzmq, bare Redis); when even their ratio is surely beyond the
    limit, a miss says nothing about the pipeline, so it is inconclusive."""
    few = _too_few((num, den))
    if few is not None:
        return few
    ci = bootstrap_ratio_ci(num.windows, den.windows, q, n_boot=N_BOOT, conf=CONFIDENCE)  # type: ignore[union-attr]
    verdict = _against(ci, limit, min(num.count, den.count))  # type: ignore[union-attr]
    if verdict.verdict != MISSED or machine is None or _too_few(machine) is not None:
        return verdict
    bare_num, bare_den = machine
    bare = bootstrap_ratio_ci(bare_num.windows, bare_den.windows, q, n_boot=N_BOOT,  # type: ignore[union-attr]
                              conf=CONFIDENCE)
    return _machine_cannot_show(verdict, ci, bare, limit,
                                f"the p{q:g} ratio of the bare hops {bare_num.hop} / {bare_den.hop} ({bare_num.mode} / "
                                f"{bare_den.mode})")


def judge_percentile(row: HopRow | None, q: float, limit: float, machine: HopRow | None = None) -> Verdict:
    """The q-th percentile of `row` (us) against `limit`. `machine`: the bare hop of the same run; when even its
    q-th percentile is surely above the limit, a miss says nothing about the pipeline, so it is inconclusive."""
    few = _too_few((row,))
    if few is not None:
        return few
    ci = bootstrap_percentile_ci(row.windows, q, n_boot=N_BOOT, conf=CONFIDENCE)  # type: ignore[union-attr]
    verdict = _against(ci, limit, row.count)  # type: ignore[union-attr]
    if verdict.verdict != MISSED or machine is None or _too_few((machine,)) is not None:
        return verdict
    bare = bootstrap_percentile_ci(machine.windows, q, n_boot=N_BOOT, conf=CONFIDENCE)
    return _machine_cannot_show(verdict, ci, bare, limit, f"the p{q:g} of the bare hop {machine.hop} ({machine.mode}, us)")


def _machine_cannot_show(verdict: Verdict, ci: Interval, bare: Interval, limit: float, what: str) -> Verdict:
    """`verdict` (missed, on the pipeline's interval `ci`), made inconclusive when the same run's bare figure `bare`
    is surely beyond `limit` too."""
    if bare.against(limit) != BEYOND:
        return verdict
    return Verdict(INCONCLUSIVE, verdict.ci, verdict.n,
                   f"{what} on this machine, same run, is {_fmt(bare.estimate)} {_interval(bare)}, beyond "
                   f"{_fmt(limit)}: this machine cannot show it (pipeline: {_interval(ci)})")


def judge_at_least(actual: float | None, limit: float, what: str) -> Verdict:
    """A figure with no sampling interval (the highest rate held) against a lower limit."""
    if actual is None:
        return Verdict(INCONCLUSIVE, None, 0, f"no {what} measured")
    if actual >= limit:
        return Verdict(MET, None, 0, f"{_fmt(actual)} >= {_fmt(limit)}")
    return Verdict(MISSED, None, 0, f"{_fmt(actual)} < {_fmt(limit)}")


def exit_code(targets: Iterable[dict[str, Any]]) -> int:
    """0 when every target is met, 1 when any is missed, 2 when none is missed but some are inconclusive."""
    verdicts = {t["verdict"] for t in targets}
    if MISSED in verdicts:
        return 1
    return 2 if INCONCLUSIVE in verdicts else 0


def counts(targets: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many targets are met, missed and inconclusive, and the exit code they make (`exit`)."""
    targets = list(targets)
    out = {v: sum(t["verdict"] == v for t in targets) for v in (MET, MISSED, INCONCLUSIVE)}
    return out | {"exit": exit_code(targets)}


def summary(targets: list[dict[str, Any]]) -> str:
    """`14 met, 3 missed, 3 inconclusive (exit 1)`."""
    c = counts(targets)
    return ", ".join(f"{c[v]} {v}" for v in (MET, MISSED, INCONCLUSIVE)) + f" (exit {c['exit']})"


def by_config(targets: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """`counts` per configuration (each target's `config`), in the order the targets name them. The run's exit
    code covers every configuration; this says which one an operator can deploy: on the 2-vCPU VMs here the
    real-time configuration has runs with no miss while the default settings miss the hop's tail."""
    names = list(dict.fromkeys(t["config"] for t in targets))
    return {name: counts(t for t in targets if t["config"] == name) for name in names}
