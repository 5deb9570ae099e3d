"""The orchestrator assigns games to game shards: the plan (pure) and real processes on a real PostgreSQL."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from arbees_core.runtime.ports import free_port_block
from arbees_core.harness import ProcessStack
from arbees_core.polling import eventually
from arbees_core.store.assignments import AssignmentRow, ShardRow, read_assignments
from arbees_core.store.db import connect
from arbees_core.store.mappings import save_mappings
from arbees_core.store.schema import migrate
from arbees_core.strategy.assignment import plan_round, shares
from arbees_core.telemetry.peers import BACKOFF_MAX_S
from arbees_core.venues.listing import GameMapping, OutcomePair
from tests.tcp_outage import TcpOutage


def shard(sid: str, live: bool = True, joined: int = 0, seen: int = 0) -> ShardRow:
    return ShardRow(sid, f"tcp://127.0.0.1:{5000 + int(sid)}", f"i{sid}", joined, seen, live, 0.0)


def apply(current: dict[str, AssignmentRow], plan, epoch: int) -> dict[str, AssignmentRow]:
    out = dict(current)
    for g, s in plan.assign.items():
        out[g] = AssignmentRow(g, s, epoch)
    for g, s in plan.revoke.items():
        out[g] = AssignmentRow(g, None, epoch, s)
    for g in plan.drop:
        out.pop(g, None)
    return out


def counts(current: dict[str, AssignmentRow]) -> Counter:
    return Counter(a.shard_id for a in current.values() if a.shard_id)


GAMES = [f"g{i:02d}" for i in range(10)]


def test_assignment_is_balanced_and_capped() -> None:
    plan = plan_round(GAMES, [shard("1"), shard("2"), shard("3")], {}, cap=100)
    assert sorted(Counter(plan.assign.values()).values()) == [3, 3, 4]
    capped = plan_round(GAMES, [shard("1"), shard("2")], {}, cap=4)
    assert Counter(capped.assign.values()) == {"1": 4, "2": 4} and len(capped.unassigned) == 2
    assert shares({"a": 5, "b": 5, "c": 0}, 10, 100) == {"a": 4, "b": 3, "c": 3}


def test_a_balanced_state_yields_no_change_so_a_restart_moves_nothing() -> None:
    shards = [shard("1"), shard("2"), shard("3")]
    current = apply({}, plan_round(GAMES, shards, {}, 100), 1)
    again = plan_round(GAMES, shards, current, 100)
    assert not again.changed


def test_a_dead_shard_loses_its_games_to_the_live_ones() -> None:
    shards = [shard("1"), shard("2"), shard("3")]
    current = apply({}, plan_round(GAMES, shards, {}, 100), 1)
    dead = [shard("1"), shard("2", live=False), shard("3")]
    plan = plan_round(GAMES, dead, current, 100)
    moved = {g for g, a in current.items() if a.shard_id == "2"}
    assert set(plan.assign) == moved and set(plan.assign.values()) <= {"1", "3"} and not plan.revoke
    assert sorted(counts(apply(current, plan, 2)).values()) == [5, 5]


def test_a_joining_shard_takes_a_share_moving_few_games_with_a_handover() -> None:
    two = [shard("1", seen=1), shard("2", seen=1)]
    current = apply({}, plan_round(GAMES, two, {}, 100), 1)
    three = [*two, shard("3", joined=1, seen=1)]
    first = plan_round(GAMES, three, current, 100)
    assert len(first.revoke) == 3 and not first.assign  # taken from live shards: revoked first
    current = apply(current, first, 2)
    assert not plan_round(GAMES, three, current, 100).assign  # not handed over before the holders let go
    let_go = [shard("1", seen=2), shard("2", seen=2), shard("3", joined=1, seen=2)]
    second = plan_round(GAMES, let_go, current, 100)
    assert set(second.assign) == set(first.revoke) and set(second.assign.values()) == {"3"}
    assert sorted(counts(apply(current, second, 3)).values()) == [3, 3, 4]


def test_a_restarted_shard_instance_does_not_inherit_its_predecessors_games() -> None:
    shards = [shard("1"), shard("2")]
    current = apply({}, plan_round(GAMES, shards, {}, 100), 1)
    restarted = [shard("1"), shard("2", joined=1)]  # same id, a new instance registered at epoch 1
    plan = plan_round(GAMES, restarted, current, 100)
    assert {g for g, a in current.items() if a.shard_id == "2"} <= set(plan.assign)


def test_after_an_outage_a_shard_whose_retry_lags_ours_by_a_whole_backoff_is_not_declared_dead(monkeypatch) -> None:
    """Every process retries PostgreSQL on its own backoff, so a live shard's first heartbeat after an outage can
    come BACKOFF_MAX_S after the orchestrator's first good round: through the grace window the silence forgiven
    grows with the clock, and only a shard already silent for SHARD_DEAD_S when the outage began counts as dead."""
    from arbees_core.config import Env
    from arbees_core.services import orchestrator as orch

    clock = [1000.0]
    monkeypatch.setattr(orch.time, "monotonic", lambda: clock[0])
    o = orch.Orchestrator.from_env(Env({"DATABASE_URL": "postgresql://127.0.0.1:1/x", "SHARD_DEAD_S": "2"}))
    assert o.dead_after_s() == 2.0
    o._down_since = clock[0]  # the first failed round; the shard's last heartbeat was just before
    last_heartbeat = clock[0] - 0.1
    clock[0] += 6.3  # our retry lands just after the outage ends
    o._after_outage()
    for lag in (0.0, 1.0, 3.0, BACKOFF_MAX_S - 0.1):  # the shard's retry may come a whole backoff later
        clock[0] = 1006.3 + lag
        assert clock[0] - last_heartbeat < o.dead_after_s(), lag
    long_silent = 1000.0 - 2.5  # silent for more than SHARD_DEAD_S when the outage began
    assert clock[0] - long_silent > o.dead_after_s()
    clock[0] = 1006.3 + 2.0 + BACKOFF_MAX_S + 0.1  # past the window: SHARD_DEAD_S again
    assert o.dead_after_s() == 2.0


# -- real processes --------------------------------------------------------------------------------------------

DEAD_S = 2.0


def _games(n: int) -> list[GameMapping]:
    return [GameMapping(game_id=f"nba-{i:03d}", league="nba", start_date="2026-12-04", away=f"A{i}", home=f"H{i}",
                        pairs=(OutcomePair(outcome="home", kalshi_ticker=f"K{i}", poly_token=f"P{i}"),), shard_id="")
            for i in range(n)]


@contextmanager
def _sharded(tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str, redis_server_url: str,
             shards: int, games: int, outage: bool = False) -> Iterator[tuple[ProcessStack, str, TcpOutage | None]]:
    """An orchestrator and `shards` game shards (ZMQ mode, no monitors) on a database of its own holding `games`
    mapped games; with `outage`, the processes reach PostgreSQL through a `TcpOutage` the test can cut."""
    import uuid
    from urllib.parse import urlsplit

    name = f"arbees_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db = postgres_server_url.rsplit("/", 1)[0] + f"/{name}"
    folder = tmp_path_factory.mktemp("sharded")
    with connect(db) as conn:
        migrate(conn)
        save_mappings(conn, _games(games), [])
    proxy = None
    db_for_services = db
    if outage:
        where = urlsplit(db)
        proxy = TcpOutage(where.hostname or "127.0.0.1", where.port or 5432)
        db_for_services = where._replace(netloc=where.netloc.replace(f"{where.hostname}:{where.port}",
                                                                     f"127.0.0.1:{proxy.port}")).geturl()
        assert str(proxy.port) in db_for_services, db_for_services
    base = free_port_block(8)
    state = folder / ".arbees"
    state.mkdir()
    env = {"DATABASE_URL": db_for_services, "REDIS_URL": redis_server_url, "ZMQ_ENABLED": "true",
           "ARBEES_HOME": str(folder), "ARBEES_STATE_DIR": str(state), "GAME_ASSIGNMENT": "orchestrator",
           "SHARD_DEAD_S": str(DEAD_S), "ASSIGNMENT_POLL_MS": "100", "ORCHESTRATOR_INTERVAL_MS": "100",
           "HEARTBEAT_INTERVAL_SECS": "0.2", "ARBEES_RT_PRIORITY": "0", "PYTHONUNBUFFERED": "1",
           "ZMQ_SUB_ENDPOINTS": f"tcp://127.0.0.1:{base + 7}"}
    stack = ProcessStack(folder, env)
    for k in range(1, shards + 1):
        stack.start("game_shard" if k == 1 else f"game_shard_{k}", SHARD_ID=str(k), ZMQ_PUB_PORT=str(base + k))
    stack.start("orchestrator")
    stack.base = base  # type: ignore[attr-defined]
    try:
        yield stack, db, proxy
    finally:
        stack.stop_all()
        if proxy is not None:
            proxy.close()
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str,
            redis_server_url: str) -> Iterator[tuple[ProcessStack, str]]:
    """An orchestrator and three game shards (ZMQ mode, no monitors) on a database holding six mapped games."""
    with _sharded(tmp_path_factory, postgres_server_url, redis_server_url, 3, 6) as (stack, db, _):
        yield stack, db


def _held(db: str) -> dict[str, str]:
    with connect(db) as conn:
        return {g: a.shard_id for g, a in read_assignments(conn).items() if a.shard_id}


def _balanced(db: str, shards: set[str], per: list[int]):
    held = _held(db)
    return held if set(held.values()) == shards and sorted(Counter(held.values()).values()) == per else None


@pytest.mark.e2e
def test_orchestrator_spreads_games_over_three_shards_and_a_restart_moves_nothing(sharded) -> None:
    stack, db = sharded
    before = eventually(lambda: _balanced(db, {"1", "2", "3"}, [2, 2, 2]), 30, what="2 games on each shard")
    for name, sid in (("game_shard", "1"), ("game_shard_2", "2"), ("game_shard_3", "3")):
        mine = sorted(g for g, s in before.items() if s == sid)
        eventually(lambda n=name, m=mine: stack.metrics(n).get("held_games") == m, 10, what=f"{name} holds {mine}")
    epochs = _epochs(db)
    stack.stop("orchestrator")
    stack.start("orchestrator")
    eventually(lambda: stack.counter("orchestrator", "rounds") >= 10 and
               stack.metrics("orchestrator").get("pid") == stack.procs["orchestrator"].pid, 20,
               what="the restarted orchestrator ran ten rounds")
    assert _held(db) == before and _epochs(db) == epochs


@pytest.mark.e2e
def test_a_joining_shard_takes_a_share_and_a_killed_one_loses_its_games(sharded) -> None:
    stack, db = sharded
    before = eventually(lambda: _balanced(db, {"1", "2", "3"}, [2, 2, 2]), 30, what="2 games on each shard")
    stack.start("game_shard_4", SHARD_ID="4", ZMQ_PUB_PORT=str(stack.base + 4))  # type: ignore[attr-defined]
    after = eventually(lambda: _balanced(db, {"1", "2", "3", "4"}, [1, 1, 2, 2]), 20, what="shard 4 took a share")
    assert sum(before[g] != after[g] for g in before) == 1  # 6 games on 4 shards: 2, 2, 1, 1; one move
    victim = stack.procs["game_shard_2"]
    lost = {g for g, s in after.items() if s == "2"}
    os.kill(victim.pid, signal.SIGKILL)
    moved = eventually(lambda: (lambda h: h if not set(h.values()) & {"2"} and set(h) >= lost else None)(_held(db)),
                       DEAD_S + 5, what="shard 2's games moved to live shards")
    assert sorted(Counter(moved.values()).values()) == [2, 2, 2]
    assert "Epoch" in stack.log("orchestrator")


def _epochs(db: str) -> dict[str, int]:
    with connect(db) as conn:
        return {g: a.epoch for g, a in read_assignments(conn).items()}


def _postgres_unusable(metrics: dict) -> bool:
    return any(p.get("kind") == "PostgreSQL" and not p.get("usable", True) for p in metrics.get("peers", []))


@pytest.mark.e2e
def test_a_postgres_outage_moves_no_game_and_every_shard_keeps_trading_its_games(
        tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str, redis_server_url: str) -> None:
    """Assignments live in PostgreSQL, and nobody can move a game while it is away: the shards keep evaluating
    their games through an outage three times SHARD_DEAD_S long, and once it is back the orchestrator declares no
    shard dead for heartbeats the outage kept from being written (no game moves, no epoch changes)."""
    with _sharded(tmp_path_factory, postgres_server_url, redis_server_url, 2, 6, outage=True) as (stack, db, proxy):
        assert proxy is not None
        before = eventually(lambda: _balanced(db, {"1", "2"}, [3, 3]), 30, what="3 games on each shard")
        mine = {n: sorted(g for g, s in before.items() if s == sid) for n, sid in (("game_shard", "1"),
                                                                                    ("game_shard_2", "2"))}
        for name, games in mine.items():
            eventually(lambda n=name, m=games: stack.metrics(n).get("held_games") == m, 10, what=f"{name} holds {games}")
        epochs = _epochs(db)

        # Act: PostgreSQL unreachable for 3 x SHARD_DEAD_S
        proxy.cut()
        eventually(lambda: all(_postgres_unusable(stack.metrics(n)) for n in (*mine, "orchestrator")), 10,
                   what="every process saw PostgreSQL go away")
        held_during = []
        deadline = time.monotonic() + 3 * DEAD_S
        while time.monotonic() < deadline:
            held_during.append({n: stack.metrics(n).get("held_games") for n in mine})
            time.sleep(0.25)
        proxy.restore()
        rounds = stack.counter("orchestrator", "rounds")
        eventually(lambda: "PostgreSQL usable again" in stack.log("orchestrator"), 20, what="the orchestrator back")
        # the grace window is SHARD_DEAD_S plus the longest retry backoff; a round every 100 ms
        eventually(lambda: stack.counter("orchestrator", "rounds") >= rounds + 10 * (DEAD_S + BACKOFF_MAX_S + 2), 60,
                   what="the orchestrator ran rounds past its grace window")

        # Assert: the shards held their games throughout; nothing moved, no epoch changed
        assert held_during and all(h == mine for h in held_during), held_during[:3]
        assert _held(db) == before and _epochs(db) == epochs
        for name, games in mine.items():
            assert stack.metrics(name).get("held_games") == games
