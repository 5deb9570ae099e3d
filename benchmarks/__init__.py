"""arbees benchmarks: raw transport limits, the pipeline's own hops, throughput, one report.

`python -m benchmarks` (or `arbees bench`) runs everything in one go so every ratio compares figures measured
minutes apart on the same (noisy, shared) machine. `run_suite()` is the library entry point; the CLIs only parse
options and render its result.
"""

from __future__ import annotations

from benchmarks.suite import BenchConfig, run_suite

__all__ = ["BenchConfig", "run_suite"]
