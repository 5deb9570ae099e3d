"""Both transports through the same Outbox/Inbox: delivery, last-value replay, gap counting, bad frames, groups."""

from __future__ import annotations

import os
import socket
import threading
import time

import msgspec
import pytest

from arbees_core.messages import MarketResolution, encode
from arbees_core.polling import eventually
from arbees_core.services.sched import rt_permitted
from arbees_core.telemetry.metrics import Metrics
from arbees_core.topics import Family, price_topic, resolution_topic, signal_topic
from arbees_core.transport import Inbox, Outbox, TransportSettings, make_publisher, make_subscriber
from arbees_core.transport.redis import RedisStreamPublisher, RedisStreamSubscriber
from arbees_core.transport.zmq import ZmqPublisher, ZmqSubscriber
from tests.test_messages import _make_price, _make_resolution, _make_signal


def _collect(inbox: Inbox, n: int, timeout: float = 10.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += inbox.receive(50)
    return got


@pytest.fixture
def zmq_pair():
    settings = TransportSettings(zmq_enabled=True)
    pub = ZmqPublisher(settings, "tcp://127.0.0.1:*")
    endpoint = f"tcp://127.0.0.1:{pub.port}"
    made: list = [pub]

    def subscriber(families: list[Family]) -> ZmqSubscriber:
        sub = ZmqSubscriber(settings, [endpoint], [f.value for f in families])
        made.append(sub)
        return sub

    yield pub, subscriber
    for sock in made:
        sock.close()



def test_zmq_subscriber_receives_prices_with_seq_and_publish_time(zmq_pair) -> None:
    pub, subscriber = zmq_pair
    metrics = Metrics("t", "t")
    outbox = Outbox(pub, "kalshi_monitor.1.aa", "json", metrics)
    inbox = Inbox(subscriber([Family.PRICES_KALSHI]), metrics)
    # slow joiner: publish until the subscription is live, then count from there
    eventually(lambda: (outbox.publish(price_topic("kalshi", "T0"), _make_price(ticker="T0")), inbox.receive(50))[1],
               what="subscription live")
    for i in range(1, 6):
        outbox.publish(price_topic("kalshi", f"T{i}"), _make_price(ticker=f"T{i}"))
    got = _collect(inbox, 5)
    tickers = [g.msg.ticker for g in got if g.msg.ticker != "T0"]
    assert tickers == ["T1", "T2", "T3", "T4", "T5"]
    seqs = [g.msg.seq for g in got]
    assert seqs == sorted(seqs) and all(g.msg.ts_pub_ns > 0 for g in got)
    assert metrics.counters.get("lost", 0) == 0


def test_late_joiner_gets_every_market_current_book_at_once(zmq_pair) -> None:
    pub, subscriber = zmq_pair
    metrics = Metrics("t", "t")
    outbox = Outbox(pub, "kalshi_monitor.1.aa", "json", metrics)
    for i in range(3):  # published before anyone listens: lost to plain PUB/SUB
        outbox.publish(price_topic("kalshi", f"M{i}"), _make_price(ticker=f"M{i}", yes_bid=40.0 + i, yes_ask=50.0))
    inbox = Inbox(subscriber([Family.PRICES_KALSHI]), metrics)
    got: list = []
    deadline = time.monotonic() + 10
    while len({g.msg.ticker for g in got}) < 3 and time.monotonic() < deadline:
        outbox.serve_late_joiners()
        got += inbox.receive(50)
    assert {g.msg.ticker: g.msg.yes_bid for g in got} == {"M0": 40.0, "M1": 41.0, "M2": 42.0}
    assert all(g.msg.snapshot for g in got)


def test_late_joiner_gets_the_latest_market_resolutions_but_never_more_than_the_bound(zmq_pair, monkeypatch) -> None:
    from arbees_core.transport import channel

    monkeypatch.setattr(channel, "RESOLUTIONS_KEPT", 3)
    pub, subscriber = zmq_pair
    outbox = Outbox(pub, "kalshi_monitor.1.aa", "json")
    for i in range(5):  # resolved while execution_service was down
        outbox.publish(resolution_topic("kalshi", f"R{i}"), _make_resolution(f"R{i}"))
    outbox.forget(resolution_topic("kalshi", "R4"))
    inbox = Inbox(subscriber([Family.RESOLUTIONS]), Metrics("t", "t"))
    got: list = []
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        outbox.serve_late_joiners()
        got += inbox.receive(50)
    assert sorted(g.msg.ticker for g in got) == ["R2", "R3"]  # the newest 3 kept, one of them forgotten
    assert all(isinstance(g.msg, MarketResolution) and g.msg.snapshot and g.msg.result == "yes" for g in got)


def test_sequence_gap_is_counted_as_lost_messages(zmq_pair) -> None:
    pub, subscriber = zmq_pair
    metrics = Metrics("t", "t")
    inbox = Inbox(subscriber([Family.PRICES_KALSHI]), metrics)
    topic = price_topic("kalshi", "G")
    eventually(lambda: (pub.send(topic, encode(_make_price(ticker="G", seq=1))), inbox.receive(50))[1])
    pub.send(topic, encode(_make_price(ticker="G", seq=2)))
    pub.send(topic, encode(_make_price(ticker="G", seq=6)))  # 3, 4, 5 never arrive
    _collect(inbox, 2)
    assert metrics.counters["lost"] == 3 and metrics.counters["gaps"] == 1


def test_bad_frames_are_counted_per_reason_and_do_not_block_the_next_good_one(zmq_pair) -> None:
    pub, subscriber = zmq_pair
    metrics = Metrics("t", "t")
    sub = subscriber([Family.PRICES_KALSHI])
    inbox = Inbox(sub, metrics)
    topic = price_topic("kalshi", "B")
    eventually(lambda: (pub.send(topic, encode(_make_price(ticker="B"))), inbox.receive(50))[1])
    raw_sock = pub._sock
    raw_sock.send_multipart([topic.encode(), b"{not json"])
    raw_sock.send_multipart([topic.encode(), b'{"v": 99}'])
    raw_sock.send_multipart([topic.encode(), b"a", b"b"])  # wrong frame count
    raw_sock.send_multipart([topic.encode(), encode(_make_price(ticker="B", yes_bid=-3.0))])
    raw_sock.send_multipart([topic.encode(), encode(_make_price(ticker="B", seq=99, yes_bid=44.0))])
    got = _collect(inbox, 1)
    assert [g.msg.yes_bid for g in got] == [44.0]
    c = metrics.counters
    assert (c["rx_rejected.malformed"], c["rx_rejected.unknown_version"], c["rx_rejected.bad_value"],
            c["rx_rejected.frame_count"]) == (1, 1, 1, 1)


def test_zmq_subscriber_logs_real_connection_state(zmq_pair, caplog) -> None:
    pub, subscriber = zmq_pair
    caplog.set_level("INFO")
    sub = subscriber([Family.PRICES_KALSHI])
    eventually(lambda: (sub.receive(50), sub.connected)[1], what="monitor saw the connection")
    assert f"ZMQ subscriber connected to tcp://127.0.0.1:{pub.port}" in caplog.text


def _blackhole() -> tuple[socket.socket, list[socket.socket]]:
    """A port whose SYNs go unanswered, as a restarting container's address: a listener that never accepts, its
    accept queue full (Linux drops a SYN to a full queue)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(2):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    return listener, fillers


def test_a_connect_nobody_answers_is_retried_and_the_publisher_is_found_once_it_is_back() -> None:
    """A publisher restarting (kill -9, the restart policy brings it back): a subscriber's connect attempt whose SYN
    nobody answers is given up and retried on the subscriber's own reconnect schedule, not left to the kernel's SYN
    backoff, so the subscriber finds the publisher as soon as it binds again."""
    settings = TransportSettings(zmq_enabled=True)
    listener, fillers = _blackhole()
    port = listener.getsockname()[1]
    sub = ZmqSubscriber(settings, [f"tcp://127.0.0.1:{port}"], [Family.PRICES_KALSHI.value])
    pub = None
    try:
        eventually(lambda: (sub.receive(50), sum(sub.retries.values()) >= 2)[1], timeout=30,
                   what="unanswered connect attempts given up and retried")
        assert not sub.connected
        for held in (listener, *fillers):
            held.close()
        pub = ZmqPublisher(settings, f"tcp://127.0.0.1:{port}")
        eventually(lambda: (sub.receive(50), sub.connected)[1], timeout=30, what="connected once the port answers")
        outbox = Outbox(pub, "kalshi_monitor.1.aa", "json")
        inbox = Inbox(sub, Metrics("t", "t"))
        eventually(lambda: (outbox.publish(price_topic("kalshi", "T0"), _make_price(ticker="T0")), inbox.receive(50))[1],
                   timeout=30, what="a price through the new connection")
    finally:
        for held in (listener, *fillers):
            held.close()  # a no-op once closed; here too when a check failed
        sub.close()
        if pub is not None:
            pub.close()


def test_port_in_use_is_a_clear_error() -> None:
    settings = TransportSettings(zmq_enabled=True)
    first = ZmqPublisher(settings, "tcp://127.0.0.1:*")
    try:
        from arbees_core.transport import TransportError

        with pytest.raises(TransportError, match="address already in use"):
            ZmqPublisher(settings, f"tcp://127.0.0.1:{first.port}")
    finally:
        first.close()


def test_redis_mode_delivers_through_streams_with_plan_entry_shape(redis_url: str, redis_client) -> None:
    settings = TransportSettings(zmq_enabled=False, redis_url=redis_url)
    metrics = Metrics("t", "t")
    sub = make_subscriber(settings, [Family.PRICES_KALSHI], [])
    inbox = Inbox(sub, metrics)
    inbox.receive(10)  # start position = the stream's end
    outbox = Outbox(make_publisher(settings, 0), "kalshi_monitor.1.aa", "json", metrics)
    outbox.publish(price_topic("kalshi", "R1"), _make_price(ticker="R1"))
    got = _collect(inbox, 1)
    assert [g.msg.ticker for g in got] == ["R1"]
    entry_id, fields = redis_client.xrevrange("prices:kalshi", "+", "-", count=1)[0]
    assert fields[b"topic"] == b"prices.kalshi.R1"
    data = msgspec.json.decode(fields[b"data"])
    assert data["ticker"] == "R1" and data["yes_ask"] == 47.0 and data["yes_bid"] == 45.0
    sub.close()


def test_redis_late_joiner_reads_last_value_per_market(redis_url: str) -> None:
    settings = TransportSettings(zmq_enabled=False, redis_url=redis_url)
    metrics = Metrics("t", "t")
    outbox = Outbox(make_publisher(settings, 0), "kalshi_monitor.1.aa", "json", metrics)
    for bid in (40.0, 41.0):
        for t in ("A", "B"):
            outbox.publish(price_topic("kalshi", t), _make_price(ticker=t, yes_bid=bid))
    sub = make_subscriber(settings, [Family.PRICES_KALSHI], [], last_value=True)
    got = Inbox(sub, metrics).receive(10)
    assert sorted((g.msg.ticker, g.msg.yes_bid, g.replay) for g in got) == [("A", 41.0, True), ("B", 41.0, True)]
    sub.close()


def test_redis_consumer_group_redelivers_unacked_signal_after_restart(redis_url: str) -> None:
    settings = TransportSettings(zmq_enabled=False, redis_url=redis_url)
    metrics = Metrics("t", "t")
    first = RedisStreamSubscriber(settings, ["signals:trades"], group="execution_service", consumer="c1")
    first.receive(10)  # creates the group at the stream's end
    Outbox(make_publisher(settings, 0), "game_shard.1", "json").publish(signal_topic("arb-1"), _make_signal(signal_id="arb-1"))
    got = _collect(Inbox(first, metrics), 1)
    assert got[0].msg.signal_id == "arb-1"
    first.close()  # "crash" before ack
    again = RedisStreamSubscriber(settings, ["signals:trades"], group="execution_service", consumer="c1")
    inbox = Inbox(again, metrics)
    redelivered = _collect(inbox, 1)
    assert [r.msg.signal_id for r in redelivered] == ["arb-1"]
    inbox.ack(redelivered)
    again.close()
    third = RedisStreamSubscriber(settings, ["signals:trades"], group="execution_service", consumer="c1")
    assert _collect(Inbox(third, metrics), 1, timeout=0.5) == []
    third.close()


def test_redis_outage_is_survived_by_publisher_buffer(redis_url: str) -> None:
    dead = TransportSettings(zmq_enabled=False, redis_url="redis://127.0.0.1:1/0")
    pub = RedisStreamPublisher(dead, buffer_max=3)
    for i in range(5):
        pub.send(price_topic("kalshi", f"X{i}"), b"{}")
    assert pub.backlog == 3 and pub.dropped == 2 and not pub.available
    pub._client.close()


@pytest.mark.parametrize("send_yield", ["true", "false"])
def test_zmq_send_yield_is_a_setting_and_either_way_every_frame_arrives_in_order(send_yield: str) -> None:
    from arbees_core.config import Env

    settings = TransportSettings.from_env(Env({"ZMQ_ENABLED": "true", "ZMQ_SEND_YIELD": send_yield}))
    assert settings.send_yield is (send_yield == "true") and TransportSettings().send_yield is True
    pub = ZmqPublisher(settings, "tcp://127.0.0.1:*")
    sub = ZmqSubscriber(settings, [f"tcp://127.0.0.1:{pub.port}"], [Family.PRICES_KALSHI.value])
    try:
        metrics = Metrics("t", "t")
        outbox, inbox = Outbox(pub, "kalshi_monitor.1.yy", "json", metrics), Inbox(sub, metrics)
        eventually(lambda: (outbox.publish(price_topic("kalshi", "T0"), _make_price(ticker="T0")), inbox.receive(50))[1],
                   what="subscription live")
        outbox.publish(price_topic("kalshi", "T1"), _make_price(ticker="T1"))  # send
        outbox.publish_many([(price_topic("kalshi", f"T{i}"), _make_price(ticker=f"T{i}")) for i in (2, 3, 4)])
        got = [g.msg.ticker for g in _collect(inbox, 4) if g.msg.ticker != "T0"]
        assert got == ["T1", "T2", "T3", "T4"] and metrics.counters.get("lost", 0) == 0
    finally:
        sub.close()
        pub.close()


def test_hot_path_subscriber_subscribes_by_topic_class_so_each_publisher_writes_to_it_first() -> None:
    """game_shard (prices) and execution_service (signals) subscribe by topic class, e.g. `prices.`, which an XPUB
    matches, and so writes to, before the mirror's and the book feed's per-family `prices.kalshi.` (libzmq walks
    its subscription trie from the root); the hot-path receiver still gets only the families it asked for."""
    from arbees_core.transport.zmq import first_in_line_prefixes

    assert first_in_line_prefixes(["prices.kalshi.", "prices.poly.", "heartbeat."]) == ["heartbeat.", "prices."]
    assert first_in_line_prefixes([Family.SIGNALS.value]) == ["signals."]
    assert first_in_line_prefixes(["", "prices.kalshi."]) == [""]
    settings = TransportSettings(zmq_enabled=True)
    pub = ZmqPublisher(settings, "tcp://127.0.0.1:*")
    endpoint = f"tcp://127.0.0.1:{pub.port}"
    hot = make_subscriber(settings, [Family.PRICES_KALSHI], [endpoint], hot_path=True)
    mirror = make_subscriber(settings, [Family.PRICES_KALSHI, Family.PRICES_POLY], [endpoint])
    try:
        seen: list[str] = []
        eventually(lambda: (seen.extend(pub.new_subscriptions()), len(seen) >= 3)[1], what="both subscriptions")
        assert sorted(seen) == ["prices.", "prices.kalshi.", "prices.poly."]
        metrics = Metrics("t", "t")
        outbox = Outbox(pub, "kalshi_monitor.1.hp", "json", metrics)
        hot_inbox, mirror_inbox = Inbox(hot, metrics), Inbox(mirror, Metrics("m", "m"))
        eventually(lambda: (outbox.publish(price_topic("kalshi", "T0"), _make_price(ticker="T0")),
                            hot_inbox.receive(50))[1], what="subscription live")
        for i in range(1, 4):  # polymarket's prices pass the `prices.` subscription and are dropped on receipt
            outbox.publish(price_topic("polymarket", f"P{i}"), _make_price(venue="polymarket", ticker=f"P{i}"))
            outbox.publish(price_topic("kalshi", f"T{i}"), _make_price(ticker=f"T{i}"))
        got = [g for g in _collect(hot_inbox, 3) if g.msg.ticker != "T0"]
        assert [g.topic for g in got] == [price_topic("kalshi", f"T{i}") for i in range(1, 4)]
        assert metrics.counters.get("lost", 0) == 0 and metrics.counters.get("rx_rejected", 0) == 0
        mirrored: set[str] = set()
        eventually(lambda: (mirrored.update(g.msg.ticker for g in mirror_inbox.receive(50)),
                            mirrored >= {"P1", "P2", "P3", "T1", "T2", "T3"})[1], what="the mirror gets both venues")
    finally:
        hot.close()
        mirror.close()
        pub.close()


def test_zmq_spin_us_busy_polls_only_game_shards_price_socket_and_loses_nothing() -> None:
    """ZMQ_SPIN_US: after a delivery the subscriber asked to spin (game_shard's prices) keeps polling for that long,
    counting the CPU it took (`spin_cpu_ns`, which the CPU probe subtracts), and blocks as before once the window
    has passed; every frame still arrives, in order. Off by default; other hot-path subscribers never spin."""
    from arbees_core.config import ConfigError, Env

    settings = TransportSettings.from_env(Env({"ZMQ_ENABLED": "true", "ZMQ_SPIN_US": "20000"}))
    assert settings.spin_us == 20000 and TransportSettings().spin_us == 0
    with pytest.raises(ConfigError, match="ZMQ_SPIN_US"):
        TransportSettings.from_env(Env({"ZMQ_SPIN_US": "-1"}))
    pub = ZmqPublisher(settings, "tcp://127.0.0.1:*")
    endpoint = f"tcp://127.0.0.1:{pub.port}"
    prices = make_subscriber(settings, [Family.PRICES_KALSHI], [endpoint], hot_path=True, spin=True)
    signals = make_subscriber(settings, [Family.SIGNALS], [endpoint], hot_path=True)
    try:
        assert isinstance(prices, ZmqSubscriber) and prices.spin_us == 20000
        assert isinstance(signals, ZmqSubscriber) and signals.spin_us == 0
        metrics = Metrics("t", "t")
        outbox, inbox = Outbox(pub, "kalshi_monitor.1.sp", "json", metrics), Inbox(prices, metrics)
        eventually(lambda: (outbox.publish(price_topic("kalshi", "T0"), _make_price(ticker="T0")), inbox.receive(50))[1],
                   what="subscription live")

        def publish() -> None:  # 1 ms apart: each next price arrives inside the 20 ms window
            for i in range(1, 51):
                outbox.publish(price_topic("kalshi", f"T{i}"), _make_price(ticker=f"T{i}"))
                time.sleep(0.001)

        sender = threading.Thread(target=publish)
        sender.start()
        got = [g.msg.ticker for g in _collect(inbox, 50) if g.msg.ticker != "T0"]
        sender.join()
        got += [g.msg.ticker for g in _collect(inbox, 50 - len(got), timeout=2) if g.msg.ticker != "T0"]
        assert got == [f"T{i}" for i in range(1, 51)] and metrics.counters.get("lost", 0) == 0
        assert prices.spin_cpu_ns > 0
        time.sleep(0.05)  # a quiet spell longer than the window: the next receive blocks without polling
        polled = prices.spin_cpu_ns
        assert inbox.receive(20) == [] and prices.spin_cpu_ns == polled
    finally:
        prices.close()
        signals.close()
        pub.close()


@pytest.mark.skipif(not rt_permitted(10), reason="this process may not use SCHED_FIFO")
def test_a_real_time_thread_never_spins(caplog: pytest.LogCaptureFixture) -> None:
    """Under ARBEES_RT_PRIORITY a thread's sched_yield yields only to real-time threads: a spinning game_shard would
    hold its core against everything else, so ZMQ_SPIN_US is ignored there, with a warning."""
    from arbees_core.transport.zmq import spin_window_ns

    window: dict[str, int] = {}

    def under_fifo() -> None:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))  # this thread only
        window["fifo"] = spin_window_ns(2000, "game_shard prices")

    thread = threading.Thread(target=under_fifo)
    thread.start()
    thread.join()
    assert window["fifo"] == 0 and "ZMQ_SPIN_US=2000 ignored" in caplog.text
    assert spin_window_ns(2000, "game_shard prices") == 2_000_000 and spin_window_ns(0, "x") == 0
