"""Every name on the wire, in one place: ZMQ topics, Redis streams, ports and service names.

The plan (`zmq-testing-plan.md`) and ARCHITECTURE.md are the contract for these names; operators grep for them,
so no other module spells a topic, stream or port inline.
"""

from __future__ import annotations

import enum
from typing import Final

KALSHI: Final = "kalshi"
POLYMARKET: Final = "polymarket"
VENUES: Final = (KALSHI, POLYMARKET)

#: The short venue name used inside topics and streams (`prices.poly.<asset>`, `prices:poly`).
VENUE_TOPIC_NAME: Final = {KALSHI: "kalshi", POLYMARKET: "poly"}


class Family(str, enum.Enum):
    """A topic family: one message type, one Redis stream, one sequence counter per publisher."""

    PRICES_KALSHI = "prices.kalshi."
    PRICES_POLY = "prices.poly."
    SIGNALS = "signals.trade."
    RESULTS = "trades.result."
    RESOLUTIONS = "markets.resolved."
    HEARTBEAT = "heartbeat."
    POSITIONS = "positions.pair."
    EXITS = "positions.exit."


#: Redis stream per family: the mirror target in ZMQ mode and the transport itself in Redis mode.
STREAMS: Final[dict[Family, str]] = {
    Family.PRICES_KALSHI: "prices:kalshi",
    Family.PRICES_POLY: "prices:poly",
    Family.SIGNALS: "signals:trades",
    Family.RESULTS: "trades:results",
    Family.RESOLUTIONS: "markets:resolved",
    Family.HEARTBEAT: "heartbeats",
    Family.POSITIONS: "positions:updates",
    Family.EXITS: "positions:exits",
}
STREAM_FAMILY: Final[dict[str, Family]] = {stream: fam for fam, stream in STREAMS.items()}

#: Families whose entries a late joiner needs at once (last value per topic), as in the ZMQ guide's clone pattern.
#: A market's resolution is one: a restarted execution_service must still settle the positions of a market that
#: resolved while it was down.
LAST_VALUE_FAMILIES: Final = (Family.PRICES_KALSHI, Family.PRICES_POLY, Family.RESOLUTIONS)

# Ports of the plan (5555, 5556, 5558) plus the execution results publisher (5560, as the original's @HEAD).
KALSHI_MONITOR_PORT: Final = 5555
POLYMARKET_MONITOR_PORT: Final = 5556
GAME_SHARD_PORT: Final = 5558
EXECUTION_SERVICE_PORT: Final = 5560
#: position_tracker's publisher of `positions.pair.*` updates and `positions.exit.*` exit signals.
POSITION_TRACKER_PORT: Final = 5562
#: The api's HTTP port (dashboard, JSON, SSE), and the first of the local runtime's Prometheus metrics ports (one
#: per service, in registry order; compose gives every container METRICS_CONTAINER_PORT).
API_PORT: Final = 8000
METRICS_PORT_BASE: Final = 9400
METRICS_CONTAINER_PORT: Final = 9464

# Service names exactly as the plan names them.
KALSHI_MONITOR: Final = "kalshi_monitor"
POLYMARKET_MONITOR: Final = "polymarket_monitor"
GAME_SHARD: Final = "game_shard"
EXECUTION_SERVICE: Final = "execution_service"
ZMQ_LISTENER: Final = "zmq_listener"
MARKET_DISCOVERY: Final = "market_discovery"
API: Final = "api"
ORCHESTRATOR: Final = "orchestrator"

#: Redis stream of every assignment change the orchestrator makes (control plane, written in both modes).
ASSIGNMENTS_STREAM: Final = "games:assignments"
POSITION_TRACKER: Final = "position_tracker"

#: Consumer group through which execution_service reads `signals:trades` in Redis mode (at-least-once).
EXECUTION_GROUP: Final = "execution_service"

#: Redis keys outside the streams.
HEALTH_KEY_PREFIX: Final = "arbees:health:"
KILL_SWITCH_KEY: Final = "arbees:kill_switch"


def price_family(venue: str) -> Family:
    """The price family of a venue (`kalshi` or `polymarket`)."""
    if venue == KALSHI:
        return Family.PRICES_KALSHI
    if venue == POLYMARKET:
        return Family.PRICES_POLY
    raise ValueError(f"unknown venue: expected one of {VENUES}, was {venue!r}")


def price_topic(venue: str, ticker: str) -> str:
    """`prices.kalshi.<ticker>` or `prices.poly.<asset_id>`."""
    return price_family(venue).value + ticker


def resolution_topic(venue: str, ticker: str) -> str:
    """`markets.resolved.kalshi.<ticker>` or `markets.resolved.poly.<asset_id>`: one market's result."""
    price_family(venue)  # an unknown venue raises here, as for a price topic
    return f"{Family.RESOLUTIONS.value}{VENUE_TOPIC_NAME[venue]}.{ticker}"


def signal_topic(signal_id: str) -> str:
    """`signals.trade.<signal_id>`."""
    return Family.SIGNALS.value + signal_id


def result_topic(order_id: str) -> str:
    """`trades.result.<order_id>`."""
    return Family.RESULTS.value + order_id


def position_topic(pair_id: str) -> str:
    """`positions.pair.<pair_id>`: one arbitrage pair's position, marked to market (pair id = the signal's id)."""
    return Family.POSITIONS.value + pair_id


def exit_topic(pair_id: str) -> str:
    """`positions.exit.<pair_id>`: closing both legs of this pair now beats holding them to settlement."""
    return Family.EXITS.value + pair_id


def heartbeat_topic(service: str) -> str:
    """`heartbeat.<service>`."""
    return Family.HEARTBEAT.value + service


#: Every family is one or two dot-terminated words, none the start of another, so a topic's family is its text up
#: to its first or second dot: found by lookup, with nothing kept per topic (a cache of topics kept one entry per
#: market ever priced, filling for hours as games' markets came and went).
_BY_PREFIX: Final[dict[str, Family]] = {f.value: f for f in Family}
assert all(f.value.endswith(".") and f.value.count(".") in (1, 2) for f in Family)
assert not any(a is not b and b.value.startswith(a.value) for a in Family for b in Family)


def family_of(topic: str) -> Family | None:
    """The family a topic belongs to, or None for a topic outside the contract. It runs two or three times per
    message on every hot path: at most two `find`s and two dict lookups."""
    first = topic.find(".") + 1
    if not first:
        return None
    fam = _BY_PREFIX.get(topic[:first])
    if fam is not None:
        return fam
    second = topic.find(".", first) + 1
    return _BY_PREFIX.get(topic[:second]) if second else None


def stream_for_topic(topic: str) -> str | None:
    """The Redis stream a topic is mirrored to (`prices.kalshi.X` -> `prices:kalshi`)."""
    fam = family_of(topic)
    return STREAMS[fam] if fam is not None else None


def tcp_endpoint(host: str, port: int) -> str:
    """`tcp://host:port`, the form the plan's `ZMQ_SUB_ENDPOINTS` uses."""
    return f"tcp://{host}:{port}"
