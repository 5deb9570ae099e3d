"""Fuzzing the decoders and the books with random input (hypothesis): nothing the wire can send makes them raise
anything but the contract's own error, and nothing absurd gets through.

- `messages.decode`: random bytes, and random JSON / MessagePack objects close to the schema (right field names,
  wrong types, NaN, infinities, out-of-range prices, unknown versions, missing or extra fields). A frame is either
  a `DecodeError` with a known reason, or a message that passes `check()`.
- `KalshiFeed.handle` / `PolymarketFeed.handle`: random frames never raise; the simulated venues' valid sequences
  (any seed, any number of steps) never produce a crossed top of book.
- The books themselves: random snapshots and level changes never leave an empty or negative level, and the top of
  book always comes from the levels.
"""

from __future__ import annotations

import math

import msgspec
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arbees_core.messages import DecodeError, PriceUpdate, TradingSignal, check, decode
from arbees_core.topics import price_topic, signal_topic
from arbees_core.venues.book import BinaryBook, KalshiBook
from arbees_core.venues.kalshi.feed import KalshiFeed
from arbees_core.venues.polymarket.feed import PolymarketFeed
from arbees_core.venues.sim import SimConfig, SimVenue

REASONS = {"malformed", "unknown_version", "bad_value", "oversized", "unknown_topic"}
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOPICS = st.sampled_from([price_topic("kalshi", "KXNBAGAME-X"), price_topic("polymarket", "123"),
                          signal_topic("arb-1"), "trades.result.o-1", "heartbeat.game_shard", "nonsense.topic", ""])

_NUMBERS = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([0, 0.0, -0.0, 100, 100.0001, -1, 1e308]))
_VALUES = st.one_of(_NUMBERS, st.text(max_size=20), st.booleans(), st.lists(st.integers(-2**63, 2**63 - 1), max_size=3))


def _near(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy[dict]:
    """Objects with the schema's field names (each present or not) and plausible or absurd values."""
    optional = {k: st.one_of(v, _VALUES) for k, v in fields.items()}
    return st.fixed_dictionaries({}, optional=optional).flatmap(
        lambda d: st.dictionaries(st.text(max_size=8), _VALUES, max_size=2).map(lambda extra: {**extra, **d}))


PRICE_FIELDS = {
    "v": st.sampled_from([1, 1, 1, 0, 2, 99, -1]), "src": st.text(max_size=10), "seq": st.integers(-5, 10**6),
    "ts_origin_ns": st.integers(0, 2**63 - 1), "venue": st.sampled_from(["kalshi", "polymarket", "nyse"]),
    "ticker": st.text(max_size=30), "game_id": st.text(max_size=10), "outcome": st.text(max_size=5),
    **{side: _NUMBERS for side in ("yes_bid", "yes_ask", "no_bid", "no_ask")},
    **{side + "_size": _NUMBERS for side in ("yes_bid", "yes_ask", "no_bid", "no_ask")},
}
LEG = st.fixed_dictionaries({"venue": st.sampled_from(["kalshi", "polymarket"]), "ticker": st.text(max_size=10),
                             "side": st.sampled_from(["yes", "no", "maybe"]), "limit_price": _NUMBERS,
                             "qty": _NUMBERS})
SIGNAL_FIELDS = {
    "v": st.sampled_from([1, 1, 2]), "src": st.text(max_size=10), "seq": st.integers(0, 100),
    "ts_origin_ns": st.integers(0, 2**62), "ts_detect_ns": st.integers(0, 2**62), "signal_id": st.text(max_size=10),
    "game_id": st.text(max_size=10), "legs": st.lists(LEG, max_size=3), "qty": _NUMBERS,
    "gross_edge_cents": _NUMBERS, "edge_cents": _NUMBERS, "edge_pct": _NUMBERS, "cost_cents": _NUMBERS,
}


def _assert_contract(topic: str, payload: bytes) -> None:
    try:
        msg = decode(topic, payload)
    except DecodeError as e:
        assert e.reason in REASONS, e.reason
        return
    assert check(msg) is None
    if isinstance(msg, PriceUpdate):
        for side in ("yes_bid", "yes_ask", "no_bid", "no_ask"):
            price = getattr(msg, side)
            assert price is None or (math.isfinite(price) and 0.0 <= price <= 100.0)
            assert getattr(msg, side + "_size") >= 0.0
    if isinstance(msg, TradingSignal):
        assert len(msg.legs) == 2 and all(0.0 < leg.limit_price <= 100.0 and leg.qty > 0 for leg in msg.legs)


def _json_bytes(obj: dict) -> bytes:
    try:
        return orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        return msgspec.json.encode({k: v for k, v in obj.items() if isinstance(v, (str, int, bool))})


@FUZZ
@given(TOPICS, st.binary(max_size=300))
def test_decode_never_raises_anything_but_decode_error_on_random_bytes(topic: str, payload: bytes) -> None:
    _assert_contract(topic, payload)


@FUZZ
@given(_near(PRICE_FIELDS), st.booleans(), st.sampled_from([price_topic("kalshi", "K"), price_topic("polymarket", "P")]))
def test_price_objects_near_the_schema_are_valid_or_rejected_with_a_reason(obj: dict, as_msgpack: bool,
                                                                           topic: str) -> None:
    payload = msgspec.msgpack.encode(obj) if as_msgpack else _json_bytes(obj)
    _assert_contract(topic, payload)
    if not as_msgpack:  # NaN and infinities as JSON literals, which strict JSON has no spelling for
        text = payload.decode().replace("null", "NaN", 1)
        _assert_contract(topic, text.encode())


@FUZZ
@given(_near(SIGNAL_FIELDS), st.booleans())
def test_signal_objects_near_the_schema_are_valid_or_rejected_with_a_reason(obj: dict, as_msgpack: bool) -> None:
    payload = msgspec.msgpack.encode(obj) if as_msgpack else _json_bytes(obj)
    _assert_contract(signal_topic("arb-1"), payload)


_JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
                                  st.text(max_size=10)),
                        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                st.dictionaries(st.text(max_size=12), inner, max_size=5)),
                        max_leaves=20)
KALSHI_FRAME = st.fixed_dictionaries({"type": st.sampled_from(["orderbook_snapshot", "orderbook_delta", "error",
                                                               "subscribed", "weird"]),
                                      "sid": st.one_of(st.integers(-2, 3), st.text(max_size=2)),
                                      "seq": st.one_of(st.integers(-2, 50), st.none()),
                                      "msg": _JSONISH})
POLY_FRAME = st.fixed_dictionaries({"event_type": st.sampled_from(["book", "price_change", "last_trade_price", "x"]),
                                    "asset_id": st.text(max_size=5), "bids": _JSONISH, "asks": _JSONISH,
                                    "price_changes": _JSONISH, "timestamp": _JSONISH})


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=80), KALSHI_FRAME.map(orjson.dumps)), max_size=20))
def test_kalshi_feed_never_raises_on_random_frames(frames: list[bytes]) -> None:
    feed = KalshiFeed()
    for raw in frames:
        feed.handle(raw, 1)
    assert feed.messages == len(frames)


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=80), st.just(b"PING"), POLY_FRAME.map(orjson.dumps),
                          st.lists(POLY_FRAME, max_size=3).map(orjson.dumps)), max_size=20))
def test_polymarket_feed_never_raises_on_random_frames(frames: list[bytes]) -> None:
    feed = PolymarketFeed()
    for raw in frames:
        feed.handle(raw, 1)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 6), st.integers(1, 300), st.sampled_from(["kalshi", "polymarket"]))
def test_valid_venue_sequences_never_cross_a_book(seed: int, games: int, steps: int, venue: str) -> None:
    sim = SimVenue(venue, SimConfig(seed=seed, games=games, mispricing_every_s=0))
    feed = KalshiFeed() if venue == "kalshi" else PolymarketFeed()
    for raw in sim.burst(steps):
        for change in feed.handle(raw, 1):
            assert not change.top.crossed, (change.ticker, change.top)
    assert not feed.errors


LEVELS = st.lists(st.tuples(st.floats(0.5, 99.5), st.floats(-5, 500)), max_size=8)


@FUZZ
@given(LEVELS, LEVELS, st.lists(st.tuples(st.sampled_from(["yes", "no"]), st.floats(0.5, 99.5),
                                          st.floats(-600, 600)), max_size=30))
def test_kalshi_book_keeps_no_empty_level_and_tops_come_from_levels(yes, no, deltas) -> None:
    book = KalshiBook()
    book.apply_snapshot(yes, no)
    for side, price, change in deltas:
        book.apply_delta(side, price, change)
        assert all(size > 0 for size in (*book.yes.levels.values(), *book.no.levels.values()))
        top = book.top()
        assert top.yes_bid == (max(book.yes.levels) if book.yes.levels else None)
        assert top.yes_ask == (round(100 - max(book.no.levels), 6) if book.no.levels else None)


@FUZZ
@given(LEVELS, LEVELS, st.lists(st.tuples(st.sampled_from(["BUY", "SELL", "bid"]), st.floats(0.5, 99.5),
                                          st.floats(-5, 500)), max_size=30))
def test_binary_book_keeps_no_empty_level_and_no_side_mirrors_yes(bids, asks, changes) -> None:
    book = BinaryBook()
    book.apply_snapshot(bids, asks)
    for side, price, size in changes:
        book.set_level(side, price, size)
        assert all(s > 0 for s in (*book.bids.levels.values(), *book.asks.levels.values()))
        top = book.top()
        assert top.no_bid == (round(100 - top.yes_ask, 6) if top.yes_ask is not None else None)
        assert top.no_ask == (round(100 - top.yes_bid, 6) if top.yes_bid is not None else None)
