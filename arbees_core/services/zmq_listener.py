"""zmq_listener: mirrors the ZMQ hot path into Redis streams for everything off the hot path.

SUB to every publisher (monitors, game_shard, execution_service, position_tracker) -> pipelined XADD into
`prices:kalshi`, `prices:poly`, `signals:trades`, `trades:results`, `heartbeats`, `positions:updates`,
`positions:exits` (MAXLEN ~). It only consumes ZMQ and only writes
Redis, so it can never re-publish into a channel it consumes (the original doubled every signal that way).
While Redis is away or refuses it (`DENIED`, `NOAUTH`, ...: one line per reason, never an exit) it buffers up to
`MIRROR_BUFFER_MAX` frames, counts what it drops, and catches up once Redis is usable.
In Redis mode the services write the streams themselves; the listener idles (alive, reporting health) instead of
exiting, which under `restart: unless-stopped` became a restart loop in the original.
Run: `python -m arbees_core.services.zmq_listener`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.messages import encode_json
from arbees_core.services.runner import Service
from arbees_core.services.runner import main as run_main
from arbees_core.services.shards import EpochFence, ShardDirectory, ShardingConfig
from arbees_core.telemetry.logs import RateLimiter
from arbees_core.topics import (
    ZMQ_LISTENER,
    Family,
    stream_for_topic,
)
from arbees_core.transport import Inbox, Received, TransportSettings
from arbees_core.transport.redis import RedisStreamPublisher, connect_redis
from arbees_core.transport.zmq import ZmqSubscriber

#: One endpoint setting per publisher (the original's names).
ENDPOINT_SETTINGS = (S.ZMQ_KALSHI_ENDPOINT, S.ZMQ_POLYMARKET_ENDPOINT, S.ZMQ_GAME_SHARD_ENDPOINT,
                     S.ZMQ_EXECUTION_ENDPOINT)


@dataclass(frozen=True)
class ListenerConfig:
    """endpoints: ZMQ_LISTENER_ENDPOINTS (comma list) or the four ZMQ_*_ENDPOINT variables; buffer_max:
    MIRROR_BUFFER_MAX frames kept while Redis is away; log_per_s: MIRROR_LOG_PER_SEC `Mirrored` lines per stream;
    flush_ms / batch_max: MIRROR_FLUSH_MS (5) / MIRROR_BATCH_MAX (512): frames are written in one pipelined XADD batch
    when the oldest has waited flush_ms or batch_max are pending (one Redis round trip per batch, not per frame);
    the listener sleeps out that window and then reads what queued, instead of waking up for every frame;
    nice: MIRROR_NICE (10), the listener's CPU niceness: it is off the hot path, and on a small machine the
    scheduler should give the monitors, game_shard and execution_service the cores first; database_url /
    sharding: DATABASE_URL and GAME_ASSIGNMENT=orchestrator, to follow the game shards that join."""

    endpoints: list[str]
    buffer_max: int
    log_per_s: float
    flush_ms: float = 5.0
    batch_max: int = 512
    nice: int = 10
    database_url: str = ""
    sharding: ShardingConfig = ShardingConfig()

    @classmethod
    def from_env(cls, env: Env) -> "ListenerConfig":
        endpoints = list(env.get(S.ZMQ_LISTENER_ENDPOINTS)) or [
            env.get(s) for s in (*ENDPOINT_SETTINGS, S.ZMQ_POSITION_TRACKER_ENDPOINT)]
        return cls(endpoints=endpoints, buffer_max=env.get(S.MIRROR_BUFFER_MAX),
                   log_per_s=env.get(S.MIRROR_LOG_PER_SEC), flush_ms=env.get(S.MIRROR_FLUSH_MS),
                   batch_max=env.get(S.MIRROR_BATCH_MAX), nice=env.get(S.MIRROR_NICE),
                   database_url=env.get(S.DATABASE_URL), sharding=ShardingConfig.from_env(env))


class ZmqListener(Service):
    name = ZMQ_LISTENER

    def __init__(self, settings: TransportSettings, cfg: ListenerConfig, heartbeat_interval_s: float = 1.0) -> None:
        super().__init__(settings, heartbeat_interval_s)
        self.cfg = cfg
        self.mirror: RedisStreamPublisher | None = None
        self._limiter = RateLimiter(cfg.log_per_s)
        self._since_line: dict[str, int] = {}

    @classmethod
    def from_env(cls, env: Env) -> "ZmqListener":
        return cls(TransportSettings.from_env(env), ListenerConfig.from_env(env),
                   env.get(S.HEARTBEAT_INTERVAL_SECS))

    def extra_snapshot(self) -> dict[str, Any]:
        if self.mirror is None:
            return {"mirroring": False}
        return {"mirroring": True, "backlog": self.mirror.backlog, "dropped": self.mirror.dropped,
                "written": self.mirror.written, "redis_available": self.mirror.available, "endpoints": self.cfg.endpoints}

    def run(self, stop: threading.Event) -> None:
        if not self.settings.zmq_enabled:
            self.log.info("ZMQ_ENABLED=false (Redis mode): the services write the Redis streams themselves; "
                          "zmq_listener has nothing to mirror and stays idle")
            while not stop.wait(0.2):
                self.tick()
            return
        self.announce_mode(stop)  # ZMQ mode: the line only
        self.mirror = RedisStreamPublisher(self.settings, self.cfg.buffer_max, what="mirroring")
        client = connect_redis(self.settings.redis_url, self.mirror.link)  # unusable: one line, the mirror buffers
        if client is not None:
            client.close()
        self._lower_priority()
        families = list(Family)
        sub = ZmqSubscriber(self.settings, self.cfg.endpoints, [f.value for f in families])
        inbox = Inbox(sub, self.metrics, self.name)
        shards = EpochFence()  # only its directory: the shards that join, whose signals are mirrored too
        if self.cfg.sharding.orchestrated and self.cfg.database_url:
            shards.start(ShardDirectory(self.cfg.database_url, self.cfg.sharding, epochs=False))
        pending: list[Received] = []
        oldest = 0.0
        flush_s = self.cfg.flush_ms / 1000.0
        try:
            while not stop.is_set():
                items = inbox.receive(0 if pending else self.settings.block_ms)
                if items:
                    if not pending:
                        oldest = time.monotonic()
                    pending += items
                if pending and (len(pending) >= self.cfg.batch_max or time.monotonic() - oldest >= flush_s):
                    self.mirror_items(pending)
                    pending = []
                elif pending:  # sleep out the batch window instead of waking up for each frame
                    stop.wait(max(0.0, oldest + flush_s - time.monotonic()))
                elif self.mirror.backlog or not self.mirror.available:
                    self.mirror.flush()  # a backlog, or an outage to end (probed at the backoff's pace)
                self.tick()
                shards.follow(sub)
            if pending:
                self.mirror_items(pending)
        finally:
            shards.close()
            sub.close()
            self.mirror.close()

    def _lower_priority(self) -> None:
        if self.cfg.nice > 0:
            try:
                os.nice(self.cfg.nice)
                self.log.info("Mirroring at CPU niceness +%d (MIRROR_NICE): the hot path gets the cores first",
                              self.cfg.nice)
            except OSError as e:
                self.log.warning("Cannot lower the listener's CPU priority: %s", e)

    def mirror_items(self, items: list[Received]) -> None:
        assert self.mirror is not None
        frames = [(r.topic, self._json_payload(r)) for r in items]
        dropped_before = self.mirror.dropped
        self.mirror.send_many(frames)
        self.metrics.inc("mirror_dropped", self.mirror.dropped - dropped_before)
        self.metrics.gauges["backlog"] = self.mirror.backlog
        self.metrics.inc("mirrored", len(frames))
        now_ns = time.time_ns()
        for r in items:
            self.metrics.latency.record_ns("mirror", now_ns - r.msg.ts_pub_ns)
        self._log_mirrored(items)

    def _json_payload(self, r: Received) -> bytes:
        payload = r.delivery.payload
        return payload if payload[:1] == b"{" else encode_json(r.msg)  # streams hold JSON whatever the ZMQ wire

    def _log_mirrored(self, items: list[Received]) -> None:
        last_by_stream: dict[str, str] = {}
        for r in items:
            stream = stream_for_topic(r.topic) or "?"
            self._since_line[stream] = self._since_line.get(stream, 0) + 1
            last_by_stream[stream] = r.topic
        for stream, topic in last_by_stream.items():
            if self._limiter.allow(stream):
                count = self._since_line.pop(stream, 0)
                extra = f" (+{count - 1} more since last line)" if count > 1 else ""
                self.log.info("Mirrored %s to %s%s", topic, stream, extra)


def main() -> int:
    return run_main(ZmqListener)


if __name__ == "__main__":
    raise SystemExit(main())
