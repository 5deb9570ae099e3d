"""position_tracker in process on a real PostgreSQL (its publisher a stub that keeps the frames): pairs come from the
store, marks go to `position_marks`, a market's result settles the stored legs once however often it is replayed,
and every change is published as `positions.pair.<id>`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from arbees_core.messages import MarketResolution, PositionUpdate, PriceUpdate, decode
from arbees_core.services.position_tracker import PositionTracker, TrackerConfig
from arbees_core.store.schema import migrate
from arbees_core.store.trades import insert_records
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.topics import price_topic, resolution_topic
from arbees_core.transport import Delivery, Outbox, Received, TransportSettings
from tests.conftest import KeptPublisher
from tests.test_spool import make_record

KALSHI = ("kalshi", "KXNBAGAME-26NOV24MIABOS-BOS")
POLY = ("polymarket", "1234")




def _received(topic: str, msg: object) -> Received:
    return Received(topic, msg, time.time_ns(), False, Delivery(topic, b"", time.time_ns()))  # type: ignore[arg-type]


def _resolution(venue: str, ticker: str, result: str) -> Received:
    now = time.time_ns()
    return _received(resolution_topic(venue, ticker), MarketResolution(
        src="m", seq=1, ts_origin_ns=now, venue=venue, ticker=ticker, game_id="g", result=result))  # type: ignore[arg-type]


@pytest.fixture
def tracker(database_url: str, state_dir) -> Iterator[PositionTracker]:
    cfg = TrackerConfig(endpoints=[], port=0, endpoint="", database_url=database_url, fees=FeeSchedule())
    t = PositionTracker(TransportSettings(), cfg)
    t.outbox = Outbox(KeptPublisher(), "tracker.t", "json")
    yield t
    t.close()


def _updates(t: PositionTracker) -> list[PositionUpdate]:
    assert t.outbox is not None
    return [decode(topic, payload) for topic, payload in t.outbox.publisher.frames  # type: ignore[attr-defined]
            if topic.startswith("positions.pair.")]


def test_the_tracker_marks_stored_pairs_and_settles_them_once(tracker: PositionTracker, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrate(conn)
        insert_records(conn, [make_record("arb-a")])
    tracker.with_store(tracker.reload)
    assert list(tracker.pairs) == ["arb-a"] and tracker.known
    now = time.time_ns()
    for (venue, ticker), bids in ((KALSHI, {"yes_bid": 37.0, "yes_bid_size": 50.0}),
                                  (POLY, {"no_bid": 49.0, "no_bid_size": 50.0})):
        tracker.dispatch(_received(price_topic(venue, ticker), PriceUpdate(
            src="m", seq=1, ts_origin_ns=now, venue=venue, ticker=ticker, game_id="g", outcome="BOS", **bids)))
    tracker.with_store(tracker.mark_all)
    [opened] = _updates(tracker)
    assert (opened.status, opened.qty, opened.hold_cents) == ("open", 10.0, 1000.0) and opened.mark_cents < 860
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM position_marks WHERE value_cents IS NOT NULL").fetchone() == (2,)
    tracker.dispatch(_resolution(*KALSHI, "yes"))
    tracker.dispatch(_resolution(*POLY, "yes"))
    tracker.with_store(tracker.reload)
    tracker.dispatch(_resolution(*KALSHI, "yes"))  # a monitor's replay to a late joiner
    assert tracker._resolutions == [] and tracker.pairs == {}
    closed = _updates(tracker)[-1]
    assert (closed.status, closed.close_reason) == ("closed", "settled")
    assert closed.realised_pnl_cents == pytest.approx(1000 - (390.7 + 510.7))
    assert tracker.metrics.counters["positions_settled"] == 2 and tracker.metrics.counters["pairs_closed"] == 1
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM position_marks").fetchone() == (0,)  # nothing open to mark
    assert tracker.extra_snapshot()["positions"]["realised_pnl_usd"] == pytest.approx(0.986)
