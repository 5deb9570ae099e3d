"""The wire contract: round trips in both wire formats, version rejection, absurd values rejected."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbees_core.messages import (
    SCHEMA_VERSION,
    DecodeError,
    Leg,
    MarketResolution,
    PriceUpdate,
    TradeResult,
    TradingSignal,
    decode,
    encode,
)


def _make_price(**overrides: object) -> PriceUpdate:
    fields: dict = dict(src="kalshi_monitor.1.ab", seq=7, ts_origin_ns=1_700_000_000_000_000_000, venue="kalshi",
                        ticker="KXNBAGAME-26NOV24MIABOS-BOS", game_id="NBA-2026-11-24-MIA-BOS", outcome="BOS",
                        yes_bid=45.0, yes_bid_size=120.0, yes_ask=47.0, yes_ask_size=80.0,
                        no_bid=53.0, no_bid_size=80.0, no_ask=55.0, no_ask_size=120.0, venue_seq=3)
    fields.update(overrides)
    return PriceUpdate(**fields)


def _make_signal(**overrides: object) -> TradingSignal:
    legs = [Leg(venue="kalshi", ticker="KXNBAGAME-26NOV24MIABOS-BOS", side="yes", limit_price=40.0, qty=10.0),
            Leg(venue="polymarket", ticker="1234", side="no", limit_price=52.0, qty=10.0)]
    fields: dict = dict(src="game_shard.1.cd", seq=1, ts_origin_ns=1, ts_detect_ns=2, signal_id="arb-00ff",
                        game_id="NBA-2026-11-24-MIA-BOS", legs=legs, qty=10.0, gross_edge_cents=8.0,
                        edge_cents=5.5, edge_pct=5.8, cost_cents=94.5)
    fields.update(overrides)
    return TradingSignal(**fields)


def _make_resolution(ticker: str = "KXNBAGAME-26NOV24MIABOS-BOS", result: str = "yes") -> MarketResolution:
    return MarketResolution(src="kalshi_monitor.1.ab", seq=1, ts_origin_ns=1_700_000_000_000_000_000,
                            ts_event_ns=1_699_999_999_000_000_000, venue="kalshi", ticker=ticker,
                            game_id="NBA-2026-11-24-MIA-BOS", outcome="BOS", result=result)  # type: ignore[arg-type]


@pytest.mark.parametrize("wire", ["json", "msgpack"])
def test_market_resolution_round_trips_on_its_own_topic_and_stream(wire: str) -> None:
    from arbees_core.topics import resolution_topic, stream_for_topic

    topic = resolution_topic("polymarket", "1234")
    assert topic == "markets.resolved.poly.1234" and stream_for_topic(topic) == "markets:resolved"
    assert not topic.startswith("prices.")  # game_shard subscribes to `prices.`: it never receives these
    msg = _make_resolution()
    assert decode(resolution_topic("kalshi", msg.ticker), encode(msg, wire)) == msg


def test_a_resolution_with_an_unknown_result_is_rejected() -> None:
    raw = msgspec.json.decode(encode(_make_resolution()))
    raw["result"] = "scalar"
    with pytest.raises(DecodeError) as e:
        decode("markets.resolved.kalshi.X", msgspec.json.encode(raw))
    assert e.value.reason == "malformed"


def test_an_unwind_result_carries_its_action_and_legging_loss() -> None:
    result = TradeResult(src="e", seq=1, order_id="arb-1-2", signal_id="arb-1", game_id="g", leg=2, venue="kalshi",
                         ticker="K", side="yes", status="filled", action="sell", limit_price=0.0, qty=10.0,
                         filled_qty=10.0, avg_price=37.0, legging_loss_cents=41.5)
    back = decode("trades.result.arb-1-2", encode(result))
    assert isinstance(back, TradeResult) and (back.action, back.legging_loss_cents) == ("sell", 41.5)


@pytest.mark.parametrize("wire", ["json", "msgpack"])
def test_price_update_round_trips_in_both_wire_formats(wire: str) -> None:
    msg = _make_price()
    assert decode("prices.kalshi.KXNBAGAME-26NOV24MIABOS-BOS", encode(msg, wire)) == msg


@pytest.mark.parametrize("wire", ["json", "msgpack"])
def test_signal_round_trips_and_names_both_contracts(wire: str) -> None:
    msg = _make_signal()
    back = decode("signals.trade.arb-00ff", encode(msg, wire))
    assert isinstance(back, TradingSignal)
    assert [(leg.venue, leg.ticker, leg.side) for leg in back.legs] == [
        ("kalshi", "KXNBAGAME-26NOV24MIABOS-BOS", "yes"), ("polymarket", "1234", "no")]


def test_price_json_has_the_fields_the_plan_reads_from_xrevrange() -> None:
    data = msgspec.json.decode(encode(_make_price()))
    assert {"ticker", "yes_ask", "yes_bid", "v", "src", "seq", "ts_origin_ns", "ts_pub_ns"} <= set(data)


def test_unknown_schema_version_is_rejected_with_its_own_reason() -> None:
    raw = msgspec.json.encode({**msgspec.to_builtins(_make_price()), "v": SCHEMA_VERSION + 1})
    with pytest.raises(DecodeError) as e:
        decode("prices.kalshi.X", raw)
    assert e.value.reason == "unknown_version"


def test_future_version_with_other_fields_is_unknown_version_not_malformed() -> None:
    with pytest.raises(DecodeError) as e:
        decode("prices.kalshi.X", b'{"v": 9, "entirely": "different"}')
    assert e.value.reason == "unknown_version"


@pytest.mark.parametrize("payload", [b"", b"{", b"not json", b'{"v": 1}', b"\xc1\xff\x00"])
def test_malformed_payloads_are_rejected_as_malformed(payload: bytes) -> None:
    with pytest.raises(DecodeError) as e:
        decode("prices.kalshi.X", payload)
    assert e.value.reason == "malformed"


def test_oversized_payload_is_rejected() -> None:
    with pytest.raises(DecodeError) as e:
        decode("prices.kalshi.X", b"{" + b" " * 70_000 + b"}")
    assert e.value.reason == "oversized"


def test_topic_outside_the_contract_is_rejected() -> None:
    with pytest.raises(DecodeError) as e:
        decode("orders.secret", encode(_make_price()))
    assert e.value.reason == "unknown_topic"


@pytest.mark.parametrize("overrides", [
    {"yes_bid": -1.0}, {"yes_ask": 101.0}, {"no_ask": math.nan}, {"yes_bid": math.inf},
    {"yes_ask_size": -5.0}, {"yes_ask_size": 0.0}, {"yes_bid": 50.0, "yes_ask": 49.0}, {"ticker": ""},
])
def test_absurd_prices_are_rejected_as_bad_value(overrides: dict) -> None:
    raw = encode(_make_price(**overrides), "msgpack")  # msgpack carries NaN and inf, JSON would not
    with pytest.raises(DecodeError) as e:
        decode("prices.kalshi.X", raw)
    assert e.value.reason == "bad_value"


@pytest.mark.parametrize("legs", [[], [Leg(venue="kalshi", ticker="A", side="yes", limit_price=40.0, qty=1.0)]])
def test_signal_without_two_legs_is_rejected(legs: list[Leg]) -> None:
    with pytest.raises(DecodeError) as e:
        decode("signals.trade.x", encode(_make_signal(legs=legs)))
    assert e.value.reason == "bad_value"


def test_signal_with_zero_qty_leg_is_rejected() -> None:
    legs = [Leg(venue="kalshi", ticker="A", side="yes", limit_price=40.0, qty=0.0),
            Leg(venue="polymarket", ticker="B", side="no", limit_price=50.0, qty=1.0)]
    with pytest.raises(DecodeError):
        decode("signals.trade.x", encode(_make_signal(legs=legs)))


def test_result_filled_more_than_ordered_is_rejected() -> None:
    res = TradeResult(src="e", seq=1, order_id="o", signal_id="s", game_id="g", leg=0, venue="kalshi", ticker="T",
                      side="yes", status="filled", limit_price=40.0, qty=10.0, filled_qty=11.0)
    with pytest.raises(DecodeError):
        decode("trades.result.o", encode(res))


@given(st.binary(max_size=300))
def test_decoder_never_raises_anything_but_decode_error(payload: bytes) -> None:
    for topic in ("prices.kalshi.X", "signals.trade.x", "trades.result.o", "heartbeat.s"):
        try:
            decode(topic, payload)
        except DecodeError:
            pass


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))
def test_any_price_that_decodes_is_within_0_and_100_cents(bid: float, ask: float) -> None:
    try:
        msg = decode("prices.kalshi.X", encode(_make_price(yes_bid=bid, yes_ask=ask), "msgpack"))
    except DecodeError:
        return
    assert isinstance(msg, PriceUpdate)
    assert 0.0 <= msg.yes_bid <= 100.0 and 0.0 <= msg.yes_ask <= 100.0 and msg.yes_bid < msg.yes_ask
