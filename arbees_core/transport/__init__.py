"""Transport selection: `ZMQ_ENABLED` picks ZMQ PUB/SUB or Redis streams, behind one interface."""

from __future__ import annotations

from arbees_core.topics import STREAMS, Family
from arbees_core.transport.base import Delivery, Publisher, Subscriber, TransportError, TransportSettings
from arbees_core.transport.channel import Inbox, Outbox, Received

__all__ = [
    "Delivery", "Inbox", "Outbox", "Publisher", "Received", "Subscriber", "TransportError", "TransportSettings",
    "make_publisher", "make_subscriber",
]


def make_publisher(settings: TransportSettings, port: int, endpoint_override: str = "") -> Publisher:
    """A ZMQ XPUB bound on `port` (ZMQ mode) or a Redis stream writer (Redis mode)."""
    if settings.zmq_enabled:
        from arbees_core.transport.zmq import ZmqPublisher, bind_endpoint

        return ZmqPublisher(settings, bind_endpoint(settings, port, endpoint_override))
    from arbees_core.transport.redis import RedisStreamPublisher

    return RedisStreamPublisher(settings)


def make_subscriber(
    settings: TransportSettings,
    families: list[Family],
    zmq_endpoints: list[str],
    *,
    group: str | None = None,
    consumer: str = "",
    last_value: bool = False,
    name: str = "ZMQ subscriber",
    hot_path: bool = False,
    spin: bool = False,
) -> Subscriber:
    """A SUB socket on `zmq_endpoints` filtered to `families` (ZMQ mode), or a stream reader (Redis mode).
    hot_path: this subscriber is the hot path's receiver of these families; in ZMQ mode each publisher then writes
    to it before its other subscribers (`zmq.first_in_line_prefixes`). spin: it busy-polls for `settings.spin_us`
    after each delivery (ZMQ_SPIN_US; game_shard's prices, which come every few hundred us in play). Neither has
    an effect in Redis mode."""
    if settings.zmq_enabled:
        from arbees_core.transport.zmq import ZmqSubscriber

        return ZmqSubscriber(settings, zmq_endpoints, [f.value for f in families], name=name,
                             first_in_line=hot_path, spin_us=settings.spin_us if spin else 0)
    from arbees_core.transport.redis import RedisStreamSubscriber

    return RedisStreamSubscriber(
        settings, [STREAMS[f] for f in families], group=group, consumer=consumer, last_value=last_value
    )
