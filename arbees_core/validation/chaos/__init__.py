"""Chaos scenarios: one fault injected into a RUNNING stack (local or compose), and the outcome checked with
evidence. The faults are the runtime's own (`runtime/faults.py`), so each scenario runs on either runtime.

A scenario is `(runtime, root, result, **opts) -> None`: it applies its fault, waits for the stack to recover,
and adds checks (criterion, pass/fail, evidence) to `result`. `run_chaos(runtime, root, name)` runs one and
returns the RunResult that `arbees chaos` prints and stores; `ChaosUnavailable` means it could not run (exit 3).

Scenarios (`SCENARIOS`): `kill-<service>` for each service (SIGKILL mid-stream: restarted and counted,
subscribers reconnect, flow resumes; for execution_service the paper-trade ledger stays exact), `redis-outage`,
`postgres-outage` (the stack's own servers only: embedded, or its containers), `bad-input` (malformed frames on the real sockets/streams, each counted
per reason), `hwm` (alias `slow-joiner`: a stalled subscriber's losses appear as `lost`, never hidden),
`feed-gap` (a venue sequence gap: quotes withdrawn, fresh snapshots, flow resumes).
Options (all scenarios accept and ignore the others): outage_s (default 30), flow_timeout_s (default 45).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arbees_core.validation.chaos.feed import feed_gap
from arbees_core.validation.chaos.inputs import bad_input, hwm
from arbees_core.validation.chaos.kill import kill_service
from arbees_core.validation.chaos.outages import postgres_outage, redis_outage
from arbees_core.validation.chaos.probe import ChaosUnavailable, service_names
from arbees_core.validation.results import RunResult

Scenario = Callable[..., None]

__all__ = ["ALIASES", "SCENARIOS", "ChaosUnavailable", "run_chaos", "scenario_names"]


# -- registry ------------------------------------------------------------------------------------------------------

SCENARIOS: dict[str, Scenario] = {
    **{f"kill-{name}": kill_service(name) for name in service_names()},
    "redis-outage": redis_outage,
    "postgres-outage": postgres_outage,
    "bad-input": bad_input,
    "hwm": hwm,
    "feed-gap": feed_gap,
}
ALIASES = {"slow-joiner": "hwm"}


def scenario_names() -> list[str]:
    return [*SCENARIOS, *ALIASES, "all"]


def run_chaos(runtime: Any, root: Any, scenario: str, **opts: Any) -> RunResult:
    """Run one scenario (or `all`, in registry order) and return its checks. Raises ChaosUnavailable when the
    scenario cannot run at all; under `all` such a scenario is an inconclusive check saying why it did not run,
    so `all` on a stack that can host none of them is exit 3, and one that skipped some is never a pass."""
    name = ALIASES.get(scenario, scenario)
    if name != "all" and name not in SCENARIOS:
        raise ChaosUnavailable(f"unknown scenario {scenario!r}: expected one of {', '.join(scenario_names())}")
    result = RunResult(command=f"chaos {scenario}")
    if name != "all":
        SCENARIOS[name](runtime, root, result, **opts)
        result.data["scenario"] = name
        return result.finish()
    for key, fn in SCENARIOS.items():
        sub = RunResult(command=f"chaos {key}")
        try:
            fn(runtime, root, sub, **opts)
        except ChaosUnavailable as e:
            result.add_inconclusive(f"{key}: not run", str(e), critical=False)
            continue
        for check in sub.checks:
            result.add(f"{key}: {check.name}", check.passed, check.evidence, check.critical)
        result.data.setdefault("scenarios", {})[key] = sub.finish().passed
    return result.finish()
