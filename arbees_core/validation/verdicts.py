"""The verdicts of `arbees decide` and one row of its matrix (shared by decide.py and decide_risk.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

GO, DEBUG, NOGO = "GO", "DEBUG", "NO-GO"
EXIT_CODES = {GO: 0, DEBUG: 2, NOGO: 1}


@dataclass
class Row:
    """One criterion: the limit, what was observed, and why that gives the verdict."""

    metric: str
    target: str
    actual: float | None
    verdict: str
    reason: str
    critical: bool = False
    ci: list[float] | None = None
    n: int = 0
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
