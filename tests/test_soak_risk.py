"""A soak over several simulated game resolutions: execution keeps trading, exposure rises and falls with the
positions and stays under its limit, no pair is left with unequal legs, and `decide` keeps risk apart from errors.

The whole local stack runs (ZMQ mode) with games of 12 s on two slots (a game ends every 6 s, its markets resolve
on both venues) and a mispricing every second; MAX_EXPOSURE_USD is low enough to bind. A correctness test: it
samples the stack as phase 5 does, then judges what it saw; nothing in it depends on how fast the machine is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import redis

from arbees_core.runtime.local import LocalRuntime
from arbees_core.store.positions import unequal_pairs
from arbees_core.validation.decide import GO, decide
from arbees_core.validation.soak import run_soak

pytestmark = pytest.mark.e2e

LIMIT_USD = 250.0
DOTENV = ("ZMQ_ENABLED=true\nSIM_RATE=100\nSIM_GAMES=2\nSIM_GAME_LENGTH_S=12\nSIM_MISPRICE_EVERY_S=1\n"
          "SIM_MISPRICE_DURATION_MS=300\nGAME_COOLDOWN_MS=500\nDISCOVERY_INTERVAL_S=5\nHEARTBEAT_INTERVAL_SECS=0.2\n"
          f"MAX_EXPOSURE_USD={LIMIT_USD:g}\n")


def test_execution_keeps_trading_across_game_resolutions_within_its_exposure_limit(
        local_project: Callable[[str], Path], tmp_path: Path) -> None:
    stack = LocalRuntime(local_project(DOTENV))
    stack.up()
    data = run_soak(stack, tmp_path / "soak", duration_s=36, interval_s=3)
    samples = data["samples"]
    exposure = [s["exposure_usd"] for s in samples]
    counters = stack.metrics("execution_service").get("counters", {})

    # markets resolved on both venues reached execution, which settled positions with them
    assert counters.get("resolutions_rx", 0) >= 8, counters
    assert counters.get("positions_settled", 0) >= 2, counters
    # exposure rose and fell with the positions, and never went past the limit
    assert max(exposure) > 0 and all(e <= LIMIT_USD + 1e-6 for e in exposure), exposure
    assert any(later < earlier for i, earlier in enumerate(exposure) for later in exposure[i + 1:]), exposure
    db = stack.urls()["DATABASE_URL"]
    with psycopg.connect(db) as conn:
        assert unequal_pairs(conn) == []
        settled_at = conn.execute("SELECT min(closed_at) FROM positions WHERE close_reason = 'settled'").fetchone()[0]
        traded_after = conn.execute(
            "SELECT count(*) FROM (SELECT signal_id FROM paper_trades WHERE created_at > %s AND action = 'buy' "
            "GROUP BY signal_id HAVING min(filled_qty) > 0) AS t", (settled_at,)).fetchone()[0]
    assert settled_at is not None and traded_after >= 1  # trading went on after positions closed
    client = redis.Redis.from_url(stack.urls()["REDIS_URL"])
    try:
        assert client.xlen("markets:resolved") >= 8  # zmq_listener mirrors the resolutions too
    finally:
        client.close()

    # the decision matrix: no naked leg, risk rejections on their own row, out of the error rate
    rows = {r.metric: r for r in decide(None, {"data": data}).rows}
    assert rows["Unhedged exposure"].verdict == GO and rows["Unhedged exposure"].actual == 0
    risk = rows["Risk rejections"]
    assert not risk.critical and risk.n > 0 and "refused before any order" in risk.reason
    assert risk.verdict == GO or "as positions closed, so the limit binds" in risk.reason  # freed, not stuck
    assert all(s["rejected"] == s["malformed"] + s["failed_writes"] for s in samples)
