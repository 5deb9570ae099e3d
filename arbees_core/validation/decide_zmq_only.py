"""The decision matrix's row for the plan's week 3 (`arbees phase zmq-only`: the stack without zmq_listener).

GO when the latest zmq-only run passed: the hot path traded, lost nothing and every operator view worked with no
Redis mirror, so the mirror (and with it Redis on the hot path's side) can be phased out. A failed run is DEBUG,
not NO-GO: ZMQ with the mirror is unaffected, only the phase-out must wait. No run is DEBUG (never GO: a check that
did not run is never a pass). Advisory (not critical).
"""

from __future__ import annotations

from typing import Any

from arbees_core.validation.verdicts import DEBUG, GO, Row

METRIC = "ZMQ only (week 3: no Redis mirror)"
TARGET = "`arbees phase zmq-only` passes"


def zmq_only_row(result: dict[str, Any] | None) -> Row:
    """The row for the latest stored zmq-only result (None: not run)."""
    if result is None:
        return Row(METRIC, TARGET, None, DEBUG, "no zmq-only result: run `arbees phase zmq-only` (the plan's week 3) "
                   "before phasing out the Redis mirror", False, None, 0)
    checks = result.get("checks") or []
    verdict = result.get("verdict") or ("pass" if result.get("passed") else "fail")
    window = (result.get("data") or {}).get("window") or {}
    seen = (f"{window.get('trades', '?')} trades and {window.get('lost', '?')} lost over a "
            f"{window.get('seconds', '?')} s window" if window else "no window measured")
    when = f"run of {result.get('started_at', '?')}"
    if verdict == "pass":
        return Row(METRIC, TARGET, 1.0, GO, f"passed all {len(checks)} checks ({seen}; {when})", False, None,
                   len(checks))
    bad = [c["name"] for c in checks if not c.get("passed") and c.get("critical", True)]
    word = "could not make" if verdict == "inconclusive" else "failed"
    return Row(METRIC, TARGET, 0.0, DEBUG, f"{word} {len(bad)} of {len(checks)} checks: {'; '.join(bad[:4])} "
               f"({seen}; {when}); the mirror stays until it passes", False, None, len(checks))
