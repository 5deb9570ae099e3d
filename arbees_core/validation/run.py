"""Running the plan as a library: one phase (`run_phase`), or the whole validation (`run_validation`).

The CLI only renders what these return: it hands in a progress callback and a hook that prints each phase's
result, and decides nothing itself. A phase's playbook says what to act on and check; the collectors here add the
measured parts (phase 4's interleaved latency windows, phase 5's soak) to the checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbees_core.config import read_dotenv
from arbees_core.runtime.base import Runtime
from arbees_core.validation.playbook import Collect, load_playbook, playbook_path
from arbees_core.validation.results import RunResult, new_run_dir, save_result, utc_now_iso
from arbees_core.validation.steps import Progress, RunContext, run_playbook

#: `arbees phase` arguments beyond 1-5: the playbook it runs and the kind its result is stored (and decided) as.
EXTRA_PHASES = {"zmq-only": ("phase-zmq-only", "zmq_only")}
#: The command a stored result names, where it is not the kind's own spelling.
COMMANDS = {"zmq_only": "phase zmq-only"}
#: The plan's phases in the order `validate` runs them, then its week 3 (no Redis mirror).
VALIDATION_ORDER: tuple[int | str, ...] = (1, 2, 3, 4, 5, "zmq-only")

#: Simulator and strategy settings a quick validation runs with where `.env` does not set them: a mispricing every
#: second (rotating over the games) so a 20 s window has enough end-to-end samples to judge, and games of a minute,
#: so the 2-minute soak sees positions settle and their exposure freed. They apply to the stack the validation
#: starts, for that run only; `.env` is left as it was found.
QUICK_ENV = {"SIM_MISPRICE_EVERY_S": "1", "SIM_MISPRICE_DURATION_MS": "300", "GAME_COOLDOWN_MS": "500",
             "SIM_RATE": "100", "SIM_GAME_LENGTH_S": "60"}
#: A quick validation's durations: four 20 s latency windows and a 2-minute soak instead of hours.
QUICK = {"windows": 4, "window_seconds": 20.0, "warmup_seconds": 5.0, "duration_seconds": 120.0,
         "interval_seconds": 15.0}

Collector = Callable[[RunContext, Collect], dict[str, Any]]
#: Called with each phase's label, result and run folder as soon as it is stored (the CLI prints it).
PhaseHook = Callable[[str, RunResult, Path], None]


def phase_identity(number: int | str) -> tuple[str, str]:
    """(playbook name, result kind) of a phase: `phase4` for 4, `phase-zmq-only` / `zmq_only` for zmq-only."""
    return EXTRA_PHASES.get(str(number), (f"phase{number}", f"phase{number}"))


def phase_collectors(number: int | str, options: dict[str, float], folder: Path) -> dict[str, Collector]:
    """The measured parts of a phase: phase 4's latency windows, phase 5's soak (written into `folder`)."""
    if number == 4:
        return {"latency": latency_collector(options)}
    if number == 5:
        return {"soak": soak_collector(folder, options)}
    return {}


def run_phase(name: str, kind: str, runtime: Runtime, root: Path, *, collectors: dict[str, Collector] | None = None,
              folder: Path | None = None, playbooks: Path | None = None, overrides: dict[str, float] | None = None,
              progress: Progress | None = None) -> tuple[RunResult, Path]:
    """Load and run one playbook, store its result in its run folder; returns the result and the folder. A
    malformed playbook raises `PlaybookError` before anything runs."""
    book = load_playbook(playbook_path(name, playbooks))
    folder = folder or new_run_dir(kind)
    result = RunResult(command=COMMANDS.get(kind) or (kind.replace("phase", "phase ") if kind.startswith("phase")
                                                      else kind))
    ctx = RunContext(runtime, root, result, progress or (lambda text, fraction: None), collectors or {},
                     overrides or {})
    run_playbook(book, ctx)
    result.finish()
    result.data["playbook"] = book.path
    result.data["title"] = book.title
    result.data["run_dir"] = str(folder)
    save_result(result, folder)
    return result, folder


@dataclass
class ValidationResult:
    """`arbees validate`: each phase's pass/fail and run folder, then the decision over the stored runs."""

    started_at: str
    quick: bool
    phases: list[dict[str, Any]] = field(default_factory=list)
    decision: Any = None
    duration_s: float = 0.0

    @property
    def phases_passed(self) -> bool:
        return bool(self.phases) and all(p["passed"] for p in self.phases)

    @property
    def exit_code(self) -> int:
        """1 when a phase failed; otherwise the decision's (0 GO, 2 DEBUG, 1 NO-GO)."""
        return 1 if not self.phases_passed else self.decision.exit_code

    def checks(self) -> list[dict[str, Any]]:
        rows = [{"name": f"phase {p['phase']}", "passed": p["passed"],
                 "evidence": f"{p['duration_s']:.1f}s, {p['run_dir']}"} for p in self.phases]
        return rows + [{"name": "decision", "passed": self.decision.decision == "GO",
                        "evidence": self.decision.decision}]

    def to_dict(self) -> dict[str, Any]:
        return {"command": "validate", "passed": self.phases_passed and self.decision.decision == "GO",
                "started_at": self.started_at, "duration_s": self.duration_s, "checks": self.checks(),
                "decision": self.decision.decision, "rows": [r.to_dict() for r in self.decision.rows],
                "quick": self.quick}


def quick_settings(root: Path) -> dict[str, str]:
    """The quick settings `.env` does not set (a value there is the operator's, and wins)."""
    current = read_dotenv(root / ".env")
    return {k: v for k, v in QUICK_ENV.items() if k not in current}


def run_validation(runtime: Runtime, root: Path, *, quick: bool, keep: bool, options: dict[str, float],
                   on_phase: PhaseHook | None = None, progress: Progress | None = None,
                   on_start: Callable[[], None] | None = None) -> ValidationResult:
    """Phases 1-5 and zmq-only on the running stack (or one started here, stopped at the end unless `keep`), then
    the decision over the stored results. `options` (phase 4 windows, soak duration, ...) overrides the playbooks'
    and the quick durations. A `SettingsError` or `RuntimeError_` from the runtime propagates to the caller."""
    from arbees_core.validation.decide import decide, load_thresholds
    from arbees_core.validation.results import latest_result

    opts = {**(QUICK if quick else {}), **options}
    outcome = ValidationResult(started_at=utc_now_iso(), quick=quick)
    t0 = time.monotonic()
    started_here = not runtime.is_up()
    with runtime.run_settings(quick_settings(root) if quick and started_here else {}):
        try:
            if started_here:
                if on_start:
                    on_start()
                runtime.up()
            for number in VALIDATION_ORDER:
                outcome.phases.append(_validation_phase(number, runtime, root, opts, on_phase, progress))
            outcome.decision = decide(latest_result("phase4"), latest_result("phase5"), load_thresholds(),
                                      latest_result("zmq_only"))
        finally:
            if started_here and not keep:
                runtime.down()
    outcome.duration_s = round(time.monotonic() - t0, 3)
    return outcome


def _validation_phase(number: int | str, runtime: Runtime, root: Path, opts: dict[str, float],
                      on_phase: PhaseHook | None, progress: Progress | None) -> dict[str, Any]:
    name, kind = phase_identity(number)
    folder = new_run_dir(kind)
    overrides = {"window_seconds": opts["window_seconds"]} if number == "zmq-only" and "window_seconds" in opts else {}
    result, folder = run_phase(name, kind, runtime, root, collectors=phase_collectors(number, opts, folder),
                               folder=folder, overrides=overrides, progress=progress)
    if on_phase:
        on_phase(f"phase {number}", result, folder)
    return {"phase": number, "passed": result.passed, "duration_s": result.duration_s, "run_dir": str(folder)}


def latency_collector(options: dict[str, float]) -> Collector:
    """Phase 4's measurement: interleaved ZMQ / Redis windows, summarised per hop and mode with 95 % CIs."""
    def collect(ctx: RunContext, step: Collect) -> dict[str, Any]:
        from arbees_core.validation.latency import collect_windows, summarize

        opts = {**step.options, **{k: v for k, v in options.items() if v is not None}}
        data = collect_windows(ctx.runtime, ctx.root, windows=int(opts.get("windows", 6)),
                               window_s=float(opts.get("window_seconds", 600)),
                               warmup_s=float(opts.get("warmup_seconds", 10)), progress=ctx.progress)
        summary = summarize(data)
        add_confidence_intervals(data, summary)
        data["summary"] = summary
        latency_checks(ctx.result, data, summary)
        return data

    return collect


def add_confidence_intervals(data: dict[str, Any], summary: dict[str, Any], n_boot: int = 400) -> None:
    """Per mode and hop, 95% bootstrap CIs of p50/p95/p99 (ms) over the valid windows, resampling windows and
    then values, so an operator sees how far one run's percentiles can be trusted."""
    from arbees_core.validation.stats import bootstrap_percentile_ci

    for mode, hops in summary.items():
        for hop, stats in hops.items():
            hists = [w["hops"][hop]["hdr"] for w in data.get("windows", []) if w.get("mode") == mode
                     and w.get("valid", True) and w.get("hops", {}).get(hop, {}).get("count")]
            if not hists:
                continue
            stats["ci_ms"] = {}
            for q in (50, 95, 99):
                ci = bootstrap_percentile_ci(hists, q, n_boot=n_boot, seed=q)
                stats["ci_ms"][f"p{q}"] = [round(ci.lo / 1000, 3), round(ci.hi / 1000, 3)]


def latency_checks(result: RunResult, data: dict[str, Any], summary: dict[str, Any]) -> None:
    """Phase 4's criteria: every window measured, end-to-end samples in both modes, and the plan's comparison."""
    windows = data.get("windows", [])
    valid = [w for w in windows if w.get("valid", True)]
    result.add("every window measured", len(valid) == len(windows) and bool(windows),
               f"{len(valid)}/{len(windows)} windows valid"
               + "".join(f"; window {w['index']}: {w.get('reason', '')}" for w in windows if not w.get("valid", True)))
    for mode in ("zmq", "redis"):
        hops = summary.get(mode, {})
        e2e = hops.get("end_to_end", {})
        result.add(f"{mode}: end-to-end latency measured", bool(e2e.get("count")),
                   "; ".join(f"{hop} p50 {v.get('p50_ms')}ms p95 {v.get('p95_ms')}ms p99 {v.get('p99_ms')}ms "
                             f"(n={v.get('count')})" for hop, v in hops.items()) or "no samples")
    z, r = summary.get("zmq", {}).get("end_to_end", {}), summary.get("redis", {}).get("end_to_end", {})
    if z.get("p50_ms") is not None and r.get("p50_ms") is not None:
        result.add("ZMQ end-to-end p50 below Redis (the plan's comparison; `arbees decide` gives the CI)",
                   z["p50_ms"] < r["p50_ms"], f"zmq {z['p50_ms']}ms vs redis {r['p50_ms']}ms", critical=False)


def soak_collector(folder: Path, options: dict[str, float | None]) -> Collector:
    """Phase 5's measurement: the soak's samples (written as they come, so an interrupted soak resumes) and its
    criteria: no crash, no ZMQ connection error, messages mirrored in every interval."""
    def collect(ctx: RunContext, step: Collect) -> dict[str, Any]:
        from arbees_core.validation.soak import run_soak

        opts = {**step.options, **{k: v for k, v in options.items() if v is not None}}
        data = run_soak(ctx.runtime, folder, float(opts.get("duration_seconds", 172800)),
                        float(opts.get("interval_seconds", 300)), progress=ctx.progress)
        samples = data.get("samples", [])
        restarts = restart_deltas(samples)
        ctx.result.add("no service crashes during the soak", not restarts and bool(samples),
                       f"{len(samples)} samples over {samples[-1]['t_s'] if samples else 0:.0f}s; restarts: "
                       + (", ".join(f"{k}+{v}" for k, v in restarts.items()) or "none"))
        zerr = sum(s.get("zmq_error_lines", 0) for s in samples)
        ctx.result.add("no ZMQ connection errors", zerr == 0, f"{zerr} zmq error lines")
        rates = [s.get("mirrored_per_s", 0.0) for s in samples]
        ctx.result.add("messages mirrored in every interval", bool(rates) and min(rates) > 0,
                       "mirrored/s per sample: " + ", ".join(f"{x:.1f}" for x in rates[:12]),
                       critical=False)
        return data

    return collect


def restart_deltas(samples: list[dict[str, Any]]) -> dict[str, int]:
    """Restarts per service between the first and the last soak sample (only the services that restarted)."""
    if not samples:
        return {}
    first = samples[0]["services"]
    deltas = {n: s["restarts"] - first.get(n, {}).get("restarts", 0) for n, s in samples[-1]["services"].items()}
    return {n: d for n, d in deltas.items() if d > 0}
