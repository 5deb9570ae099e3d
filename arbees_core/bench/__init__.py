"""arbees benchmarks: raw transport limits, the pipeline's own hops, throughput, one report.

`arbees bench` (or `python -m arbees_core.bench`) runs everything in one go so every ratio compares figures
measured minutes apart on the same (noisy, shared) machine. `run_suite()` is the library entry point: it measures,
then judges once (`targets.py`); `report.py` and the CLI (`arbees_cli/bench.py`) only render its result.
"""

from __future__ import annotations

from arbees_core.bench.suite import BenchConfig, run_suite

__all__ = ["BenchConfig", "run_suite"]
