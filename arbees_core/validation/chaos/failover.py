"""`kill-game_shard` on a stack of several shards: the killed shard's games trade again on another shard.

Before the kill, the games the shard holds are read from `game_assignments`; after it, the scenario waits for
the orchestrator to give them to live shards and for the first executed signal of a moved game published by
another shard (the `signals:trades` stream holds every signal with its shard id and epoch in both modes). The
gap (kill to that signal's detection) must be within SHARD_DEAD_S + 5 s; the paper-trade ledger stays exact and
no moved game is traded by two shards after the move (a superseded epoch's signal is refused, and counted).
"""

from __future__ import annotations

from typing import Any

import msgspec

from arbees_core.polling import eventually
from arbees_core.registry import shard_number
from arbees_core.store.assignments import read_assignments, read_shards
from arbees_core.store.db import connect
from arbees_core.validation.chaos.probe import StackProbe, executed_ids, ledger
from arbees_core.validation.results import RunResult

#: Seconds past SHARD_DEAD_S within which a moved game must trade again.
FAILOVER_SLACK_S = 5.0


def victim_games(probe: StackProbe, service: str) -> tuple[str, set[str], int] | None:
    """(shard id, games it holds, live shards) when the stack runs several orchestrated shards, else None."""
    shard_id = str(shard_number(service) or "")
    db = probe.urls.get("DATABASE_URL", "")
    if not shard_id or not db:
        return None
    try:
        with connect(db, retries=2) as conn:
            live = [s for s in read_shards(conn, dead_s(probe)) if s.live]
            held = {g for g, a in read_assignments(conn).items() if a.shard_id == shard_id}
    except Exception:  # noqa: BLE001 - a stack without the tables: a single unsharded game_shard
        return None
    return (shard_id, held, len(live)) if len(live) > 1 and held else None


def dead_s(probe: StackProbe) -> float:
    snap = probe.metrics("orchestrator")
    return float(snap.get("shard_dead_s") or 5.0)


def _signals_since(probe: StackProbe, since_ms: int) -> list[dict[str, Any]]:
    client = probe.redis()
    try:
        entries = client.xrange("signals:trades", min=f"{since_ms}-0", max="+")
    finally:
        client.close()
    out = []
    for _, fields in entries:
        try:
            out.append(msgspec.json.decode(fields[b"data"]))
        except (KeyError, msgspec.DecodeError):
            continue
    return out


def _first_moved_trade(probe: StackProbe, games: set[str], victim: str, since_ms: int) -> dict[str, Any] | None:
    executed = executed_ids(probe.urls["DATABASE_URL"])
    for sig in _signals_since(probe, since_ms):
        if sig.get("game_id") in games and sig.get("shard_id") not in ("", victim) and sig["signal_id"] in executed:
            return sig
    return None


def check_failover(probe: StackProbe, result: RunResult, victim: tuple[str, set[str], int], kill_ns: int,
                   timeout_s: float) -> None:
    shard_id, games, live = victim
    limit = dead_s(probe) + FAILOVER_SLACK_S
    db = probe.urls["DATABASE_URL"]

    def moved() -> dict[str, str] | None:
        with connect(db, retries=2) as conn:
            now = {g: a.shard_id for g, a in read_assignments(conn).items() if g in games}
        return now if all(s not in (None, shard_id) for s in now.values()) else None

    where = eventually(moved, limit + 2, raises=False)
    result.add(f"shard {shard_id}'s {len(games)} games moved to live shards", bool(where),
               ", ".join(f"{g}->{s}" for g, s in sorted((where or {}).items())[:6]) or "not moved")
    first = eventually(lambda: _first_moved_trade(probe, games, shard_id, kill_ns // 1_000_000 - 1000),
                       max(timeout_s, limit + 5), raises=False)
    gap_s = (int(first["ts_detect_ns"]) - kill_ns) / 1e9 if first else None
    result.add(f"a moved game trades again on another shard within SHARD_DEAD_S + {FAILOVER_SLACK_S:g} s "
               f"({limit:g} s)", first is not None and gap_s is not None and gap_s <= limit,
               f"gap {gap_s:.2f} s: {first['game_id']} on shard {first['shard_id']} (epoch {first['epoch']}), "
               f"{live} shards were live" if first else "no executed signal of a moved game from another shard")
    flushed = eventually(lambda: (probe.field("execution_service", "writer") or {}).get("pending") == 0, 20,
                         raises=False)
    book = ledger(db)
    result.add("no paper trade lost or duplicated by the move", book.consistent and bool(flushed), book.text())
    _check_one_shard_per_epoch(probe, result, games, kill_ns)
    superseded = probe.counter("execution_service", "signals_rejected.superseded")
    result.add("superseded-epoch signals refused, and counted", True, f"signals_rejected.superseded={superseded}",
               critical=False)
    result.data["failover_gap_s"] = round(gap_s, 3) if gap_s is not None else None


def _check_one_shard_per_epoch(probe: StackProbe, result: RunResult, games: set[str], kill_ns: int) -> None:
    """Never two shards on one game: every executed signal of a moved game since the kill names one shard per
    (game, epoch), and no game was traded by two shards under one epoch."""
    executed = executed_ids(probe.urls["DATABASE_URL"])
    holders: dict[tuple[str, int], set[str]] = {}
    for sig in _signals_since(probe, kill_ns // 1_000_000 - 1000):
        if sig.get("game_id") in games and sig["signal_id"] in executed:
            holders.setdefault((sig["game_id"], int(sig.get("epoch", 0))), set()).add(str(sig.get("shard_id")))
    twice = {k: v for k, v in holders.items() if len(v) > 1}
    result.add("never two shards on one game (one shard per game and epoch among executed signals)", not twice,
               f"{len(holders)} (game, epoch) pairs traded" + (f"; shared: {twice}" if twice else ""))
