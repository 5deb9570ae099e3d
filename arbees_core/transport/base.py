"""One publisher/subscriber interface over two transports (ZMQ PUB/SUB and Redis streams).

Transports move bytes: `(topic, payload)` frames. Sequence numbers, schema checks and last-value replay live in
`outbox.py` / `inbox.py`, once for both transports, so ZMQ mode and Redis mode behave the same to a service.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Final

from arbees_core import settings as S
from arbees_core.config import Env

# Socket options, named in one place (pyzmq guide habits: linger set, HWM explicit, heartbeats on).
ZMQ_LINGER_MS: Final = 0
ZMQ_RECONNECT_IVL_MS: Final = 100
ZMQ_RECONNECT_IVL_MAX_MS: Final = 2000
ZMQ_HEARTBEAT_IVL_MS: Final = 1000
ZMQ_HEARTBEAT_TIMEOUT_MS: Final = 3000
#: How long a subscriber's connect attempt may go unanswered before libzmq gives it up and tries again (resolving
#: the name afresh). Without it an attempt whose SYN is dropped (a publisher's container restarting: its address
#: answers nothing for a moment) is left to the kernel's SYN backoff, whose gaps double, and can sit there long
#: after the publisher is back.
ZMQ_CONNECT_TIMEOUT_MS: Final = 1000
#: Most frames drained from a socket in one receive call, so one busy publisher cannot starve the loop.
MAX_BATCH: Final = 2000


@dataclass(frozen=True)
class TransportSettings:
    """What every service needs to reach its peers.

    zmq_enabled: ZMQ_ENABLED (default false: Redis mode, the plan's default and rollback target).
    redis_url: REDIS_URL. wire: ARBEES_WIRE (json | msgpack; ZMQ payloads only, streams always hold JSON).
    bind_host: ZMQ_BIND_HOST, where publishers bind (127.0.0.1 locally; 0.0.0.0 inside compose's network).
    sndhwm / rcvhwm: ZMQ_SNDHWM / ZMQ_RCVHWM in messages per peer (libzmq default 1000; loss past it is
    counted through sequence gaps). stream_maxlen: REDIS_STREAM_MAXLEN, approximate trim of every stream.
    block_ms: longest a receive call blocks, so loops can run timers.
    send_yield: ZMQ_SEND_YIELD (default true): a ZMQ publisher gives up the CPU after handing frames to libzmq.
    The frames leave through libzmq's I/O thread, which the send wakes up; when the scheduler puts that thread on
    the sender's core, it waited until the sender had finished its next piece of work (a monitor parsing its next
    venue read: a quarter of the monitors' I/O-thread delays over 50 us were their own main thread). A yield lets
    it send first; it costs one system call when nothing else is waiting. Price hop p50 -6 to -11 %, same-run A/B.
    spin_us: ZMQ_SPIN_US (default 0, off): game_shard's price subscriber busy-polls this long after each price
    before it blocks again (`zmq.ZmqSubscriber`); opt-in, because a game_shard in traffic then shows ~80 % CPU.
    """

    zmq_enabled: bool = S.ZMQ_ENABLED.default
    redis_url: str = S.REDIS_URL.default
    wire: str = S.ARBEES_WIRE.default
    bind_host: str = S.ZMQ_BIND_HOST.default
    sndhwm: int = S.ZMQ_SNDHWM.default
    rcvhwm: int = S.ZMQ_RCVHWM.default
    stream_maxlen: int = S.REDIS_STREAM_MAXLEN.default
    block_ms: int = S.TRANSPORT_BLOCK_MS.default
    send_yield: bool = S.ZMQ_SEND_YIELD.default
    spin_us: int = S.ZMQ_SPIN_US.default

    @classmethod
    def from_env(cls, env: Env | None = None) -> "TransportSettings":
        env = env or Env()
        return cls(
            zmq_enabled=env.get(S.ZMQ_ENABLED),
            redis_url=env.get(S.REDIS_URL),
            wire=env.get(S.ARBEES_WIRE),
            bind_host=env.get(S.ZMQ_BIND_HOST),
            sndhwm=env.get(S.ZMQ_SNDHWM),
            rcvhwm=env.get(S.ZMQ_RCVHWM),
            stream_maxlen=env.get(S.REDIS_STREAM_MAXLEN),
            block_ms=env.get(S.TRANSPORT_BLOCK_MS),
            send_yield=env.get(S.ZMQ_SEND_YIELD),
            spin_us=env.get(S.ZMQ_SPIN_US),
        )

    @property
    def mode(self) -> str:
        """`zmq` or `redis`, as stored in `paper_trades.transport`."""
        return "zmq" if self.zmq_enabled else "redis"


@dataclass(slots=True)
class Delivery:
    """One frame as received. `error` is set (and payload empty) for frames the transport could not split;
    `replay` marks last-value entries read at (re)start; `token` is what `ack()` needs (Redis entry id)."""

    topic: str
    payload: bytes
    recv_ns: int
    token: object = None
    replay: bool = False
    error: str = ""


class Publisher(abc.ABC):
    """Sends `(topic, payload)` frames."""

    @abc.abstractmethod
    def send(self, topic: str, payload: bytes) -> None: ...

    def send_many(self, frames: list[tuple[str, bytes]]) -> None:
        for topic, payload in frames:
            self.send(topic, payload)

    def new_subscriptions(self) -> list[str]:
        """Topic prefixes that a subscriber just (re)subscribed to (ZMQ XPUB); [] where not applicable."""
        return []

    @abc.abstractmethod
    def close(self) -> None: ...


class Subscriber(abc.ABC):
    """Receives frames, blocking at most `timeout_ms`."""

    @abc.abstractmethod
    def receive(self, timeout_ms: int) -> list[Delivery]: ...

    def ack(self, deliveries: list[Delivery]) -> None:
        """Confirm durable handling (Redis consumer groups); a no-op for ZMQ."""

    @abc.abstractmethod
    def close(self) -> None: ...


class TransportError(RuntimeError):
    """A transport could not be set up; the message says what to change."""
