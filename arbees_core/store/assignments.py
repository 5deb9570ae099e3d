"""Which game_shard evaluates which game: `game_shards` (membership) and `game_assignments` (game, shard, epoch,
since) in PostgreSQL, the one record the orchestrator, every shard and execution_service agree on.

Epochs are global and only grow: every orchestrator round that changes anything takes `max(epoch) + 1` for all
its changes. A shard holds a game only under an assignment newer than its own registration (`joined_epoch`), so
a restarted instance never inherits what a dead predecessor held (it registers only once the predecessor has
been silent for twice SHARD_DEAD_S, so the dead shard's games have moved to the live shards first, and it then
takes a share like any joining shard); a game taken from a live shard is first revoked
(`shard_id` NULL) and handed to another only once the previous holder has read a snapshot that contains the
revocation (`seen_epoch`), so two live shards never hold one game. Signals carry the epoch; execution_service
refuses one older than the newest epoch it knows for the game.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

ASSIGNMENT_TABLES = """
CREATE TABLE IF NOT EXISTS game_shards (
    shard_id text PRIMARY KEY,
    endpoint text NOT NULL DEFAULT '',
    instance text NOT NULL DEFAULT '',
    joined_epoch bigint NOT NULL DEFAULT 0,
    seen_epoch bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS game_assignments (
    game_id text PRIMARY KEY,
    shard_id text,
    epoch bigint NOT NULL,
    since timestamptz NOT NULL DEFAULT now(),
    prev_shard text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS game_assignments_shard_idx ON game_assignments (shard_id);
"""

#: Only one orchestrator writes at a time (a second one waits for the lock each round).
ORCHESTRATOR_LOCK_KEY = 0x4152_4245_4553 + 20


@dataclass(frozen=True)
class ShardRow:
    """One shard as the orchestrator sees it. live: heartbeat within SHARD_DEAD_S (database clock)."""

    shard_id: str
    endpoint: str
    instance: str
    joined_epoch: int
    seen_epoch: int
    live: bool
    age_s: float


@dataclass(frozen=True)
class AssignmentRow:
    """game_id held by shard_id (None: revoked from prev_shard, waiting for it to let go) since epoch."""

    game_id: str
    shard_id: str | None
    epoch: int
    prev_shard: str = ""


_REGISTER = """
INSERT INTO game_shards AS s (shard_id, endpoint, instance, joined_epoch, seen_epoch, started_at, heartbeat_at)
VALUES (%(shard)s, %(endpoint)s, %(instance)s, %(epoch)s, %(epoch)s, now(), now())
ON CONFLICT (shard_id) DO UPDATE SET
    endpoint = EXCLUDED.endpoint, heartbeat_at = now(), seen_epoch = EXCLUDED.seen_epoch,
    instance = EXCLUDED.instance,
    joined_epoch = CASE WHEN s.instance = EXCLUDED.instance THEN s.joined_epoch ELSE EXCLUDED.joined_epoch END,
    started_at = CASE WHEN s.instance = EXCLUDED.instance THEN s.started_at ELSE now() END
 WHERE s.instance = EXCLUDED.instance OR s.heartbeat_at < now() - make_interval(secs => 2 * %(dead_s)s)
RETURNING joined_epoch"""


@dataclass(frozen=True)
class ShardView:
    """What one shard read in one snapshot. registered: False when another live instance holds this SHARD_ID."""

    registered: bool
    joined_epoch: int
    seen_epoch: int
    games: dict[str, int]
    holder: str = ""


def shard_heartbeat(conn: psycopg.Connection, shard_id: str, endpoint: str, instance: str,
                    dead_s: float) -> ShardView:
    """Heartbeat and read this shard's games in one REPEATABLE READ snapshot (the `seen_epoch` it reports is
    exactly the state it read). Games assigned before this instance joined are not its own."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    try:
        seen = int(conn.execute("SELECT coalesce(max(epoch), 0) FROM game_assignments").fetchone()[0])
        rows = conn.execute("SELECT game_id, epoch FROM game_assignments WHERE shard_id = %s", (shard_id,)).fetchall()
        got = conn.execute(_REGISTER, {"shard": shard_id, "endpoint": endpoint, "instance": instance, "epoch": seen,
                                       "dead_s": dead_s}).fetchone()
        holder = "" if got else str(conn.execute("SELECT instance FROM game_shards WHERE shard_id = %s",
                                                 (shard_id,)).fetchone()[0])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if got is None:
        return ShardView(False, 0, seen, {}, holder)
    joined = int(got[0])
    return ShardView(True, joined, seen, {g: int(e) for g, e in rows if int(e) > joined})


def read_shards(conn: psycopg.Connection, dead_s: float) -> list[ShardRow]:
    rows = conn.execute(
        "SELECT shard_id, endpoint, instance, joined_epoch, seen_epoch, "
        "heartbeat_at > now() - make_interval(secs => %s), extract(epoch FROM now() - heartbeat_at) "
        "FROM game_shards ORDER BY shard_id", (dead_s,)).fetchall()
    return [ShardRow(r[0], r[1], r[2], int(r[3]), int(r[4]), bool(r[5]), float(r[6])) for r in rows]


def live_endpoints(conn: psycopg.Connection, dead_s: float) -> dict[str, str]:
    """shard id -> PUB endpoint of every live shard (execution_service and zmq_listener connect to each)."""
    return {s.shard_id: s.endpoint for s in read_shards(conn, dead_s) if s.live and s.endpoint}


def read_assignments(conn: psycopg.Connection) -> dict[str, AssignmentRow]:
    rows = conn.execute("SELECT game_id, shard_id, epoch, prev_shard FROM game_assignments").fetchall()
    return {r[0]: AssignmentRow(r[0], r[1], int(r[2]), r[3]) for r in rows}


def game_epochs(conn: psycopg.Connection) -> dict[str, int]:
    """game -> its current epoch (execution_service's fence)."""
    return {g: int(e) for g, e in conn.execute("SELECT game_id, epoch FROM game_assignments").fetchall()}


def mapped_games(conn: psycopg.Connection) -> list[str]:
    try:
        return sorted(r[0] for r in conn.execute("SELECT DISTINCT game_id FROM market_mappings").fetchall())
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return []


def write_changes(conn: psycopg.Connection, epoch: int, assign: dict[str, str], revoke: dict[str, str],
                  drop: list[str]) -> None:
    """One round's changes under `epoch` (inside the caller's transaction)."""
    with conn.cursor() as cur:
        if assign:
            cur.executemany(
                "INSERT INTO game_assignments (game_id, shard_id, epoch, since, prev_shard) VALUES (%s, %s, %s, now(), '') "
                "ON CONFLICT (game_id) DO UPDATE SET prev_shard = coalesce(game_assignments.shard_id, "
                "game_assignments.prev_shard), shard_id = EXCLUDED.shard_id, epoch = EXCLUDED.epoch, since = now()",
                [(g, s, epoch) for g, s in assign.items()])
        if revoke:
            cur.executemany("UPDATE game_assignments SET shard_id = NULL, prev_shard = %s, epoch = %s, since = now() "
                            "WHERE game_id = %s", [(s, epoch, g) for g, s in revoke.items()])
        if drop:
            cur.execute("DELETE FROM game_assignments WHERE game_id = ANY(%s)", (drop,))
