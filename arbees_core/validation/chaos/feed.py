"""`feed-gap`: a venue sequence gap injected through the simulated venue; the monitor withdraws the quotes it
can no longer trust, resubscribes for fresh snapshots, and prices flow again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from arbees_core import settings as S
from arbees_core.polling import eventually
from arbees_core.validation.chaos.probe import ChaosUnavailable, StackProbe, restarted_with, running_setting
from arbees_core.validation.results import RunResult


def feed_gap(runtime: Any, root: Path, result: RunResult, **opts: Any) -> None:
    """A Kalshi sequence gap (one delta lost on the venue link, injected through the simulated venue): the monitor
    sees it, withdraws the quotes of the books it can no longer trust, resubscribes for fresh snapshots, and
    prices flow again from those. `.env` and kalshi_monitor are restored afterwards."""
    probe = StackProbe(runtime)
    flow_s = float(opts.get("flow_timeout_s", 45))
    svc = "kalshi_monitor"
    if probe.row(svc).state != "running":
        raise ChaosUnavailable(f"{svc} is not running; start it with `arbees up {svc}`")
    source = running_setting(runtime, svc, S.KALSHI_SOURCE)
    if source != "sim":
        raise ChaosUnavailable(f"feed-gap drops a delta inside the simulated venue; {svc} runs KALSHI_SOURCE={source}")
    t0_wall, since_ns = time.time(), time.time_ns()
    with restarted_with(runtime, root, svc, {"SIM_FAULT_GAP_AT_S": "3"}):

        def gauge(name: str) -> int:
            return int(probe.metrics(svc, since_ns).get("gauges", {}).get(name, 0))

        gaps = eventually(lambda: gauge("venue_gaps"), flow_s, raises=False)
        result.add("the lost delta is detected as a sequence gap", bool(gaps), f"{svc} venue_gaps={gaps}")
        withdrawn = eventually(lambda: probe.counter(svc, "quotes_withdrawn", since_ns), 10, raises=False)
        line = next((ln for ln in probe.logs_since(svc, t0_wall).splitlines() if "until their fresh snapshot" in ln), "")
        result.add("quotes of the invalid books withdrawn, so game_shard cannot trade them", bool(withdrawn),
                   f"quotes_withdrawn={withdrawn}; {line.strip()[:160] or 'no withdrawal line in the log'}")
        resubscribed = eventually(lambda: gauge("venue_resubscribes"), flow_s, raises=False)
        result.add("fresh snapshots requested (resubscribe)", bool(resubscribed), f"venue_resubscribes={resubscribed}")
        after = probe.counter(svc, "prices_published", since_ns)
        more = eventually(lambda: probe.counter(svc, "prices_published", since_ns) > after + 5, flow_s, raises=False)
        result.add("prices flow again from the fresh books", bool(more),
                   f"prices_published {after} -> {probe.counter(svc, 'prices_published', since_ns)}")
