"""execution_service refuses a signal from a superseded assignment epoch: counted, one line, no fill."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from arbees_core.polling import eventually
from arbees_core.store.schema import migrate
from tests.test_execution_risk import Desk, _kalshi, _poly, _signal

pytestmark = pytest.mark.e2e


def _from(shard: str, epoch: int, signal_id: str):
    sig = _signal(signal_id, "BOS")
    sig.shard_id, sig.epoch = shard, epoch
    return sig


def test_execution_service_refuses_a_superseded_epoch(tmp_path: Path, redis_url: str, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrate(conn)
        conn.execute("INSERT INTO game_assignments (game_id, shard_id, epoch) VALUES ('BOS', '2', 5)")
    desk = Desk(tmp_path, redis_url, database_url, zmq_mode=False)
    desk.env.update({"GAME_ASSIGNMENT": "orchestrator", "ASSIGNMENT_POLL_MS": "100"})
    try:
        desk.start()
        eventually(lambda: desk.stack.metrics("execution_service").get("games_fenced"), 20, what="epochs read")
        desk.price(_kalshi("BOS", 40.0))
        desk.price(_poly("BOS"))
        stale = desk.signal(_from("1", 4, "arb-stale-1"))
        assert {row[1] for row in stale} == {"rejected"} and "superseded" in stale[0][3]
        current = desk.signal(_from("2", 5, "arb-current"))
        assert {row[1] for row in current} == {"filled"}
        assert {row[1] for row in desk.signal(_from("1", 4, "arb-stale-2"))} == {"rejected"}
        eventually(lambda: desk.metric("signals_rejected.superseded") == 2, 10, what="both refusals counted")
        lines = [ln for ln in desk.stack.log("execution_service").splitlines() if "superseded" in ln]
        assert len(lines) == 2, lines  # one line per refused signal
    finally:
        desk.close()
