"""game_shard's decisions, without sockets: a stub publisher captures what it would send."""

from __future__ import annotations

import time

from arbees_core.config import Env
from arbees_core.messages import Heartbeat, TradingSignal, decode
from arbees_core.services.game_shard import GameShard, GameShardConfig
from arbees_core.transport import Outbox, Received, TransportSettings
from arbees_core.transport.base import Delivery
from arbees_core.venues.listing import GameMapping, OutcomePair
from tests.conftest import KeptPublisher
from tests.test_messages import _make_price

GAME = GameMapping(game_id="NBA-2026-11-24-MIA-BOS", league="NBA", start_date="2026-11-24", away="MIA", home="BOS",
                   pairs=(OutcomePair("BOS", "KXNBAGAME-26NOV24MIABOS-BOS", "111"),
                          OutcomePair("MIA", "KXNBAGAME-26NOV24MIABOS-MIA", "222")))




def _make_shard(**env: str) -> tuple[GameShard, KeptPublisher]:
    shard = GameShard(TransportSettings(), GameShardConfig.from_env(Env({"MIN_EDGE_PCT": "0.5", **env})))
    shard.mapping._install([GAME])
    pub = KeptPublisher()
    shard.outbox = Outbox(pub, "game_shard.test", "json", shard.metrics)
    return shard, pub


def _received(msg, replay: bool = False) -> Received:
    return Received(topic="", msg=msg, recv_ns=time.time_ns(), replay=replay, delivery=Delivery("", b"", 0))


def _kalshi(**kw):
    now = time.time_ns()
    base = dict(ticker="KXNBAGAME-26NOV24MIABOS-BOS", venue="kalshi", yes_bid=38.0, yes_ask=40.0, no_bid=60.0,
                no_ask=62.0, ts_origin_ns=now, ts_pub_ns=now, src="kalshi_monitor.1")
    return _make_price(**{**base, **kw})


def _poly(**kw):
    now = time.time_ns()
    base = dict(ticker="111", venue="polymarket", yes_bid=50.0, yes_ask=52.0, no_bid=48.0, no_ask=50.0,
                ts_origin_ns=now, ts_pub_ns=now, src="polymarket_monitor.1")
    return _make_price(**{**base, **kw})


def _signals(pub: KeptPublisher) -> list[TradingSignal]:
    return [decode(t, p) for t, p in pub.frames if t.startswith("signals.trade.")]  # type: ignore[misc]


def test_cross_venue_mispricing_becomes_a_two_leg_signal_naming_both_contracts() -> None:
    shard, pub = _make_shard()
    shard.handle_batch([_received(_poly()), _received(_kalshi())])
    [sig] = _signals(pub)
    assert [(l.venue, l.ticker, l.side, l.limit_price) for l in sig.legs] == [
        ("kalshi", "KXNBAGAME-26NOV24MIABOS-BOS", "yes", 40.0), ("polymarket", "111", "no", 50.0)]
    assert sig.edge_pct >= 0.5 and sig.signal_id.startswith("arb-") and sig.game_id == GAME.game_id


def test_no_signal_when_min_edge_pct_is_above_the_edge_but_the_edge_is_reported() -> None:
    shard, pub = _make_shard(MIN_EDGE_PCT="50")
    shard.handle_batch([_received(_poly()), _received(_kalshi())])
    assert _signals(pub) == [] and shard.metrics.counters["arbs_below_min_edge"] == 1
    assert shard.max_edge_pct() is not None and shard.max_edge_pct() < 50


def test_cooldown_blocks_a_second_signal_for_the_same_game() -> None:
    shard, pub = _make_shard()
    shard.handle_batch([_received(_poly()), _received(_kalshi())])
    shard.handle_batch([_received(_kalshi(yes_ask=39.0))])
    assert len(_signals(pub)) == 1 and shard.metrics.counters["arbs_in_cooldown"] == 1


def test_stale_price_is_not_traded_on_unless_the_feed_heartbeat_vouches_for_it() -> None:
    old = time.time_ns() - 10_000_000_000
    shard, pub = _make_shard(MAX_PRICE_AGE_MS="2000")
    shard.handle_batch([_received(_poly()), _received(_kalshi(ts_origin_ns=old))])
    assert _signals(pub) == []
    hb = Heartbeat(src="kalshi_monitor.1", seq=1, service="kalshi_monitor", feed_live_ns=time.time_ns())
    shard.handle_batch([_received(hb), _received(_kalshi(ts_origin_ns=old))])
    assert len(_signals(pub)) == 1


def test_unmapped_market_is_counted_not_traded() -> None:
    shard, pub = _make_shard()
    shard.handle_batch([_received(_kalshi(ticker="KXNBAGAME-26NOV24LALGSW-GSW"))])
    assert _signals(pub) == [] and shard.metrics.counters["prices_unmapped"] == 1


def test_a_burst_of_one_market_is_conflated_to_its_latest_price() -> None:
    shard, pub = _make_shard()
    burst = [_received(_kalshi(yes_ask=60.0 + i / 10)) for i in range(5)]
    shard.handle_batch([_received(_poly()), *burst, _received(_kalshi(yes_ask=40.0))])
    assert shard.metrics.counters["conflated"] == 5 and shard.metrics.counters["prices_rx"] == 7
    assert shard.books[("kalshi", "KXNBAGAME-26NOV24MIABOS-BOS")][0].yes_ask == 40.0
    assert len(_signals(pub)) == 1


def test_replayed_last_values_are_not_timed_as_hop_latency() -> None:
    shard, _ = _make_shard()
    shard.handle_batch([_received(_poly(), replay=True), _received(_kalshi(snapshot=True))])
    assert "price" not in shard.metrics.latency.summary()
