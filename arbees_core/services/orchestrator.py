"""orchestrator: assigns every mapped game to one live game_shard, and moves games when shards die or join.

Shards heartbeat their id and PUB endpoint into `game_shards`; every ORCHESTRATOR_INTERVAL_MS the orchestrator
reads the mapped games, the shards and `game_assignments`, plans a round (`strategy/assignment.py`: balanced, at
most MAX_GAMES_PER_SHARD per shard, fewest moves) and writes its changes under a new epoch in one transaction
(held under an advisory lock, so a second orchestrator never writes at the same time). Each change is published
to the Redis stream `games:assignments` and logged. All its state is in PostgreSQL: a restart moves nothing.
Run: `python -m arbees_core.services.orchestrator`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env
from arbees_core.services.runner import Service
from arbees_core.services.runner import main as run_main
from arbees_core.services.shards import ShardingConfig
from arbees_core.store.assignments import (
    ORCHESTRATOR_LOCK_KEY,
    mapped_games,
    read_assignments,
    read_shards,
    write_changes,
)
from arbees_core.store.db import StoreUnavailable, connect, postgres_peer
from arbees_core.store.schema import migrate
from arbees_core.strategy.assignment import Plan, plan_round
from arbees_core.telemetry.peers import BACKOFF_MAX_S, PeerLink
from arbees_core.topics import ASSIGNMENTS_STREAM, ORCHESTRATOR
from arbees_core.transport import TransportSettings
from arbees_core.transport.redis import REDIS_ERRORS, make_client, redis_peer


@dataclass(frozen=True)
class OrchestratorConfig:
    """database_url: DATABASE_URL (required); max_games: MAX_GAMES_PER_SHARD (100); interval_s:
    ORCHESTRATOR_INTERVAL_MS (250); sharding: SHARD_DEAD_S and the rest of `ShardingConfig`."""

    database_url: str
    max_games: int
    interval_s: float
    sharding: ShardingConfig

    @classmethod
    def from_env(cls, env: Env) -> "OrchestratorConfig":
        database_url = env.get(S.DATABASE_URL)
        if not database_url:
            raise ConfigError("DATABASE_URL is not set: the orchestrator keeps game_assignments in PostgreSQL")
        return cls(database_url=database_url, max_games=env.get(S.MAX_GAMES_PER_SHARD),
                   interval_s=env.get(S.ORCHESTRATOR_INTERVAL_MS) / 1000,
                   sharding=ShardingConfig.from_env(env))


class Orchestrator(Service):
    name = ORCHESTRATOR

    def __init__(self, settings: TransportSettings, cfg: OrchestratorConfig, heartbeat_interval_s: float = 1.0) -> None:
        super().__init__(settings, heartbeat_interval_s)
        self.cfg = cfg
        self._db = PeerLink(postgres_peer(cfg.database_url), "assigning games")
        self._redis = PeerLink(redis_peer(settings.redis_url), "publishing assignment changes")
        self._conn: psycopg.Connection | None = None
        self._client: Any = None
        self._down_since: float | None = None  # time.monotonic() of the first failed round of an outage
        self._grace: tuple[float, float] = (0.0, 0.0)  # (until, time.monotonic() the forgiven outage began)
        self.view: dict[str, Any] = {"shards": {}, "games": 0, "unassigned": 0, "waiting": 0, "epoch": 0}

    @classmethod
    def from_env(cls, env: Env) -> "Orchestrator":
        return cls(TransportSettings.from_env(env), OrchestratorConfig.from_env(env),
                   env.get(S.HEARTBEAT_INTERVAL_SECS))

    def extra_snapshot(self) -> dict[str, Any]:
        return {"assignment": self.view, "max_games_per_shard": self.cfg.max_games,
                "shard_dead_s": self.cfg.sharding.dead_s}

    def run(self, stop: threading.Event) -> None:
        self.log.info("Orchestrating: SHARD_DEAD_S=%g, MAX_GAMES_PER_SHARD=%d, every %gms", self.cfg.sharding.dead_s,
                      self.cfg.max_games, self.cfg.interval_s * 1000)
        try:
            while not stop.is_set():
                if self._db.may_try():
                    self.round()
                self.tick()
                stop.wait(self.cfg.interval_s)
        finally:
            if self._conn is not None:
                self._conn.close()
            if self._client is not None:
                self._client.close()

    def round(self) -> Plan | None:
        """One assignment round; None when PostgreSQL was not usable (the peer's line says why)."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.cfg.database_url, retries=0)
                migrate(self._conn)
            self._after_outage()
            plan, epoch = self._plan_and_write(self._conn)
            self._db.ok()
        except (StoreUnavailable, psycopg.Error, OSError) as e:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._down_since is None:
                self._down_since = time.monotonic()
            self._db.failed(e, "keeping the assignments as they are; retrying with backoff")
            return None
        self.metrics.inc("rounds")
        if plan.changed:
            self.announce(plan, epoch)
        return plan

    def _after_outage(self) -> None:
        """PostgreSQL usable again after an outage: the shards could not heartbeat through it either, and each one's
        next attempt may be up to a retry backoff later than ours. So until SHARD_DEAD_S plus the longest backoff
        have passed, silence since the outage began is forgiven (`dead_after_s`): only a shard already silent for
        SHARD_DEAD_S when it began is declared dead, and no game moves because of the outage."""
        if self._down_since is None:
            return
        now = time.monotonic()
        window_s = self.cfg.sharding.dead_s + BACKOFF_MAX_S
        self._grace = (now + window_s, self._down_since)
        self._down_since = None
        self.log.info("PostgreSQL usable again after %.1fs: for the next %gs no shard is declared dead for heartbeats "
                      "the outage kept from being written", now - self._grace[1], window_s)

    def dead_after_s(self) -> float:
        """Heartbeat silence after which a shard counts as dead: SHARD_DEAD_S, plus, in the grace window after an
        outage, the time since it began. The forgiveness grows with the clock because a shard's first heartbeat
        after the outage can come a whole backoff after ours: a fixed allowance (the outage's length as we saw
        it) would declare every live shard dead whose retry schedule happened to lag ours."""
        until, began = self._grace
        now = time.monotonic()
        return self.cfg.sharding.dead_s + (now - began if now < until else 0.0)

    def _plan_and_write(self, conn: psycopg.Connection) -> tuple[Plan, int]:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (ORCHESTRATOR_LOCK_KEY,))
            games = mapped_games(conn)
            shards = read_shards(conn, self.dead_after_s())
            current = read_assignments(conn)
            plan = plan_round(games, shards, current, self.cfg.max_games)
            epoch = max((a.epoch for a in current.values()), default=0)
            if plan.changed:
                epoch += 1
                write_changes(conn, epoch, plan.assign, plan.revoke, plan.drop)
        held = dict(conn.execute("SELECT shard_id, count(*) FROM game_assignments WHERE shard_id IS NOT NULL "
                                 "GROUP BY shard_id").fetchall())
        self.view = {"shards": {s.shard_id: {"live": s.live, "endpoint": s.endpoint, "games": held.get(s.shard_id, 0),
                                             "heartbeat_age_s": round(s.age_s, 2)} for s in shards},
                     "games": len(games), "unassigned": len(plan.unassigned), "waiting": len(plan.waiting),
                     "epoch": epoch}
        self.metrics.gauges["games_unassigned"] = len(plan.unassigned)
        return plan, epoch

    def announce(self, plan: Plan, epoch: int) -> None:
        """One line per round that changed something, a counter per kind, and every change on the stream."""
        self.metrics.inc("games_assigned", len(plan.assign))
        self.metrics.inc("games_revoked", len(plan.revoke))
        self.log.info("Epoch %d: assigned %d (%s), revoked %d (%s), dropped %d; %d unassigned (no room)", epoch,
                      len(plan.assign), _short(plan.assign), len(plan.revoke), _short(plan.revoke), len(plan.drop),
                      len(plan.unassigned))
        entries = [{"game_id": g, "shard_id": s, "epoch": epoch, "change": "assign"} for g, s in plan.assign.items()]
        entries += [{"game_id": g, "shard_id": "", "prev_shard": s, "epoch": epoch, "change": "revoke"}
                    for g, s in plan.revoke.items()]
        entries += [{"game_id": g, "shard_id": "", "epoch": epoch, "change": "drop"} for g in plan.drop]
        self.publish(entries)

    def publish(self, entries: list[dict[str, Any]]) -> None:
        if not self._redis.may_try():
            self.metrics.inc("changes_unpublished", len(entries))
            return
        try:
            if self._client is None:
                self._client = make_client(self.settings.redis_url, socket_timeout_s=1.0)
            pipe = self._client.pipeline(transaction=False)
            for entry in entries:
                pipe.xadd(ASSIGNMENTS_STREAM, {"json": orjson.dumps(entry)}, maxlen=self.settings.stream_maxlen,
                          approximate=True)
            pipe.execute()
            self._redis.ok()
            self.metrics.inc("changes_published", len(entries))
        except REDIS_ERRORS as e:
            self.metrics.inc("changes_unpublished", len(entries))
            self._redis.failed(e, "assignment changes stay in PostgreSQL only; retrying with backoff")


def _short(changes: dict[str, str]) -> str:
    items = [f"{g}->{s}" for g, s in sorted(changes.items())]
    return ", ".join(items[:4]) + (f", +{len(items) - 4} more" if len(items) > 4 else "")


def main() -> int:
    return run_main(Orchestrator)


if __name__ == "__main__":
    raise SystemExit(main())
