"""Redis streams: the transport of Redis mode, and the mirror target of ZMQ mode.

Entries are `{"topic": <topic>, "data": <JSON payload>}` in one stream per family (`prices:kalshi`, ...),
trimmed with `MAXLEN ~`. Subscribers read with blocking XREAD; execution_service reads signals through a
consumer group (XREADGROUP, then XACK once the trade is durable), so a signal survives its restart.

Redis going away, or answering with an error (`DENIED`, `NOAUTH`, `NOPERM`, `LOADING`, ...), is expected, not
fatal: every call is guarded, the peer's outage is logged once per reason and once when it ends (`telemetry.peers`),
retries back off (capped), and the publisher keeps a bounded buffer with a drop counter.
"""

from __future__ import annotations

import collections
import logging
import time

import redis
from redis.connection import parse_url

from arbees_core.telemetry.peers import Peer, PeerLink, peer
from arbees_core.topics import STREAMS, Family, stream_for_topic
from arbees_core.transport.base import Delivery, Publisher, Subscriber, TransportSettings

log = logging.getLogger("arbees.transport.redis")

#: Everything that means "Redis is not usable right now": refused or broken connections, timeouts, and error
#: replies (ResponseError: DENIED in protected mode, NOPERM, DB index out of range, READONLY, ...).
REDIS_ERRORS = (redis.RedisError, OSError)
#: Longest a write (pipelined XADD) waits for a hung Redis. Writes never block server-side, so a second is
#: plenty; a longer wait stalled zmq_listener's receive loop (its SUB queue then overflowed) while Redis hung.
WRITE_TIMEOUT_S = 1.0


def redis_location(url: str) -> str:
    """host:port/db (or socket path/db) of a Redis URL, never its password."""
    params = parse_url(url)
    db = params.get("db", 0)
    if "path" in params:
        return f"{params['path']}/{db}"
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 6379}/{db}"


def redis_peer(url: str) -> Peer:
    """The process's one `Peer` for the Redis of `url` (see telemetry/peers.py)."""
    return peer("Redis", redis_location(url))


def make_client(url: str, block_ms: int = 100, socket_timeout_s: float | None = None) -> redis.Redis:
    """A client whose socket timeout outlasts a blocking read, so a hung server is detected, not waited on."""
    return redis.Redis.from_url(
        url, decode_responses=False, socket_timeout=socket_timeout_s or block_ms / 1000 + 5.0,
        socket_connect_timeout=2.0, health_check_interval=0,
    )


def connect_redis(url: str, link: PeerLink, what: str = "Connected to Redis",
                  block_ms: int = 100) -> redis.Redis | None:
    """One attempt: connect and ask INFO; log `<what> at host:port/db (Redis x.y.z)` and return the client. None when
    Redis is not usable: the reason goes to `link` (one line per reason), and the caller retries at its pace."""
    client = make_client(url, block_ms)
    try:
        version = client.info("server").get("redis_version", "?")
    except REDIS_ERRORS as e:
        client.close()
        link.failed(e)
        return None
    link.ok()
    log.info("%s at %s (Redis %s)", what, redis_location(url), version)
    return client


class RedisStreamPublisher(Publisher):
    """XADD frames to their family's stream, pipelined, with a bounded buffer while Redis is away."""

    def __init__(self, settings: TransportSettings, buffer_max: int = 100_000, client: redis.Redis | None = None,
                 what: str = "publishing") -> None:
        self._client = client or make_client(settings.redis_url, settings.block_ms, WRITE_TIMEOUT_S)
        self._maxlen = settings.stream_maxlen
        self._buffer: collections.deque[tuple[str, bytes]] = collections.deque()
        self._buffer_max = buffer_max
        self.link = PeerLink(redis_peer(settings.redis_url), what)
        self.dropped = 0
        self.written = 0
        self.unknown_topics = 0

    @property
    def backlog(self) -> int:
        return len(self._buffer)

    @property
    def available(self) -> bool:
        return self.link.down_since is None

    def send(self, topic: str, payload: bytes) -> None:
        self.send_many([(topic, payload)])

    def send_many(self, frames: list[tuple[str, bytes]]) -> None:
        self._buffer.extend(frames)
        overflow = len(self._buffer) - self._buffer_max
        if overflow > 0:  # oldest first: under overload the newest prices matter most
            for _ in range(overflow):
                self._buffer.popleft()
            self.dropped += overflow
        self.flush()

    def flush(self) -> bool:
        """Write the buffer; False when Redis is still not usable (frames stay buffered). With nothing buffered
        during an outage it asks Redis (PING) when a retry is due, so the outage ends without waiting for traffic."""
        if not self.link.may_try():
            return not self._buffer
        if not self._buffer:
            return self.link.down_since is None or self._probe()
        batch = list(self._buffer)
        pipe = self._client.pipeline(transaction=False)
        for topic, payload in batch:
            stream = stream_for_topic(topic)
            if stream is None:
                self.unknown_topics += 1
                continue
            pipe.xadd(stream, {"topic": topic, "data": payload}, maxlen=self._maxlen, approximate=True)
        try:
            pipe.execute()
        except REDIS_ERRORS as e:
            self.link.failed(e)
            return False
        for _ in range(len(batch)):
            self._buffer.popleft()
        self.written += len(batch)
        self.link.ok()
        return True

    def _probe(self) -> bool:
        try:
            self._client.ping()
        except REDIS_ERRORS as e:
            self.link.failed(e)
            return False
        self.link.ok()
        return True

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._client.close()
            self.link.close()


class RedisStreamSubscriber(Subscriber):
    """Blocking XREAD over several streams, or XREADGROUP through a consumer group.

    last_value: at (re)start, deliver the newest entry of every topic found in the last `lvc_scan` entries
    (marked `replay`), then continue after the newest entry: a late joiner sees every market's current book
    at once. group: read through this consumer group (pending entries first after a restart); acked via ack().
    """

    def __init__(self, settings: TransportSettings, streams: list[str], *, group: str | None = None,
                 consumer: str = "", last_value: bool = False, lvc_scan: int = 5000,
                 client: redis.Redis | None = None) -> None:
        self._url = settings.redis_url
        self._client = client or make_client(settings.redis_url, settings.block_ms)
        self._streams = list(streams)
        self._group, self._consumer = group, consumer or "consumer-1"
        self._last_value, self._lvc_scan = last_value, lvc_scan
        self._ids: dict[str, bytes] | None = None
        self._pending_done = False
        self.link = PeerLink(redis_peer(settings.redis_url), f"reading {', '.join(streams)}")
        self.reconnects = 0

    def receive(self, timeout_ms: int) -> list[Delivery]:
        if not self.link.may_try():
            time.sleep(min(timeout_ms / 1000, self.link.wait_s()))
            return []
        try:
            out = self._start() if self._ids is None else []
            out += self._read(timeout_ms if not out else 0)
        except REDIS_ERRORS as e:
            if self._group and str(e).startswith("NOGROUP"):  # a Redis restarted empty: create the group again
                self._ids, self._pending_done = None, False
            self.link.failed(e)
            return []
        if self.link.ok() is not None:
            self.reconnects += 1
        return out

    def _start(self) -> list[Delivery]:
        ids: dict[str, bytes] = {}
        replay: list[Delivery] = []
        for stream in self._streams:
            if self._group:
                self._ensure_group(stream)
                ids[stream] = b"0"  # pending entries of this consumer first
                continue
            newest = self._client.xrevrange(stream, count=1)
            ids[stream] = newest[0][0] if newest else b"0-0"
            if self._last_value and newest:
                replay += self._last_values(stream)
        self._ids = ids
        return replay

    def _ensure_group(self, stream: str) -> None:
        try:
            self._client.xgroup_create(stream, self._group, id="$", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def _last_values(self, stream: str) -> list[Delivery]:
        seen: dict[str, Delivery] = {}
        now = time.time_ns()
        for entry_id, fields in self._client.xrevrange(stream, count=self._lvc_scan):
            topic = fields.get(b"topic", b"").decode(errors="replace")
            if topic and topic not in seen:
                seen[topic] = Delivery(topic, fields.get(b"data", b""), now, token=(stream, entry_id), replay=True)
        return list(reversed(list(seen.values())))

    def _read(self, timeout_ms: int) -> list[Delivery]:
        assert self._ids is not None
        block = timeout_ms if timeout_ms > 0 else None
        if self._group:
            if not self._pending_done:
                result = self._client.xreadgroup(self._group, self._consumer, self._ids, count=500)
                if not any(entries for _, entries in result):
                    self._pending_done = True
                    self._ids = {s: b">" for s in self._streams}
                    result = self._client.xreadgroup(self._group, self._consumer, self._ids, count=500, block=block)
            else:
                result = self._client.xreadgroup(self._group, self._consumer, self._ids, count=500, block=block)
        else:
            result = self._client.xread(self._ids, count=500, block=block)
        return self._deliveries(result or [])

    def _deliveries(self, result: list) -> list[Delivery]:
        out: list[Delivery] = []
        now = time.time_ns()
        for stream, entries in result:
            stream_s = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                if not self._group or not self._pending_done:
                    self._ids[stream_s] = entry_id  # type: ignore[index]
                if fields is None:  # pending entry trimmed away by MAXLEN
                    continue
                topic = fields.get(b"topic", b"").decode(errors="replace")
                if not topic:
                    out.append(Delivery("", b"", now, token=(stream_s, entry_id), error="missing_topic_field"))
                    continue
                out.append(Delivery(topic, fields.get(b"data", b""), now, token=(stream_s, entry_id)))
        return out

    def ack(self, deliveries: list[Delivery]) -> None:
        if not self._group or not deliveries:
            return
        by_stream: dict[str, list[bytes]] = {}
        for d in deliveries:
            if d.token is not None:
                stream, entry_id = d.token  # type: ignore[misc]
                by_stream.setdefault(stream, []).append(entry_id)
        try:
            for stream, ids in by_stream.items():
                self._client.xack(stream, self._group, *ids)
        except REDIS_ERRORS as e:  # unacked entries are redelivered after restart; idempotency absorbs them
            self.link.failed(e)

    def close(self) -> None:
        self._client.close()
        self.link.close()


def streams_for(families: list[Family]) -> list[str]:
    """Stream names of families, in order."""
    return [STREAMS[f] for f in families]
