"""Redis streams: the transport of Redis mode, and the mirror target of ZMQ mode.

Entries are `{"topic": <topic>, "data": <JSON payload>}` in one stream per family (`prices:kalshi`, ...),
trimmed with `MAXLEN ~`. Subscribers read with blocking XREAD; execution_service reads signals through a
consumer group (XREADGROUP, then XACK once the trade is durable), so a signal survives its restart.

Redis going away is expected, not fatal: every call is guarded, the outage is logged once when it starts and
once when it ends, retries back off (capped), and the publisher keeps a bounded buffer with a drop counter.
"""

from __future__ import annotations

import collections
import logging
import time
from urllib.parse import urlsplit

import redis

from arbees_core.topics import STREAMS, Family, stream_for_topic
from arbees_core.transport.base import Delivery, Publisher, Subscriber, TransportSettings

log = logging.getLogger("arbees.transport.redis")

_BACKOFF_START_S = 0.2
_BACKOFF_MAX_S = 5.0
_REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
#: Longest a write (pipelined XADD) waits for a hung Redis. Writes never block server-side, so a second is
#: plenty; a longer wait stalled zmq_listener's receive loop (its SUB queue then overflowed) while Redis hung.
WRITE_TIMEOUT_S = 1.0


def redis_location(url: str) -> str:
    """host:port (or socket path) of a Redis URL, never its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"


def make_client(url: str, block_ms: int = 100, socket_timeout_s: float | None = None) -> redis.Redis:
    """A client whose socket timeout outlasts a blocking read, so a hung server is detected, not waited on."""
    return redis.Redis.from_url(
        url, decode_responses=False, socket_timeout=socket_timeout_s or block_ms / 1000 + 5.0,
        socket_connect_timeout=2.0, health_check_interval=0,
    )


def connect_redis(url: str, what: str = "Connected to Redis", retries: int = 0, block_ms: int = 100) -> redis.Redis:
    """Connect and PING; log one line `<what> at host:port (Redis x.y.z)`. Raises redis.ConnectionError
    after `retries` extra attempts (with backoff), the message naming the address."""
    delay = _BACKOFF_START_S
    for attempt in range(retries + 1):
        client = make_client(url, block_ms)
        try:
            version = client.info("server").get("redis_version", "?")
            log.info("%s at %s (Redis %s)", what, redis_location(url), version)
            return client
        except _REDIS_ERRORS as e:
            client.close()
            if attempt == retries:
                raise redis.ConnectionError(f"Cannot reach Redis at {redis_location(url)}: {e}") from None
            log.warning("Redis at %s not reachable (%s); %d retries left", redis_location(url), type(e).__name__,
                        retries - attempt)
            time.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX_S)
    raise AssertionError("unreachable")


class _Outage:
    """Logs a Redis outage once when it starts and once when it ends; paces retries with capped backoff."""

    def __init__(self, url: str, what: str) -> None:
        self.url, self.what = url, what
        self.down_since: float | None = None
        self.next_try = 0.0
        self.delay = _BACKOFF_START_S
        self.errors = 0

    def may_try(self) -> bool:
        return self.down_since is None or time.monotonic() >= self.next_try

    def failed(self, e: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            log.error("Redis at %s unavailable (%s: %s); %s will retry with backoff",
                      redis_location(self.url), type(e).__name__, e, self.what)
        self.next_try = now + self.delay
        self.delay = min(self.delay * 2, _BACKOFF_MAX_S)

    def ok(self) -> float | None:
        """Mark success; returns the outage duration in seconds when one just ended."""
        if self.down_since is None:
            return None
        took = time.monotonic() - self.down_since
        self.down_since, self.delay = None, _BACKOFF_START_S
        log.info("Redis at %s back after %.1fs; %s resumed", redis_location(self.url), took, self.what)
        return took


class RedisStreamPublisher(Publisher):
    """XADD frames to their family's stream, pipelined, with a bounded buffer while Redis is away."""

    def __init__(self, settings: TransportSettings, buffer_max: int = 100_000, client: redis.Redis | None = None,
                 what: str = "publishing") -> None:
        self._client = client or make_client(settings.redis_url, settings.block_ms, WRITE_TIMEOUT_S)
        self._maxlen = settings.stream_maxlen
        self._buffer: collections.deque[tuple[str, bytes]] = collections.deque()
        self._buffer_max = buffer_max
        self._outage = _Outage(settings.redis_url, what)
        self.dropped = 0
        self.written = 0
        self.unknown_topics = 0

    @property
    def backlog(self) -> int:
        return len(self._buffer)

    @property
    def available(self) -> bool:
        return self._outage.down_since is None

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
        """Write the buffer; False when Redis is still away (frames stay buffered)."""
        if not self._buffer or not self._outage.may_try():
            return not self._buffer
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
        except _REDIS_ERRORS as e:
            self._outage.failed(e)
            return False
        for _ in range(len(batch)):
            self._buffer.popleft()
        self.written += len(batch)
        self._outage.ok()
        return True

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._client.close()


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
        self._outage = _Outage(settings.redis_url, f"reading {', '.join(streams)}")
        self.reconnects = 0

    def receive(self, timeout_ms: int) -> list[Delivery]:
        if not self._outage.may_try():
            time.sleep(min(timeout_ms / 1000, max(0.0, self._outage.next_try - time.monotonic())))
            return []
        try:
            out = self._start() if self._ids is None else []
            out += self._read(timeout_ms if not out else 0)
        except _REDIS_ERRORS as e:
            self._outage.failed(e)
            return []
        if self._outage.ok() is not None:
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
        except _REDIS_ERRORS as e:  # unacked entries are redelivered after restart; idempotency absorbs them
            self._outage.failed(e)

    def close(self) -> None:
        self._client.close()


def streams_for(families: list[Family]) -> list[str]:
    """Stream names of families, in order."""
    return [STREAMS[f] for f in families]
