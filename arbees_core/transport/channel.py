"""The service side of a transport: `Outbox` stamps and sends messages, `Inbox` decodes and checks them.

Outbox: assigns `src`, a strictly increasing `seq` per topic family and `ts_pub_ns`; keeps the last price per
market and replays it (flagged `snapshot`, with fresh sequence numbers) when a subscriber joins, so a late or
reconnecting subscriber has every book at once instead of waiting for the next change. It keeps the latest
`RESOLUTIONS_KEPT` market resolutions the same way, so a restarted execution_service settles the positions of a
market that resolved while it was down.

Inbox: decodes every frame against the contract, counts rejects per reason with one rate-limited log line, and
counts sequence gaps per publisher and family as lost messages (the ZMQ guide's answer to slow joiners and HWM
drops: make loss visible, never silent). A gap check restarts when a publisher restarts (its `src` changes).
A restarted subscriber can be seeded with the last sequence it handled before (`seed_sequence`), so messages
published while it was down are counted as lost too (execution_service seeds signals from its spool).

A rejected frame is acknowledged (Redis consumer groups): it can never decode, and leaving it pending would make
every restart read and reject it again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import msgspec

from arbees_core.messages import DecodeError, MarketResolution, Message, PriceUpdate, decode, encode
from arbees_core.telemetry.logs import RateLimiter
from arbees_core.telemetry.metrics import Metrics
from arbees_core.topics import LAST_VALUE_FAMILIES, Family, family_of
from arbees_core.transport.base import Delivery, Publisher, Subscriber

log = logging.getLogger("arbees.transport")

#: Market resolutions an Outbox keeps for late joiners (the newest; a day of US sports is a few hundred markets).
RESOLUTIONS_KEPT = 4096


class Outbox:
    """Publishes contract messages through one transport publisher."""

    def __init__(self, publisher: Publisher, src: str, wire: str, metrics: Metrics | None = None) -> None:
        self.publisher = publisher
        self.src = src
        self.wire = wire
        self.metrics = metrics
        self._seq: dict[Family, int] = {}
        self._topic_seq: dict[str, int] = {}
        self._last_value: dict[str, PriceUpdate | MarketResolution] = {}
        self._resolutions = 0

    def _stamp(self, topic: str, msg: Message) -> bytes:
        fam = family_of(topic)
        if fam is None:
            raise ValueError(f"topic {topic!r} is outside the contract")
        seq = self._seq.get(fam, 0) + 1
        self._seq[fam] = seq
        msg.src, msg.seq, msg.ts_pub_ns = self.src, seq, time.time_ns()
        if isinstance(msg, PriceUpdate):  # one counter per market priced and not yet retired (resolved)
            msg.topic_seq = self._topic_seq[topic] = self._topic_seq.get(topic, 0) + 1
        if fam in LAST_VALUE_FAMILIES and isinstance(msg, (PriceUpdate, MarketResolution)) and not msg.snapshot:
            self._remember(topic, msg)
        return encode(msg, self.wire)

    def _remember(self, topic: str, msg: PriceUpdate | MarketResolution) -> None:
        """The last value of `topic`; resolutions are bounded to the newest `RESOLUTIONS_KEPT` (a market that
        resolved is never priced again, so without a bound a long run would keep every one of them)."""
        if isinstance(msg, MarketResolution):
            if topic not in self._last_value:
                self._resolutions += 1
            if self._resolutions > RESOLUTIONS_KEPT:
                oldest = next(t for t, m in self._last_value.items() if isinstance(m, MarketResolution))
                del self._last_value[oldest]
                self._resolutions -= 1
        self._last_value[topic] = msg

    def publish(self, topic: str, msg: Message) -> None:
        """Stamp and send one message."""
        self.publisher.send(topic, self._stamp(topic, msg))
        if self.metrics is not None:
            self.metrics.inc("tx")

    def publish_many(self, items: list[tuple[str, Message]]) -> None:
        """Stamp and send several messages in one transport call (one pipeline in Redis mode)."""
        if not items:
            return
        self.publisher.send_many([(topic, self._stamp(topic, msg)) for topic, msg in items])
        if self.metrics is not None:
            self.metrics.inc("tx", len(items))

    def forget(self, topic: str) -> None:
        """Drop a market's last value (its book is no longer valid, e.g. after a venue sequence gap)."""
        if isinstance(self._last_value.pop(topic, None), MarketResolution):
            self._resolutions -= 1

    def retire(self, topic: str) -> None:
        """A market that is never priced again (it resolved): its last value and its `topic_seq` counter go, so
        what this publisher keeps per market is bounded by the markets open now, not by every one it ever priced."""
        self.forget(topic)
        self._topic_seq.pop(topic, None)

    def serve_late_joiners(self) -> int:
        """Replay last values to subscribers that just subscribed; returns how many messages were replayed."""
        prefixes = self.publisher.new_subscriptions()
        if not prefixes or not self._last_value:
            return 0
        replay = [
            (topic, msgspec.structs.replace(msg, snapshot=True))
            for topic, msg in self._last_value.items()
            if any(topic.startswith(p) for p in prefixes)
        ]
        self.publish_many(replay)
        if self.metrics is not None:
            self.metrics.inc("lvc_replayed", len(replay))
        if replay:
            log.info("Replayed %d last values to a new subscriber (%s)", len(replay), ", ".join(sorted(set(prefixes))))
        return len(replay)


@dataclass(slots=True)
class Received:
    """A decoded, validated message and how it arrived."""

    topic: str
    msg: Message
    recv_ns: int
    replay: bool
    delivery: Delivery


class Inbox:
    """Decodes deliveries from one subscriber; counts rejects, gaps and duplicates in `metrics`."""

    def __init__(self, subscriber: Subscriber, metrics: Metrics, name: str = "inbox", log_per_s: float = 1.0,
                 head_loss: tuple[Family, ...] = (), partial: tuple[Family, ...] = ()) -> None:
        """head_loss: families where the first message of a publisher not seen (nor seeded) before counts the
        messages before it as lost (seq 1 is its first): for signals, which no one may miss unnoticed.
        partial: families this subscriber receives only some topics of (`ZmqSubscriber.follow_topics`): their
        `seq` counts per publisher and family, so a gap there is the topics not followed; loss is counted from
        the price updates' `topic_seq` instead, per topic (`forget` a topic no longer followed)."""
        self.subscriber = subscriber
        self.metrics = metrics
        self.name = name
        self.head_loss = head_loss
        self.partial = partial
        self._topic_seq: dict[str, tuple[str, int]] = {}
        self._last_seq: dict[tuple[str, Family], int] = {}
        self._limiter = RateLimiter(log_per_s)

    def receive(self, timeout_ms: int) -> list[Received]:
        return self.accept(self.subscriber.receive(timeout_ms))

    def accept(self, deliveries: list[Delivery]) -> list[Received]:
        """Decode, check and count deliveries taken from the subscriber (`receive` does both steps at once)."""
        out: list[Received] = []
        for d in deliveries:
            received = self._accept(d)
            if received is not None:
                out.append(received)
        return out

    def ack(self, items: list[Received] | list[Delivery]) -> None:
        self.subscriber.ack([i.delivery if isinstance(i, Received) else i for i in items])

    def seed_sequence(self, src: str, family: Family, seq: int) -> None:
        """The last `seq` of `src`/`family` handled before a restart: a later gap from it counts as lost."""
        key = (src, family)
        self._last_seq[key] = max(seq, self._last_seq.get(key, 0))

    def _accept(self, d: Delivery) -> Received | None:
        if d.error:  # the transport could not split the frame: the reason is the error's kind (frame_count, ...)
            self._reject(d, d.error.split(":", 1)[0], d.error)
            return None
        try:
            msg = decode(d.topic, d.payload)
        except DecodeError as e:
            self._reject(d, e.reason, e.detail)
            return None
        self.metrics.inc("rx")
        if not d.replay:
            self._check_sequence(d.topic, msg)
        return Received(d.topic, msg, d.recv_ns, d.replay, d)

    def _reject(self, d: Delivery, reason: str, detail: str) -> None:
        self.metrics.inc(f"rx_rejected.{reason}")
        self.metrics.inc("rx_rejected")
        if self._limiter.allow(reason):
            held = self._limiter.take_suppressed(reason)
            more = f" (+{held} more since last line)" if held else ""
            log.error("Rejected frame on %r at %s: %s: %s%s", d.topic[:80], self.name, reason, detail[:200], more)
        if d.token is not None:
            self.subscriber.ack([d])

    def forget(self, topics: list[str]) -> None:
        """No longer followed: the next message of each starts its gap check afresh (what was published
        meanwhile was not for this subscriber)."""
        for topic in topics:
            self._topic_seq.pop(topic, None)

    def _check_sequence(self, topic: str, msg: Message) -> None:
        fam = family_of(topic)
        if fam in self.partial:
            self._check_topic_sequence(topic, msg)
            return
        key = (msg.src, fam)  # type: ignore[arg-type]
        last = self._last_seq.get(key)
        self._last_seq[key] = max(msg.seq, last or 0)
        if last is None:
            if fam not in self.head_loss or msg.seq <= 1:
                return
            last = 0
        if msg.seq > last + 1:
            self._count_gap(msg.src, fam.value if fam else "?", msg.seq - last - 1, msg.seq, last)
        elif msg.seq <= last:
            self.metrics.inc("duplicates")

    def _check_topic_sequence(self, topic: str, msg: Message) -> None:
        """Gaps per topic from `topic_seq` (a partial subscriber's price families); restarts when `src` changes."""
        seq = getattr(msg, "topic_seq", 0)
        if not seq:
            return
        src, last = self._topic_seq.get(topic, ("", 0))
        self._topic_seq[topic] = (msg.src, max(seq, last) if src == msg.src else seq)
        if src != msg.src:
            return
        if seq > last + 1:
            self._count_gap(msg.src, topic, seq - last - 1, seq, last)
        elif seq <= last:
            self.metrics.inc("duplicates")

    def _count_gap(self, src: str, where: str, lost: int, seq: int, last: int) -> None:
        self.metrics.inc("lost", lost)
        self.metrics.inc("gaps")
        if self._limiter.allow("gap"):
            log.warning("Sequence gap from %s on %s: %d messages lost (seq %d after %d)", src, where, lost, seq, last)
