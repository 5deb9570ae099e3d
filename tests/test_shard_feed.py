"""A game shard receives only the prices of the games it holds (ZMQ mode): per-market subscriptions that follow the
orchestrator's assignments, on real processes (discovery, two monitors, two shards, the orchestrator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from arbees_core.harness import ProcessStack, pipeline_env
from arbees_core.polling import eventually
from arbees_core.runtime.ports import free_port_block
from arbees_core.services.shards import ShardFeed
from arbees_core.transport import TransportSettings
from arbees_core.transport.zmq import ZmqPublisher, ZmqSubscriber
from arbees_core.venues.listing import GameMapping, OutcomePair

SHARDS = ("game_shard", "game_shard_2")


def _game(i: int) -> GameMapping:
    return GameMapping(game_id=f"g{i}", league="nba", start_date="2026-12-04", away="A", home="H",
                       pairs=(OutcomePair(outcome="H", kalshi_ticker=f"K{i}", poly_token=f"P{i}"),))


def test_a_shard_feed_follows_the_held_games_markets_and_drops_a_prefix_neighbour() -> None:
    import logging

    settings = TransportSettings(zmq_enabled=True)
    pub = ZmqPublisher(settings, "tcp://127.0.0.1:*")
    sub = ZmqSubscriber(settings, [f"tcp://127.0.0.1:{pub.port}"], ["heartbeat."])
    try:
        feed = ShardFeed(sub, logging.getLogger("test"))
        games = [_game(1), _game(10), _game(2)]
        assert feed.update({"g1": 1, "g10": 1}, games) == []
        assert set(feed.markets) == {"prices.kalshi.K1", "prices.poly.P1", "prices.kalshi.K10", "prices.poly.P10"}
        assert feed.update({"g1": 1}, games) == [("kalshi", "K10"), ("polymarket", "P10")]
        eventually(lambda: len(pub.new_subscriptions()) or None, 5, what="the subscriptions reach the publisher")
        got: list[str] = []

        def sent_and_received() -> bool:
            for topic in ("prices.kalshi.K1", "prices.kalshi.K10", "prices.kalshi.K2", "heartbeat.x"):
                pub.send(topic, b"{}")
            got.extend(d.topic for d in sub.receive(100))
            return "prices.kalshi.K1" in got and "heartbeat.x" in got

        eventually(sent_and_received, 5, what="K1 and the heartbeat received")
        assert set(got) == {"prices.kalshi.K1", "heartbeat.x"}  # K10 passes the K1 prefix on the wire: dropped
    finally:
        sub.close()
        pub.close()


def test_every_one_of_thousands_of_market_subscriptions_reaches_the_publisher() -> None:
    """A shard of 400 games follows 1 600 markets: more subscriptions than the default high-water mark, which libzmq
    applies to a SUB's subscription frames too (it dropped the excess)."""
    settings = TransportSettings(zmq_enabled=True)
    pub = ZmqPublisher(settings, "tcp://127.0.0.1:*")
    sub = ZmqSubscriber(settings, [f"tcp://127.0.0.1:{pub.port}"], ["heartbeat."])
    try:
        eventually(lambda: pub.new_subscriptions() or None, 5, what="the subscriber connected")
        topics = {f"prices.kalshi.K{i}" for i in range(2500)}
        sub.follow_topics(("prices.kalshi.",), topics)
        seen: set[str] = set()

        def all_seen() -> bool:
            seen.update(pub.new_subscriptions())
            return seen >= topics

        eventually(all_seen, 10, what=f"2 500 subscriptions at the publisher ({len(seen)} seen)")
    finally:
        sub.close()
        pub.close()


def test_a_partial_subscriber_counts_loss_per_market_from_topic_seq() -> None:
    """The monitors' Outbox numbers each market's prices; a shard's Inbox, which follows some markets only, counts
    a gap within one market as lost and none for the markets it does not follow (the family `seq` skips them)."""
    from arbees_core.messages import PriceUpdate
    from arbees_core.telemetry.metrics import Metrics
    from arbees_core.topics import Family
    from arbees_core.transport import Inbox, Outbox
    from arbees_core.transport.base import Delivery, Publisher

    class Wire(Publisher):  # the frames an XPUB would send, kept in order
        def __init__(self) -> None:
            self.frames: list[tuple[str, bytes]] = []

        def send(self, topic: str, payload: bytes) -> None:
            self.frames.append((topic, payload))

        def send_many(self, frames: list[tuple[str, bytes]]) -> None:
            self.frames.extend(frames)

        def new_subscriptions(self) -> list[str]:
            return []

        def close(self) -> None:
            pass

    wire = Wire()
    outbox = Outbox(wire, "kalshi_monitor.1", "json")
    for ticker in ("K1", "K2", "K1", "K2", "K1", "K1"):
        outbox.publish(f"prices.kalshi.{ticker}", PriceUpdate(src="", seq=0, ts_origin_ns=1, venue="kalshi",
                                                              ticker=ticker, game_id="g", outcome="H", yes_bid=40.0,
                                                              yes_bid_size=1.0, yes_ask=42.0, yes_ask_size=1.0))
    metrics = Metrics("game_shard", "t")
    inbox = Inbox(None, metrics, partial=(Family.PRICES_KALSHI,))  # type: ignore[arg-type]
    k1 = [(t, p) for t, p in wire.frames if t.endswith("K1")]
    got = inbox.accept([Delivery(t, p, 1) for t, p in (k1[0], k1[1], k1[3])])  # the third K1 price lost
    assert [m.msg.topic_seq for m in got] == [1, 2, 4]  # type: ignore[attr-defined]
    assert metrics.counters["lost"] == 1 and metrics.counters.get("duplicates", 0) == 0
    inbox.forget(["prices.kalshi.K1"])  # unfollowed, then followed again: what came meanwhile was not for it
    inbox.accept([Delivery(k1[3][0], k1[3][1], 2)])
    assert metrics.counters["lost"] == 1


@pytest.fixture
def two_shards(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[ProcessStack]:
    env = pipeline_env(True, redis_url, database_url, tmp_path)
    env.update({"SIM_GAMES": "4", "SIM_RATE": "200", "GAME_ASSIGNMENT": "orchestrator", "SHARD_FEED": "held", "SHARD_DEAD_S": "3",
                "ASSIGNMENT_POLL_MS": "100", "ORCHESTRATOR_INTERVAL_MS": "100"})
    base = free_port_block(2)
    stack = ProcessStack(tmp_path, env)
    try:
        stack.start("market_discovery")
        eventually(lambda: "Discovery: mapped" in stack.log("market_discovery"), 60, "discovery mapped games",
                   details=stack.dump)
        for k, shard in enumerate(SHARDS, start=1):
            stack.start(shard, SHARD_ID=str(k), ZMQ_PUB_PORT=str(base + k - 1))
        for shard in SHARDS:  # both registered before the first round: the games are spread once, never moved
            eventually(lambda s=shard: "registered at epoch" in stack.log(s), 60, f"{shard} registered",
                       details=stack.dump)
        stack.start("orchestrator")
        for shard in SHARDS:
            eventually(lambda s=shard: stack.metrics(s).get("markets_followed"), 60, f"{shard} follows markets",
                       details=stack.dump)
        stack.start("polymarket_monitor", ZMQ_PUB_PORT=env["_PORT_polymarket_monitor"])
        stack.start("kalshi_monitor", ZMQ_PUB_PORT=env["_PORT_kalshi_monitor"])
        yield stack
    finally:
        stack.stop_all()


@pytest.mark.e2e
def test_each_of_two_shards_receives_only_its_games_prices(two_shards: ProcessStack) -> None:
    stack = two_shards
    for shard in SHARDS:
        eventually(lambda s=shard: stack.counter(s, "prices_rx") >= 200, 60, f"{shard} received prices",
                   details=stack.dump)
    for monitor in ("kalshi_monitor", "polymarket_monitor"):
        stack.stop(monitor)
    published = sum(stack.counter(m, "prices_published") + stack.counter(m, "lvc_replayed")
                    for m in ("kalshi_monitor", "polymarket_monitor"))
    snaps = {s: eventually(lambda s=s: _settled(stack, s), 10, f"{s} metrics settled",
                           details=stack.dump) for s in SHARDS}
    held = [set(snap["held_games"]) for snap in snaps.values()]
    assert all(held) and not held[0] & held[1], held
    for shard, snap in snaps.items():
        counters = snap["counters"]
        assert snap["markets_followed"] >= 2 * len(snap["held_games"]), (shard, snap)  # pairs x both venues
        # Every price that reached evaluation belonged to a game the shard held; none was unmapped.
        assert counters.get("prices_not_held", 0) == 0 and counters.get("prices_unmapped", 0) == 0, (shard, counters)
        assert counters["prices_rx"] < 0.75 * published, (shard, counters["prices_rx"], published)
        assert counters.get("lost", 0) == 0, (shard, counters)  # per market (topic_seq): nothing lost
    received = sum(snap["counters"]["prices_rx"] for snap in snaps.values())
    # Split, not copied: together the shards received at most what the monitors sent (less the prices sent before a
    # shard's connection was up, which a late joiner gets only as last values).
    assert received <= published, (received, published)


def _settled(stack: ProcessStack, shard: str) -> dict | None:
    """The shard's metrics once two successive snapshots agree on prices_rx (the monitors are stopped)."""
    first = stack.metrics(shard)
    import time

    time.sleep(1.5)
    second = stack.metrics(shard)
    rx = lambda m: m.get("counters", {}).get("prices_rx")  # noqa: E731
    return second if rx(first) == rx(second) and rx(second) else None
