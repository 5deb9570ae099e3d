"""The trade spool: durable appends, committed offsets that survive restarts, torn lines, compaction, kill -9."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arbees_core.messages import TradeResult
from arbees_core.polling import eventually
from arbees_core.store.spool import SpoolRecord, TradeSpool

ROOT = Path(__file__).resolve().parents[1]


def make_record(signal_id: str = "arb-1", fill_ns: int | None = None, transport: str = "zmq") -> SpoolRecord:
    """A two-leg executed signal, as execution_service spools it."""
    fill_ns = fill_ns or time.time_ns()
    origin = fill_ns - 12_000_000
    results = [
        TradeResult(src="execution_service.t", seq=i, order_id=f"{signal_id}-{i}", signal_id=signal_id,
                    game_id="NBA-2026-11-24-MIA-BOS", leg=i, venue=venue, ticker=ticker, side=side,
                    status="filled", limit_price=price, qty=10.0, filled_qty=10.0, avg_price=price - 1,
                    fees_cents=0.7, transport=transport, ts_origin_ns=origin, ts_fill_ns=fill_ns,
                    price_latency_ms=3.0, signal_latency_ms=2.5, execution_latency_ms=0.4, latency_ms=12.0)
        for i, (venue, ticker, side, price) in enumerate([("kalshi", "KXNBAGAME-26NOV24MIABOS-BOS", "yes", 40.0),
                                                          ("polymarket", "1234", "no", 52.0)])
    ]
    return SpoolRecord(signal_id=signal_id, game_id="NBA-2026-11-24-MIA-BOS", transport=transport,
                       executed_ns=fill_ns, results=results)


def test_append_pending_commit_round_trip(tmp_path: Path) -> None:
    spool = TradeSpool(tmp_path / "deep" / "spool.jsonl")
    first = spool.append(make_record("a"))
    second = spool.append(make_record("b"))
    assert 0 < first < second == (tmp_path / "deep" / "spool.jsonl").stat().st_size
    pending = spool.pending()
    assert [(o, r.signal_id) for o, r in pending] == [(first, "a"), (second, "b")]
    assert pending[0][1] == make_record("a", fill_ns=pending[0][1].executed_ns)
    spool.mark_committed(first)
    assert [r.signal_id for _, r in spool.pending()] == ["b"]
    spool.mark_committed(first - 1)  # offsets only move forward
    assert [r.signal_id for _, r in spool.pending()] == ["b"]
    spool.mark_committed(second)
    assert spool.pending() == []
    assert spool.signal_ids() == {"a", "b"}


def test_committed_offset_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    spool = TradeSpool(path)
    first = spool.append(make_record("a"))
    spool.append(make_record("b"))
    spool.mark_committed(first)
    spool.close()
    again = TradeSpool(path)
    assert [r.signal_id for _, r in again.pending()] == ["b"]
    assert again.signal_ids() == {"a", "b"}


def test_torn_last_line_is_skipped_and_the_others_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "spool.jsonl"
    spool = TradeSpool(path)
    spool.append(make_record("a"))
    spool.append(make_record("b"))
    with open(path, "ab") as f:
        f.write(b'{"signal_id":"c","game_id":"G","transp')  # a write cut by kill -9
    with caplog.at_level(logging.WARNING, logger="arbees.store.spool"):
        assert [r.signal_id for _, r in spool.pending()] == ["a", "b"]
        assert [r.signal_id for _, r in spool.pending()] == ["a", "b"]
    assert len([r for r in caplog.records if "torn" in r.getMessage()]) == 1
    spool.close()
    reopened = TradeSpool(path)  # the torn tail is cut, so the next append starts on a fresh line
    reopened.append(make_record("d"))
    assert [r.signal_id for _, r in reopened.pending()] == ["a", "b", "d"]


def test_compact_keeps_pending_and_the_last_committed_record(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    spool = TradeSpool(path)
    offsets = [spool.append(make_record(f"s{i}")) for i in range(5)]
    spool.mark_committed(offsets[2])
    size_before = path.stat().st_size
    spool.compact()
    assert path.stat().st_size < size_before
    assert spool.committed_offset == offsets[2] - offsets[1]  # the last committed record: the sequence seed
    assert [r.signal_id for _, r in spool.pending()] == ["s3", "s4"]
    assert spool.signal_ids() == {"s2", "s3", "s4"}
    end = spool.append(make_record("s5"))  # appends go to the new file
    assert end == path.stat().st_size
    spool.close()
    reopened = TradeSpool(path)
    assert [r.signal_id for _, r in reopened.pending()] == ["s3", "s4", "s5"]


def test_stale_committed_offset_after_compaction_means_replay(tmp_path: Path) -> None:
    """A crash between the rename and the offset reset: the old offset names the old inode, so it is ignored."""
    path = tmp_path / "spool.jsonl"
    spool = TradeSpool(path)
    offsets = [spool.append(make_record(f"s{i}")) for i in range(3)]
    spool.mark_committed(offsets[0])
    stale = (tmp_path / "spool.jsonl.committed").read_text()
    spool.compact()
    spool.close()
    (tmp_path / "spool.jsonl.committed").write_text(stale)
    reopened = TradeSpool(path)
    assert [r.signal_id for _, r in reopened.pending()] == ["s0", "s1", "s2"]  # replaying s0 is harmless


_WRITER = """
import sys, time
from pathlib import Path
from arbees_core.store.spool import TradeSpool
from tests.test_spool import make_record
spool = TradeSpool(Path(sys.argv[1]))
i = 0
while True:
    spool.append(make_record(f"k{i}"))
    i += 1
    if i == 50:
        print("ready", flush=True)
"""


def test_kill_9_while_appending_leaves_every_complete_line_readable(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=env, cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read() if proc.stderr else b""
        eventually(lambda: path.stat().st_size > 200_000, timeout=20, what="writer appended a while")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    data = path.read_bytes()
    complete = data.count(b"\n")
    spool = TradeSpool(path)
    records = [r for _, r in spool.pending()]
    assert len(records) == complete >= 50
    assert [r.signal_id for r in records] == [f"k{i}" for i in range(complete)]
    assert all(len(r.results) == 2 for r in records)
    end = spool.append(make_record("after"))
    assert spool.pending()[-1] == (end, spool.pending()[-1][1])
    assert spool.pending()[-1][1].signal_id == "after"
