"""Running a diagnosis: every probe of the target's playbook, one Check each, one finding per fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any


from arbees_core.validation.results import RunResult
from arbees_core.validation.diagnose.context import Context
from arbees_core.validation.diagnose.playbooks import load_playbook
from arbees_core.validation.diagnose.probes import PROBES, Outcome


# -- running a diagnosis -------------------------------------------------------------------------------------------


def diagnose(runtime: Any, target: str, since_s: float = 600, playbook_dir: Path | None = None) -> RunResult:
    """Run the target's playbook against a running stack: one Check per probe, one finding per fault.

    `result.data`: {"target", "issue", "playbook", "since_s", "findings": [{"probe", "fault", "fix"}],
    "probes": {<id>: details}}. Raises ValueError for an unknown target and PlaybookError for a bad playbook.
    """
    book = load_playbook(target, playbook_dir)
    result = RunResult(command=f"diagnose {book.target}")
    ctx = Context(runtime, since_s)
    findings: list[dict[str, str]] = []
    probes: dict[str, Any] = {}
    for p in book.probes:
        try:
            out = PROBES[p.id](ctx, p.params)
        except Exception as e:  # noqa: BLE001 - a probe that breaks is reported, the others still run
            out = Outcome(False, f"probe failed: {type(e).__name__}: {e}", [f"probe {p.id} could not run: {e}"])
        evidence = out.evidence
        if out.faults:
            evidence = "FAULT: " + " | ".join(out.faults) + " -- " + evidence
        result.add(p.name, out.passed, evidence, critical=not out.skipped)
        findings += [{"probe": p.id, "fault": f, "fix": p.fix} for f in out.faults]
        if out.details:
            probes[p.id] = out.details
    result.data = {"target": book.target, "issue": book.issue, "playbook": str(book.path), "since_s": since_s,
                   "findings": findings, "probes": probes}
    return result.finish()

