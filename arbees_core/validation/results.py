"""Results of every check-running command, and where they are stored.

One shape for `phase`, `rollback`, `diagnose`, `validate`, `chaos` (`--json` prints it):

    {"command": "phase 4", "passed": true, "started_at": "<UTC ISO>", "duration_s": 12.3,
     "checks": [{"name": ..., "passed": ..., "evidence": ..., "critical": ...}], "data": {...}}

Stored as `.arbees/runs/<YYYYMMDDTHHMMSSZ>-<kind>/result.json` (kind: phase1..phase5, rollback, diagnose-<svc>,
validate), so `arbees decide` and `arbees report` re-read them offline.

`data` of phase 4 (latency, interleaved windows):
    {"windows": [{"index": 0, "mode": "zmq"|"redis", "started_at": iso, "duration_s": float,
                  "hops": {"<hop>": {"count": int, "p50_us": int, "p95_us": int, "p99_us": int, "max_us": int,
                                     "mean_us": float, "hdr": "<HdrHistogram encoded, this window only>"}},
                  "counters": {"signals": int, "trades": int, "lost": int, "rejected": int, "prices": int}}],
     "window_seconds": float, "warmup_seconds": float}
    hops: "price" (monitor receipt -> game_shard), "signal" (game_shard publish -> execution_service),
    "execution" (execution receipt -> paper fill), "end_to_end" (monitor receipt -> paper fill),
    "mirror" (publish -> zmq_listener XADD, ZMQ mode only).

`data` of phase 5 (soak; one sample per interval, appended as it goes):
    {"duration_s": float (asked), "interval_s": float, "mode": "zmq"|"redis", "resumed": int,
     "samples": [{"at": iso, "t_s": float (since soak start),
                  "services": {"<name>": {"state": str, "restarts": int, "rss_mb": float, "cpu_pct": float}},
                  "error_lines": int, "zmq_error_lines": int (in the interval, all services),
                  "mirrored": int, "mirrored_per_s": float (zmq_listener, in the interval),
                  "prices_per_s": float (game_shard price updates received, in the interval),
                  "end_to_end": {"count": int, "p50_ms": float|None, "p95_ms": float|None, "mean_ms": float|None},
                  "lost": int, "rejected": int, "messages": int (cumulative counters at sample time)}]}
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from arbees_core.config import state_dir


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Check:
    """One success criterion: what was checked, whether it held, and the evidence an operator can verify.

    inconclusive: the check could not be made (no stack, a scenario this stack cannot host, no data); it is
    never a pass, and `evidence` says why."""

    name: str
    passed: bool
    evidence: str = ""
    critical: bool = True
    inconclusive: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    command: str
    started_at: str = field(default_factory=utc_now_iso)
    checks: list[Check] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    _t0: float = field(default_factory=time.monotonic, repr=False)

    @property
    def verdict(self) -> str:
        """`fail` when a critical check failed; else `inconclusive` when no check was made or one could not be
        made (a check that did not run is never a pass); else `pass` (advisory checks are reported, never failing)."""
        if any(c.critical and not c.passed and not c.inconclusive for c in self.checks):
            return "fail"
        if not self.checks or any(c.inconclusive for c in self.checks):
            return "inconclusive"
        return "pass"

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def exit_code(self) -> int:
        """0 pass, 1 fail, 2 inconclusive, 3 when no check could be made at all."""
        verdict = self.verdict
        if verdict == "inconclusive" and all(c.inconclusive for c in self.checks):
            return 3
        return {"pass": 0, "fail": 1, "inconclusive": 2}[verdict]

    def add(self, name: str, passed: bool, evidence: str = "", critical: bool = True) -> Check:
        check = Check(name, bool(passed), evidence, critical)
        self.checks.append(check)
        return check

    def add_inconclusive(self, name: str, why: str, critical: bool = True) -> Check:
        """A check that could not be made, with the reason."""
        check = Check(name, False, why, critical, inconclusive=True)
        self.checks.append(check)
        return check

    def finish(self) -> "RunResult":
        self.duration_s = round(time.monotonic() - self._t0, 3)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "passed": self.passed, "verdict": self.verdict, "started_at": self.started_at,
                "duration_s": self.duration_s, "checks": [c.to_dict() for c in self.checks], "data": self.data}


def runs_dir(root: Path | None = None) -> Path:
    return (root / ".arbees" if root else state_dir()) / "runs"


def new_run_dir(kind: str, root: Path | None = None) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = runs_dir(root) / f"{stamp}-{kind}"
    n = 1
    while path.exists():
        n += 1
        path = runs_dir(root) / f"{stamp}-{kind}-{n}"
    path.mkdir(parents=True)
    return path


def save_result(result: RunResult | dict[str, Any], folder: Path) -> Path:
    data = result.to_dict() if isinstance(result, RunResult) else result
    path = folder / "result.json"
    tmp = folder / f".result.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
    return path


def latest_result(kind: str, root: Path | None = None, folder: Path | None = None) -> dict[str, Any] | None:
    """The newest stored result of `kind` (e.g. "phase4"), from `folder` or the project's runs."""
    base = folder or runs_dir(root)
    candidates = sorted(p for p in base.glob(f"*-{kind}*/result.json")
                        if p.parent.name.split("-", 1)[1].split("-")[0] == kind)
    for path in reversed(candidates):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return None
