"""The venues' frames decoded as typed wire structs (`venues/<venue>/wire.py`): fields a venue adds later are
ignored, a missing required field is one clear error naming it, counted once, and the rest of a batch still counts.
"""

from __future__ import annotations

import orjson
import pytest

from arbees_core.venues.feed import Rejected
from arbees_core.venues.kalshi.feed import KalshiFeed
from arbees_core.venues.kalshi.parsing import Delta, ErrorReply, Snapshot, Subscribed, parse_frame, parse_reply
from arbees_core.venues.polymarket.feed import PolymarketFeed
from arbees_core.venues.polymarket.parsing import PriceChange, TokenBook
from arbees_core.venues.polymarket.parsing import parse_frame as parse_poly

BOS = "KXNBAGAME-26NOV24MIABOS-BOS"
SNAPSHOT = {"type": "orderbook_snapshot", "sid": 2, "seq": 1,
            "msg": {"market_ticker": BOS, "yes_dollars_fp": [["0.5500", "120.00"]],
                    "no_dollars_fp": [["0.4000", "150.00"]]}}
DELTA = {"type": "orderbook_delta", "sid": 2, "seq": 2,
         "msg": {"market_ticker": BOS, "price_dollars": "0.5500", "delta_fp": "-20.00", "side": "yes",
                 "ts": "2026-11-24T23:41:07.512Z"}}
BOOK = {"event_type": "book", "asset_id": "7", "market": "0x1", "bids": [{"price": ".48", "size": "30"}],
        "asks": [{"price": ".52", "size": "25"}], "timestamp": "1764027667512"}


def _with_extras(frame: dict) -> dict:
    """`frame` with fields no venue documents yet, at every level."""
    out = {**frame, "added_later": {"nested": [1, 2]}}
    if isinstance(frame.get("msg"), dict):
        out["msg"] = {**frame["msg"], "market_id": "9b0f", "another": None}
    return out


def test_kalshi_frames_with_unknown_fields_parse_as_without_them() -> None:
    for frame in (SNAPSHOT, DELTA):
        plain = parse_frame(orjson.dumps(frame), 1)
        assert plain == parse_frame(orjson.dumps(_with_extras(frame)), 1)
        assert len(plain) == 1 and isinstance(plain[0], (Snapshot, Delta))
    snap = parse_frame(orjson.dumps(SNAPSHOT), 1)[0]
    assert (snap.yes, snap.no, snap.sid, snap.seq) == ([(55.0, 120.0)], [(40.0, 150.0)], 2, 1)


def test_a_kalshi_frame_missing_a_required_field_is_one_error_naming_it_counted_once() -> None:
    broken = {**DELTA, "msg": {k: v for k, v in DELTA["msg"].items() if k != "market_ticker"}}
    (rejected,) = parse_frame(orjson.dumps(broken), 1)
    assert isinstance(rejected, Rejected) and rejected.reason == "bad_message"
    assert "market_ticker" in rejected.detail and "orderbook_delta" in rejected.detail
    feed = KalshiFeed()
    feed.handle(orjson.dumps(SNAPSHOT), 1)
    assert feed.handle(orjson.dumps(broken), 1) == []
    assert feed.errors == {"bad_message": 1}
    assert feed.handle(orjson.dumps(DELTA), 1)[0].top.yes_bid_size == 100.0  # and the feed keeps going


def test_a_kalshi_field_of_the_wrong_type_is_an_error_naming_it() -> None:
    (rejected,) = parse_frame(orjson.dumps({**DELTA, "seq": "two"}), 1)
    assert isinstance(rejected, Rejected) and rejected.reason == "bad_message" and "seq" in rejected.detail


def test_kalshi_command_replies_are_typed() -> None:
    assert parse_reply(b'{"id":4,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":7}}') == Subscribed(4, 7)
    assert parse_reply(b'{"id":5,"type":"error","msg":{"code":9,"msg":"Authentication required"}}') == \
        ErrorReply(9, "Authentication required", 5)
    assert parse_reply(orjson.dumps(DELTA)) is None
    assert parse_frame(b'{"id":4,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":7}}', 1) == ()


def test_polymarket_events_with_unknown_fields_parse_as_without_them() -> None:
    change = {"event_type": "price_change", "market": "0x1", "timestamp": "1764027668001",
              "price_changes": [{"asset_id": "7", "price": "0.5", "size": "0", "side": "buy"}]}
    for event in (BOOK, change):
        plain = parse_poly(orjson.dumps(event), 1)
        assert plain == parse_poly(orjson.dumps(_with_extras(event)), 1)
    assert isinstance(parse_poly(orjson.dumps(BOOK), 1)[0], TokenBook)
    (parsed,) = parse_poly(orjson.dumps(change), 1)
    assert isinstance(parsed, PriceChange) and parsed.changes[0].side == "BUY" and parsed.changes[0].price == 50.0


def test_a_polymarket_event_missing_a_required_field_costs_only_itself() -> None:
    nameless = {k: v for k, v in BOOK.items() if k != "asset_id"}
    other = {**BOOK, "asset_id": "8"}
    parsed = parse_poly(orjson.dumps([nameless, other]), 1)
    assert isinstance(parsed[0], Rejected) and parsed[0].reason == "bad_message" and "asset_id" in parsed[0].detail
    assert isinstance(parsed[1], TokenBook) and parsed[1].token == "8"
    feed = PolymarketFeed()
    assert [c.ticker for c in feed.handle(orjson.dumps([nameless, other]), 1)] == ["8"]
    assert feed.errors == {"bad_message": 1}


def test_a_polymarket_price_change_that_cannot_be_used_withdraws_the_books_it_names() -> None:
    feed = PolymarketFeed()
    feed.handle(orjson.dumps(BOOK), 1)
    bad = {"event_type": "price_change", "market": "0x1",
           "price_changes": [{"asset_id": "7", "price": "0.5", "side": "BUY"}]}  # no size
    (rejected,) = parse_poly(orjson.dumps(bad), 1)
    assert rejected.lost == ("7",) and "size" in rejected.detail
    assert feed.handle(orjson.dumps(bad), 1) == []
    assert not feed.books["7"].ready and feed.take_resync() == {"7"} and feed.gaps == 1


def test_discovery_pages_decode_typed_and_a_malformed_market_or_event_costs_only_itself() -> None:
    from arbees_core.venues.kalshi.parsing import markets_page, page_listings
    from arbees_core.venues.polymarket.parsing import event_listings, gamma_events

    page = markets_page({"markets": [{"ticker": "KXNBAGAME-25NOV06LALBOS-LAL", "event_ticker": "KXNBAGAME-25NOV06LALBOS",
                                      "new_field": {"x": 1}},
                                     {"event_ticker": "no ticker"}, {"ticker": 42}], "cursor": "abc"})
    listings, skipped = page_listings(page, "KXNBAGAME")
    assert [x.ticker for x in listings] == ["KXNBAGAME-25NOV06LALBOS-LAL"] and skipped == 2 and page.cursor == "abc"
    assert listings[0].outcome == "LAL" and listings[0].start_date == "2025-11-06"
    with pytest.raises(ValueError, match="markets"):
        markets_page({"markets": "not a list"})

    good = {"id": 1, "slug": "nba-lal-bos-2025-11-06", "markets": [
        {"conditionId": "0xc", "question": "Lakers vs. Celtics", "outcomes": '["Lakers", "Celtics"]',
         "clobTokenIds": '["101", "102"]', "enableOrderBook": True, "unknown": [1, 2]}]}
    events, skipped = gamma_events([good, {"markets": "oops"}, "not an event"])
    assert skipped == 2 and len(events) == 1
    tokens = event_listings(events[0], "NBA")
    assert [(t.ticker, t.outcome, t.start_date) for t in tokens] == [("101", "Lakers", "2025-11-06"),
                                                                     ("102", "Celtics", "2025-11-06")]
