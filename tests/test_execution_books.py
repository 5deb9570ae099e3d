"""execution_service fills each signal against the latest book it has seen.

In ZMQ mode it does not wake up for every price: it reads its price socket whenever a signal arrives (before
filling it) and otherwise every PRICE_DRAIN_MS. These tests run it as a process, with the test publishing prices
(as kalshi_monitor) and signals (as game_shard) over real ZMQ sockets, and read the fills from `paper_trades`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from arbees_core.harness import ProcessStack, pipeline_env
from arbees_core.messages import Leg, PriceRef, PriceUpdate, TradingSignal, encode
from arbees_core.polling import eventually
from arbees_core.topics import price_topic, signal_topic
from arbees_core.transport import Outbox, TransportSettings
from arbees_core.transport.zmq import ZmqPublisher

pytestmark = pytest.mark.e2e

TICKER = "KXNBAGAME-26NOV25LALBOS-BOS"
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"


def _price(size: float) -> PriceUpdate:
    """Kalshi: YES BOS at 40c, `size` contracts."""
    return PriceUpdate(src="", seq=0, ts_origin_ns=time.time_ns(), venue="kalshi", ticker=TICKER, game_id="g1",
                       outcome="BOS", yes_bid=38.0, yes_bid_size=50.0, yes_ask=40.0, yes_ask_size=size)


def _poly_price() -> PriceUpdate:
    """Polymarket: NO of the BOS token at 55c, plenty of it."""
    return PriceUpdate(src="", seq=0, ts_origin_ns=time.time_ns(), venue="polymarket", ticker=TOKEN, game_id="g1",
                       outcome="BOS", no_ask=55.0, no_ask_size=500.0)


def _signal(signal_id: str) -> TradingSignal:
    now = time.time_ns()
    return TradingSignal(src="", seq=0, ts_origin_ns=now, ts_detect_ns=now, signal_id=signal_id, game_id="g1",
                         legs=[Leg(venue="kalshi", ticker=TICKER, side="yes", limit_price=40.0, qty=10.0),
                               Leg(venue="polymarket", ticker=TOKEN, side="no", limit_price=55.0, qty=10.0)],
                         qty=10.0, gross_edge_cents=5.0, edge_cents=3.0, edge_pct=3.0, cost_cents=97.0)


def _fill(database_url: str, signal_id: str) -> tuple[str, float] | None:
    """(status, filled_qty) of the signal's Kalshi leg, once it is in paper_trades."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status, filled_qty FROM paper_trades WHERE signal_id = %s AND leg = 0",
                           (signal_id,)).fetchone()
    return (row[0], float(row[1])) if row else None


def _wait_subscribed(pub: ZmqPublisher, stack: ProcessStack) -> None:
    eventually(lambda: pub.new_subscriptions(), 30, f"execution_service subscribed at {pub.endpoint}",
               details=stack.dump)


class Venues:
    """execution_service running alone, and the test in the monitors' and game_shard's place."""

    def __init__(self, tmp_path: Path, redis_url: str, database_url: str, **settings: str) -> None:
        # the periodic price read is as rare as it can be (every 100 ms), so a price sent 40 ms before a signal is
        # in the book only if the signal's arrival makes the service read prices
        self.database_url = database_url
        self.env = pipeline_env(True, redis_url, database_url, tmp_path)
        self.env.update({"PRICE_DRAIN_MS": "100", "TRANSPORT_BLOCK_MS": "100", **settings})
        settings = TransportSettings(zmq_enabled=True)
        port = lambda name: f"tcp://127.0.0.1:{self.env[f'_PORT_{name}']}"  # noqa: E731
        self.kalshi = ZmqPublisher(settings, port("kalshi_monitor"))
        self.poly = ZmqPublisher(settings, port("polymarket_monitor"))
        self.shard = ZmqPublisher(settings, port("game_shard"))
        self.prices, self.signals = Outbox(self.kalshi, "test.kalshi", "json"), Outbox(self.shard, "test.shard", "json")
        self.stack = ProcessStack(tmp_path, self.env)

    def start(self) -> None:
        self.stack.start("execution_service", ZMQ_PUB_PORT=self.env["_PORT_execution_service"])
        eventually(lambda: "Idempotency:" in self.stack.log("execution_service"), 60, "execution_service ready",
                   details=self.stack.dump)
        for pub in (self.kalshi, self.poly, self.shard):
            _wait_subscribed(pub, self.stack)
        Outbox(self.poly, "test.poly", "json").publish(price_topic("polymarket", TOKEN), _poly_price())

    def signal_after(self, signal_id: str) -> tuple[str, float]:
        """A signal 40 ms after the last price; its Kalshi leg's fill."""
        time.sleep(0.04)
        self.signals.publish(signal_topic(signal_id), _signal(signal_id))
        return eventually(lambda: _fill(self.database_url, signal_id), 30, f"the fill of {signal_id}",
                          details=self.stack.dump)

    def close(self) -> None:
        self.stack.stop_all()
        for pub in (self.kalshi, self.poly, self.shard):
            pub.close()


@contextmanager
def running_venues(tmp_path: Path, redis_url: str, database_url: str, **settings: str) -> Iterator[Venues]:
    running = Venues(tmp_path, redis_url, database_url, **settings)
    try:
        running.start()
        yield running
    finally:
        running.close()


@pytest.fixture
def venues(tmp_path: Path, redis_url: str, database_url: str) -> Iterator[Venues]:
    with running_venues(tmp_path, redis_url, database_url) as running:
        yield running


def test_zmq_fill_uses_the_price_that_arrived_just_before_the_signal(venues: Venues) -> None:
    # Act: the size at the ask changes, and 40 ms later a signal buys 10 there; three times
    fills = {}
    for n, size in enumerate((7.0, 3.0, 5.0)):
        venues.prices.publish(price_topic("kalshi", TICKER), _price(size))
        fills[size] = venues.signal_after(f"arb-books-{n}")

    # Assert: each fill took exactly the size the latest price showed, and the rest was cancelled (IOC)
    assert fills == {7.0: ("partial", 7.0), 3.0: ("partial", 3.0), 5.0: ("partial", 5.0)}
    assert venues.stack.counter("execution_service", "lost") == 0


def test_a_bad_frame_after_the_latest_price_is_counted_and_the_fill_uses_the_last_good_one(venues: Venues) -> None:
    topic = price_topic("kalshi", TICKER)

    # Act: a good price (6 at the ask), then a bad frame for the same market, then the signal
    venues.prices.publish(topic, _price(6.0))
    venues.kalshi.send(topic, encode(_price(9.0)).replace(b'"yes_ask":40.0', b'"yes_ask":-40.0'))
    fill = venues.signal_after("arb-books-bad")

    # Assert: filled against the good price; the bad frame counted under its reason, not traded on
    assert fill == ("partial", 6.0)
    eventually(lambda: venues.stack.counter("execution_service", "rx_rejected.bad_value") == 1, 10,
               "the bad frame counted", details=venues.stack.dump)


def test_a_signal_that_overtakes_its_input_price_is_filled_on_that_price(tmp_path: Path, redis_url: str,
                                                                          database_url: str) -> None:
    """The signal comes through game_shard, its input price straight from the monitor: on another connection the
    signal can arrive first. It waits (at most PRICE_CATCHUP_MS, long here) for the price it names."""
    with running_venues(tmp_path, redis_url, database_url, PRICE_CATCHUP_MS="3000") as venues:
        topic = price_topic("kalshi", TICKER)
        venues.prices.publish(topic, _price(7.0))
        time.sleep(0.04)
        # Act: a signal derived from the Kalshi price that comes next (the publisher's next sequence), sent first
        nxt = _price(3.0)
        sig = _signal("arb-books-overtaken")
        sig.inputs = [PriceRef(venue="kalshi", ticker=TICKER, src=venues.prices.src, seq=1 + 1, ts_origin_ns=0,
                               ts_pub_ns=0, ts_recv_ns=0)]
        venues.signals.publish(signal_topic(sig.signal_id), sig)
        time.sleep(0.05)
        venues.prices.publish(topic, nxt)
        fill = eventually(lambda: _fill(venues.database_url, sig.signal_id), 30, "the fill", details=venues.stack.dump)

        # Assert: filled on the price the signal was derived from, not on the one before it; the wait counted
        assert fill == ("partial", 3.0)
        eventually(lambda: venues.stack.counter("execution_service", "price_catchup_waits") == 1, 10,
                   "the wait counted", details=venues.stack.dump)
        assert venues.stack.counter("execution_service", "price_catchup_timeouts") == 0


def test_an_order_meets_the_book_of_its_arrival_at_the_venue(tmp_path: Path, redis_url: str, database_url: str) -> None:
    """PAPER_ORDER_LATENCY_MS models the IOC order's round trip: a price that lands meanwhile decides the fill,
    as the venue's book of that moment would decide a live order's."""
    with running_venues(tmp_path, redis_url, database_url, PAPER_ORDER_LATENCY_MS="1500") as venues:
        topic = price_topic("kalshi", TICKER)
        venues.prices.publish(topic, _price(7.0))
        time.sleep(0.04)
        # Act: the signal, then while its order travels the size at the ask drops to 2
        sig = _signal("arb-books-latency")
        venues.signals.publish(signal_topic(sig.signal_id), sig)
        time.sleep(0.1)
        venues.prices.publish(topic, _price(2.0))
        fill = eventually(lambda: _fill(venues.database_url, sig.signal_id), 30, "the fill", details=venues.stack.dump)

        # Assert: the order met the moved book
        assert fill == ("partial", 2.0)
