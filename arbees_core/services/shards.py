"""The shards' control plane as services see it, read from PostgreSQL off the hot path (`store/assignments.py`).

* `ShardMembership` (each game_shard): heartbeats its shard id and PUB endpoint and reads the games it holds and
  their epochs, every ASSIGNMENT_POLL_MS. Through an outage of PostgreSQL it keeps the games of its last lease
  (nobody can move them meanwhile; `ShardMembership.games` says why that is safe); it holds nothing while its
  lease is old for another reason, nor while another live instance holds its SHARD_ID.
* `ShardFeed` (each game_shard, ZMQ mode): subscribes to the price topics of the markets of the games the shard
  holds, and to no other, so that each shard receives and decodes only its own games' prices. In Redis mode a
  shard reads the whole `prices:kalshi` and `prices:poly` streams (a stream has no per-topic subscription) and
  decodes every entry: there each shard's CPU per price is that of the whole feed, and splitting the games over
  shards splits only the evaluation.
* `ShardDirectory` (execution_service, zmq_listener): the live shards' endpoints, which their SUB sockets connect
  to as shards appear, and every game's newest epoch, which execution_service fences signals with.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.store.assignments import ShardView, game_epochs, live_endpoints, shard_heartbeat
from arbees_core.store.db import StoreUnavailable, connect, postgres_peer
from arbees_core.store.schema import migrate
from arbees_core.telemetry.peers import PeerLink
from arbees_core.topics import GAME_SHARD, KALSHI, POLYMARKET, Family, price_topic

if TYPE_CHECKING:
    from arbees_core.messages import TradingSignal
    from arbees_core.venues.listing import GameMapping

#: Share of SHARD_DEAD_S after which a shard whose heartbeats stopped succeeding for another reason than PostgreSQL
#: being unreachable stops evaluating (before it is declared dead). Through an outage of PostgreSQL it keeps its
#: games (`ShardMembership.epoch_of`).
SELF_FENCE_SHARE = 0.6


@dataclass(frozen=True)
class ShardingConfig:
    """mode: GAME_ASSIGNMENT, `static` (default: the shard evaluates every game, or those discovery gave its
    SHARD_ID) or `orchestrator` (only the games the orchestrator assigned it); dead_s: SHARD_DEAD_S (5), seconds
    without a heartbeat before a shard's games move; poll_s: ASSIGNMENT_POLL_MS (250), how often shards heartbeat
    and services re-read the assignments; advertise: SHARD_ENDPOINT, the endpoint others connect to for this
    shard's signals (default tcp://<ZMQ_ADVERTISE_HOST or 127.0.0.1>:<port>; `auto` host = this host's address);
    feed: SHARD_FEED, `all` (default: every market's prices, their sequence gaps counted as loss, fault injection
    on any ticker reaches the shard) or `held` (ZMQ mode under the orchestrator: only the markets of the games held,
    `ShardFeed`, so a shard's CPU per price falls as shards are added; its loss is counted per market from the
    price updates' `topic_seq`, since the families' sequence numbers skip the markets it does not follow)."""

    mode: str = "static"
    dead_s: float = 5.0
    poll_s: float = 0.25
    advertise: str = ""
    advertise_host: str = "127.0.0.1"
    feed: str = "all"

    @classmethod
    def from_env(cls, env: Env) -> "ShardingConfig":
        return cls(mode=env.get(S.GAME_ASSIGNMENT), dead_s=env.get(S.SHARD_DEAD_S),
                   poll_s=env.get(S.ASSIGNMENT_POLL_MS) / 1000, advertise=env.get(S.SHARD_ENDPOINT),
                   advertise_host=env.get(S.ZMQ_ADVERTISE_HOST) or "127.0.0.1", feed=env.get(S.SHARD_FEED))

    @property
    def orchestrated(self) -> bool:
        return self.mode == "orchestrator"

    def endpoint_for(self, port: int | None) -> str:
        if self.advertise:
            return self.advertise
        host = self.advertise_host
        if host == "auto":
            host = socket.gethostbyname(socket.gethostname())
        return f"tcp://{host}:{port}" if port else ""


def shard_service_name(shard_id: str) -> str:
    """`game_shard` for shard 1 (or no id: the plan's commands name it so), `game_shard_<id>` for the others."""
    return GAME_SHARD if shard_id in ("", "1") else f"{GAME_SHARD}_{shard_id}"


def health_name(environ: dict[str, str]) -> str:
    """The name a container's service writes its metrics under (what its healthcheck reads): ARBEES_SERVICE, or
    for an orchestrated game shard `shard_service_name(SHARD_ID)` (a swarm replica's SHARD_ID is its task slot)."""
    service = environ.get("ARBEES_SERVICE", "")
    if service == GAME_SHARD and (environ.get("GAME_ASSIGNMENT") or "").lower() == "orchestrator":
        return shard_service_name(environ.get("SHARD_ID") or "1")
    return service


class DbPoller(threading.Thread):
    """Runs `poll(conn)` every `interval_s` on a thread of its own, with one connection kept open; the database
    being unusable is the process's PostgreSQL peer's outage (one line per reason, retried with its backoff)."""

    def __init__(self, database_url: str, interval_s: float, what: str) -> None:
        super().__init__(name=what, daemon=True)
        self.database_url = database_url
        self.interval_s = interval_s
        self._halt = threading.Event()
        self._link = PeerLink(postgres_peer(database_url), what)
        self._conn: psycopg.Connection | None = None
        self.polls = 0
        self.unreachable_since: float | None = None  # time.monotonic() of the first failed poll of an outage

    def poll(self, conn: psycopg.Connection) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self._halt.is_set():
            self._once()
            self._halt.wait(self.interval_s if self._link.may_try() else max(self.interval_s, self._link.wait_s()))
        if self._conn is not None:
            self._conn.close()

    def _once(self) -> None:
        if not self._link.may_try():
            return
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.database_url, retries=0)
                migrate(self._conn)
            self.poll(self._conn)
            self.polls += 1
            self.unreachable_since = None
            self._link.ok()
        except (StoreUnavailable, psycopg.Error, OSError) as e:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self.unreachable_since is None:
                self.unreachable_since = time.monotonic()
            self._link.failed(e, "retrying with backoff")

    def close(self) -> None:
        self._halt.set()
        self.join(timeout=3)


class ShardMembership(DbPoller):
    """This shard's registration and the games it holds (game -> epoch)."""

    def __init__(self, database_url: str, cfg: ShardingConfig, shard_id: str, endpoint: str, instance: str,
                 log: logging.Logger) -> None:
        super().__init__(database_url, cfg.poll_s, "shard-membership")
        self.cfg, self.shard_id, self.endpoint, self.instance, self.log = cfg, shard_id, endpoint, instance, log
        self._games: dict[str, int] = {}
        self._ok_mono = 0.0
        self._waiting_logged = False
        self.view: ShardView | None = None

    def poll(self, conn: psycopg.Connection) -> None:
        started = time.monotonic()
        view = shard_heartbeat(conn, self.shard_id, self.endpoint, self.instance, self.cfg.dead_s)
        if not view.registered:
            if not self._waiting_logged:
                self.log.warning("SHARD_ID=%s is held by another live instance (%s); holding no game until it has "
                                 "been silent for twice SHARD_DEAD_S=%gs", self.shard_id, view.holder, self.cfg.dead_s)
                self._waiting_logged = True
            self._games = {}
            return
        if self._waiting_logged or self.view is None:
            self.log.info("Shard %s registered at epoch %d (endpoint %s)", self.shard_id, view.joined_epoch,
                          self.endpoint or "none")
            self._waiting_logged = False
        if self.view is None or view.games != self.view.games:
            self._log_change(view.games)
        self.view, self._games, self._ok_mono = view, view.games, started

    def _log_change(self, games: dict[str, int]) -> None:
        before = self._games
        gained = sorted(set(games) - set(before))
        lost = sorted(set(before) - set(games))
        if gained or lost:
            self.log.info("Assignments: holding %d games (+%d %s, -%d %s)", len(games), len(gained),
                          ",".join(gained[:5]), len(lost), ",".join(lost[:5]))

    def epoch_of(self, game_id: str) -> int | None:
        """The epoch this shard holds `game_id` under, or None: not its game, or its lease is too old to trust."""
        return self.games.get(game_id)

    @property
    def games(self) -> dict[str, int]:
        """The games held under a lease this shard can trust. Through an outage of PostgreSQL it keeps the last
        assignment: the orchestrator moves games only through PostgreSQL (after an outage it gives every shard
        SHARD_DEAD_S to heartbeat again before it declares any dead), and should this shard alone have lost its
        database while its games moved, execution_service refuses its superseded epoch (`EpochFence`) and a
        signal made from the same prices by two shards has one id: a hot path that stopped on every database
        outage would be the larger loss. A lease that is old for another reason (the poller stuck) is not
        trusted after SELF_FENCE_SHARE of SHARD_DEAD_S."""
        if self.unreachable_since is not None and self.view is not None:
            return self._games
        return self._games if time.monotonic() - self._ok_mono <= self.cfg.dead_s * SELF_FENCE_SHARE else {}


#: The families a shard follows market by market (`ShardFeed`).
PRICE_FAMILIES = (Family.PRICES_KALSHI, Family.PRICES_POLY)


class ShardFeed:
    """The price topics a shard's subscriber follows: those of the markets of the games it holds now. Called from
    the shard's receive loop (a ZMQ socket belongs to one thread); recomputes only when the held games or the
    mapping changed. A game that went elsewhere leaves its markets (the caller drops their books: they would age
    unheard); a game gained is subscribed to, and the monitors replay its markets' last values at once."""

    def __init__(self, subscriber: object, log: logging.Logger) -> None:
        self._follow = getattr(subscriber, "follow_topics")
        self.log = log
        self._held: frozenset[str] | None = None
        self._games: list[GameMapping] | None = None
        self.markets: dict[str, tuple[str, str]] = {}
        self._follow(tuple(f.value for f in PRICE_FAMILIES), set())

    @staticmethod
    def supported(subscriber: object) -> bool:
        return callable(getattr(subscriber, "follow_topics", None))

    def update(self, held: dict[str, int], games: list[GameMapping]) -> list[tuple[str, str]]:
        """Follow the markets of `held` (game -> epoch) in `games`; returns the markets no longer followed."""
        key = frozenset(held)
        if key == self._held and games is self._games:  # the list is kept, so `is` cannot match a recycled id
            return []
        self._held, self._games = key, games
        markets: dict[str, tuple[str, str]] = {}
        for game in games:
            if game.game_id in key:
                for pair in game.pairs:
                    markets[price_topic(KALSHI, pair.kalshi_ticker)] = (KALSHI, pair.kalshi_ticker)
                    markets[price_topic(POLYMARKET, pair.poly_token)] = (POLYMARKET, pair.poly_token)
        gone = [m for t, m in self.markets.items() if t not in markets]
        added, removed = self._follow(tuple(f.value for f in PRICE_FAMILIES), set(markets))
        self.markets = markets
        if added or removed:
            self.log.info("Following the prices of %d markets of %d games (+%d -%d)", len(markets),
                          len({g.game_id for g in games if g.game_id in key}), added, removed)
        return gone


class ShardDirectory(DbPoller):
    """The live shards' PUB endpoints and every game's newest epoch."""

    def __init__(self, database_url: str, cfg: ShardingConfig, epochs: bool) -> None:
        super().__init__(database_url, cfg.poll_s, "shard-directory")
        self.cfg = cfg
        self.want_epochs = epochs
        self.endpoints: dict[str, str] = {}
        self.epochs: dict[str, int] = {}

    def poll(self, conn: psycopg.Connection) -> None:
        self.endpoints = live_endpoints(conn, self.cfg.dead_s)
        if self.want_epochs:
            self.epochs = game_epochs(conn)


#: How long execution_service's fence remembers a game's epoch after its last signal, once the game has left the
#: assignments (ended and dropped): older than this, any late signal of the game is past every signal age limit.
FENCE_KEEP_S = 600.0


class EpochFence:
    """execution_service's side: follows the shard directory (new shards' endpoints into the signal subscriber,
    ZMQ mode; in Redis mode every shard writes the one stream) and refuses a signal whose epoch is older than the
    newest known for its game. An accepted signal raises the game's known epoch, so once the new holder has been
    heard the old holder's signals are refused even before the directory's next read.

    Bounded: a game's epoch is kept while the game is in the assignments, and for `keep_s` after its last signal
    once it has left them (games end all day; without this every game ever fenced would stay)."""

    def __init__(self, keep_s: float = FENCE_KEEP_S) -> None:
        self.epochs: dict[str, int] = {}
        self.directory: ShardDirectory | None = None
        self.keep_s = keep_s
        self._heard: dict[str, float] = {}
        self._next = 0.0

    def start(self, directory: ShardDirectory) -> None:
        self.directory = directory
        directory.start()

    def shards(self) -> list[str]:
        return sorted(self.directory.endpoints) if self.directory is not None else []

    def follow(self, subscriber: object) -> None:
        now = time.monotonic()
        if self.directory is None or now < self._next:
            return
        self._next = now + self.directory.interval_s
        add = getattr(subscriber, "add_endpoint", None)
        if add is not None:
            for endpoint in self.directory.endpoints.values():
                add(endpoint)
        assigned = self.directory.epochs
        for game, epoch in assigned.items():
            if epoch > self.epochs.get(game, 0):
                self.epochs[game] = epoch
        self.prune(assigned, now)

    def prune(self, assigned: dict[str, int], now: float) -> None:
        """Forget the games no longer assigned whose last signal is older than `keep_s`."""
        for game in [g for g in self.epochs if g not in assigned and now - self._heard.get(g, 0.0) > self.keep_s]:
            del self.epochs[game]
            self._heard.pop(game, None)

    def superseded(self, sig: "TradingSignal") -> str:
        """Why `sig` comes from a superseded epoch, or "" (accepted, or from an unsharded stack: epoch 0)."""
        if not sig.epoch:
            return ""
        newest = self.epochs.get(sig.game_id, 0)
        if sig.epoch < newest:
            return (f"superseded: shard {sig.shard_id} held {sig.game_id} under epoch {sig.epoch}, the game's "
                    f"current epoch is {newest}")
        self.epochs[sig.game_id] = sig.epoch
        self._heard[sig.game_id] = time.monotonic()
        return ""

    def close(self) -> None:
        if self.directory is not None:
            self.directory.close()
