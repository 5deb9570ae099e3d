"""Venue books and parsers, on payloads in the venues' documented wire formats (tests/data/<venue>/).

The success criteria are the ones the original failed: a Kalshi delta is a change applied to a local book (never
a quote), YES ask on Kalshi is 100 - best NO bid, the fixed-point fields win over legacy ones, a sequence gap
invalidates the books until a fresh snapshot, and a malformed frame is counted and skipped.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from arbees_core.venues.book import BinaryBook, KalshiBook
from arbees_core.venues.kalshi.feed import KalshiFeed
from arbees_core.venues.kalshi.parsing import subscribe_command
from arbees_core.venues.polymarket.feed import PolymarketFeed

DATA = Path(__file__).parent / "data"
BOS = "KXNBAGAME-26NOV24MIABOS-BOS"
TOKEN = "65818619657568813474341868652308942079804919287380422192892211131408793125422"


def _frames(name: str) -> list[bytes]:
    return [line.encode() for line in (DATA / name).read_text().splitlines() if line.strip()]


# -- books ------------------------------------------------------------------------------------------------------------


def test_kalshi_yes_ask_is_100_minus_best_no_bid() -> None:
    book = KalshiBook()
    book.apply_snapshot([(55.0, 120.0), (58.0, 40.0)], [(38.0, 60.0), (40.0, 150.0)])
    top = book.top()
    assert (top.yes_bid, top.yes_bid_size) == (58.0, 40.0)
    assert (top.yes_ask, top.yes_ask_size) == (60.0, 150.0)
    assert (top.no_bid, top.no_ask, top.no_ask_size) == (40.0, 42.0, 40.0)
    assert not top.crossed


def test_kalshi_delta_is_a_signed_change_not_a_new_size() -> None:
    book = KalshiBook()
    book.apply_snapshot([(58.0, 40.0)], [(40.0, 150.0)])
    assert book.apply_delta("yes", 58.0, -15.0) == 25.0
    assert book.top().yes_bid_size == 25.0
    assert book.apply_delta("yes", 58.0, -25.0) == 0.0
    assert book.top().yes_bid is None  # the level is gone, not "a quote of 0"


def test_binary_book_sets_absolute_sizes_and_derives_no() -> None:
    book = BinaryBook()
    book.apply_snapshot([(48.0, 30.0), (50.0, 15.0)], [(54.0, 10.0), (52.0, 25.0)])
    top = book.top()
    assert (top.yes_bid, top.yes_ask) == (50.0, 52.0)
    assert (top.no_bid, top.no_bid_size, top.no_ask, top.no_ask_size) == (48.0, 25.0, 50.0, 15.0)
    book.set_level("BUY", 50.0, 5.0)
    assert book.top().yes_bid_size == 5.0
    book.set_level("BUY", 50.0, 0.0)
    assert book.top().yes_bid == 48.0


# -- Kalshi -----------------------------------------------------------------------------------------------------------


def test_kalshi_session_snapshot_then_deltas() -> None:
    feed = KalshiFeed()
    changes = [feed.handle(f, 1) for f in _frames("kalshi/orderbook_session.jsonl")]
    assert changes[0] == []  # the subscription ack carries no book
    snap = changes[1][0]
    assert (snap.top.yes_bid, snap.top.yes_ask, snap.venue_seq) == (58.0, 60.0, 1)
    after_removal = changes[2][0]
    assert after_removal.ticker == BOS and after_removal.venue_seq == 2
    assert after_removal.top.yes_bid == 57.0  # 58 removed by a -40 delta
    expected = datetime(2026, 11, 24, 23, 41, 7, 512000, tzinfo=timezone.utc).timestamp()
    assert after_removal.ts_event_ns == int(expected * 1e9)
    assert changes[3][0].top.yes_ask == 59.0  # NO bid at 41 -> YES ask 59
    assert changes[4] == []  # a deeper level changed: top of book unchanged, nothing to publish
    assert feed.gaps == 0 and feed.errors == {}


def test_kalshi_one_read_of_a_burst_is_one_change_with_the_final_top_and_last_seq() -> None:
    """A monitor publishes each market's top once per read: the read's frames give one change per market whose
    top differs from before the read, the same top the frames give one by one."""
    frames = _frames("kalshi/orderbook_session.jsonl")
    one_by_one = KalshiFeed()
    final = [c for f in frames for c in one_by_one.handle(f, 1)][-1]
    read = KalshiFeed().handle_many(frames, 1)
    assert len(read) == 1 and read[0].top == final.top == one_by_one.books[BOS].top()
    assert read[0].venue_seq == 4  # the book as of the read's last frame (seq 4 moved a deeper level only)

    feed = KalshiFeed()
    feed.handle_many(frames[:2], 1)  # the snapshot: yes bid 58 (40 contracts)
    back = orjson.loads(frames[2])
    back["seq"], back["msg"]["delta"], back["msg"]["delta_fp"] = 3, 40, "40.00"
    assert feed.handle_many([frames[2], orjson.dumps(back)], 1) == []  # moved and moved back: nothing to publish

    gap = KalshiFeed()
    gap.handle_many(frames[:2], 1)
    assert gap.handle_many([frames[2], frames[4]], 1) == []  # seq 4 after 2: the book is void, not quoted
    assert gap.gaps == 1 and gap.take_resync() == {2}


def test_kalshi_fixed_point_fields_win_over_legacy() -> None:
    feed = KalshiFeed()
    frame = {"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": {
        "market_ticker": BOS, "yes": [[50, 1]], "no": [[40, 1]],
        "yes_dollars_fp": [["0.5250", "12.50"]], "no_dollars_fp": [["0.4000", "3.00"]]}}
    top = feed.handle(orjson.dumps(frame), 1)[0].top
    assert (top.yes_bid, top.yes_bid_size, top.yes_ask) == (52.5, 12.5, 60.0)


def test_kalshi_legacy_integer_fields_still_parse() -> None:
    feed = KalshiFeed()
    feed.handle(orjson.dumps({"type": "orderbook_snapshot", "sid": 1, "seq": 1,
                              "msg": {"market_ticker": BOS, "yes": [[50, 10]], "no": [[45, 5]]}}), 1)
    out = feed.handle(orjson.dumps({"type": "orderbook_delta", "sid": 1, "seq": 2,
                                    "msg": {"market_ticker": BOS, "price": 51, "delta": 7, "side": "yes"}}), 1)
    assert (out[0].top.yes_bid, out[0].top.yes_bid_size, out[0].top.yes_ask) == (51.0, 7.0, 55.0)


def test_kalshi_sequence_gap_invalidates_books_until_a_fresh_snapshot() -> None:
    feed = KalshiFeed()
    frames = _frames("kalshi/orderbook_session.jsonl")
    feed.handle(frames[1], 1)
    assert feed.handle(frames[3], 1) == []  # seq 3 after 1: a delta was lost
    assert feed.gaps == 1 and feed.take_resync() == {2} and feed.take_resync() == set()
    assert feed.handle(frames[4], 1) == []  # still invalid: no quote from a book with a hole in it
    fresh = orjson.loads(frames[1])
    fresh["seq"] = 5
    assert feed.handle(orjson.dumps(fresh), 1)[0].top.yes_bid == 58.0


def test_kalshi_delta_before_any_snapshot_is_not_a_quote() -> None:
    feed = KalshiFeed()
    assert feed.handle(_frames("kalshi/orderbook_session.jsonl")[2], 1) == []
    assert feed.updates_before_snapshot == 1


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "malformed"),
    (b'{"type":"orderbook_delta","sid":1,"seq":1,"msg":{"market_ticker":"X","side":"maybe","price":5,"delta":1}}',
     "bad_message"),
    (b'{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{}}', "bad_message"),
    (b'{"type":"mystery"}', "unknown_type"),
    (b'[1,2]', "bad_message"),
    (b'{"id":3,"type":"error","msg":{"code":8,"msg":"Unknown channel name"}}', "venue_error"),
])
def test_kalshi_bad_frames_are_counted_and_skipped(raw: bytes, reason: str) -> None:
    feed = KalshiFeed()
    assert feed.handle(raw, 1) == []
    assert feed.errors == {reason: 1}
    assert feed.handle(_frames("kalshi/orderbook_session.jsonl")[1], 1)  # and the feed keeps going


def test_kalshi_subscribe_command_uses_market_tickers() -> None:
    cmd = orjson.loads(subscribe_command(7, [BOS]))
    assert cmd == {"id": 7, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": [BOS]}}


# -- Polymarket -------------------------------------------------------------------------------------------------------


def test_polymarket_session_book_then_absolute_changes() -> None:
    feed = PolymarketFeed()
    out = [feed.handle(f, 1) for f in _frames("polymarket/market_session.jsonl")]
    top = out[0][0].top  # an array of book events; best levels found by max/min, not list order
    assert (top.yes_bid, top.yes_bid_size, top.yes_ask, top.yes_ask_size) == (50.0, 15.0, 52.0, 25.0)
    assert out[0][0].ts_event_ns == 1764027667512 * 1_000_000
    assert out[1][0].top.yes_bid == 49.0  # size "0" removed the 0.50 bid
    assert out[2] == []  # last_trade_price changes no book
    top = out[3][0].top  # two changes of one token in one frame: one update with the final top
    assert len(out[3]) == 1 and (top.yes_ask, top.yes_ask_size, top.no_bid) == (51.0, 40.0, 49.0)
    assert feed.errors == {}


def test_polymarket_one_read_is_one_change_per_token_with_the_final_top() -> None:
    frames = _frames("polymarket/market_session.jsonl")
    one_by_one = PolymarketFeed()
    tops = {c.ticker: c for f in frames for c in one_by_one.handle(f, 1)}
    read = PolymarketFeed().handle_many(frames, 1)
    assert {c.ticker: c.top for c in read} == {t: c.top for t, c in tops.items()}
    assert len(read) == len({c.ticker for c in read})


def test_polymarket_accepts_buys_sells_and_keepalives() -> None:
    feed = PolymarketFeed()
    assert feed.handle(b"PONG", 1) == [] and feed.handle("PING", 1) == []
    ev = {"event_type": "book", "asset_id": "1", "market": "0x1", "buys": [{"price": "0.40", "size": "5"}],
          "sells": [{"price": "0.45", "size": "6"}], "timestamp": "1"}
    top = feed.handle(orjson.dumps(ev), 1)[0].top
    assert (top.yes_bid, top.yes_ask) == (40.0, 45.0) and feed.errors == {}


def test_polymarket_change_before_book_asks_for_resync() -> None:
    feed = PolymarketFeed()
    change = _frames("polymarket/market_session.jsonl")[1]
    assert feed.handle(change, 1) == []
    assert feed.take_resync() == {TOKEN}


@pytest.mark.parametrize("raw", [
    b"<html>", b'{"event_type":"unknown"}', b'{"event_type":"book","asset_id":"1","bids":"x","asks":[]}',
    b'{"event_type":"price_change","market":"0x1","price_changes":[{"asset_id":"1","price":"x","size":"1","side":"BUY"}]}',
    b'{"event_type":"price_change","market":"0x1"}',
])
def test_polymarket_bad_frames_are_counted_and_skipped(raw: bytes) -> None:
    feed = PolymarketFeed()
    assert feed.handle(raw, 1) == []
    assert sum(feed.errors.values()) == 1
    assert feed.handle(_frames("polymarket/market_session.jsonl")[0], 1)
