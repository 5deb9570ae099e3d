"""Chaos scenarios about what arrives on the wire: `bad-input` (malformed frames on the real sockets/streams,
each counted per reason, the next good one processed) and `hwm` / `slow-joiner` (a stalled subscriber's losses
show up as `lost` through the sequence numbers). In ZMQ mode the frames come from the injector in the monitor's
place (a process on its port, or a container answering to its name under compose).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from arbees_core.messages import MAX_PAYLOAD_BYTES, Leg, TradingSignal, encode
from arbees_core.polling import eventually
from arbees_core.store.assignments import read_assignments
from arbees_core.store.db import connect
from arbees_core.store.mappings import load_mappings
from arbees_core.topics import price_topic, signal_topic
from arbees_core.validation.chaos.probe import ChaosUnavailable, StackProbe, Takeover, price_subscribers, take_over_port
from arbees_core.validation.results import RunResult


#: A book no arbitrage can be made of (YES and NO asked at 99 cents): what the scenarios send on a real market.
WIDE_BOOK = {"yes_bid": 1.0, "yes_ask": 99.0, "no_bid": 1.0, "no_ask": 99.0}


def shard_ticker(probe: StackProbe) -> str | None:
    """A Kalshi market of a game that game_shard holds, when it follows only its games' markets (ZMQ mode,
    SHARD_FEED=held: an unmapped ticker would never reach it); None when it receives every market."""
    if not probe.zmq_mode or probe.field("game_shard", "markets_followed") is None:  # SHARD_FEED=all, or static
        return None
    shard_id = str(probe.field("game_shard", "shard_id") or "1")
    with connect(probe.urls["DATABASE_URL"], retries=2) as conn:
        held = {g for g, a in read_assignments(conn).items() if a.shard_id == shard_id}
        ticker = next((g.pairs[0].kalshi_ticker for g in load_mappings(conn) if g.game_id in held and g.pairs), None)
    if ticker is None:
        raise ChaosUnavailable("game_shard holds no game yet: nothing it follows to send on (`arbees diagnose "
                               "game-shard`, probe shards)")
    return ticker


# -- bad input ---------------------------------------------------------------------------------------------------

#: (reason it must be counted under, label) of each bad price frame, in the order `_bad_price_frames` builds them.
_PRICE_REASONS = ["malformed", "frame_count", "malformed", "malformed", "unknown_version", "bad_value", "bad_value",
                  "bad_value", "bad_value", "oversized"]


def _bad_price_frames(make: Callable[..., Any], topic: str) -> list[list[bytes]]:
    good = encode(make("CHAOS-BAD"))
    old = msgspec.json.decode(good)
    old["v"] = 99
    t = topic.encode()
    return [
        [t, good[: len(good) // 2]],  # truncated
        [t, good, b"extra"],  # wrong frame count
        [t, b"{not json"],  # invalid JSON
        [t, b"\x93\xc1\xc1"],  # invalid msgpack
        [t, msgspec.json.encode(old)],  # unknown schema version
        [t, encode(make("CHAOS-BAD", yes_bid=-3.0))],  # negative price
        [t, encode(make("CHAOS-BAD", yes_ask=150.0, no_bid=None, no_bid_size=0.0))],  # price > 100 cents
        [t, encode(make("CHAOS-BAD", yes_bid=math.nan), "msgpack")],  # NaN (JSON cannot carry one)
        [t, encode(make("CHAOS-BAD", yes_bid_size=0.0))],  # size 0
        [t, b"{" + b" " * (MAX_PAYLOAD_BYTES + 10) + b"}"],  # oversized
    ]


def _bad_signal(src: str) -> bytes:
    leg = Leg(venue="kalshi", ticker="CHAOS-BAD", side="yes", limit_price=40.0, qty=0.0)
    sig = TradingSignal(src=src, seq=1, ts_origin_ns=1, ts_detect_ns=1, signal_id="chaos-bad", game_id="chaos",
                        legs=[leg, leg], qty=0.0, gross_edge_cents=1.0, edge_cents=1.0, edge_pct=1.0, cost_cents=99.0)
    return encode(sig)


def _rejects(probe: StackProbe, service: str) -> dict[str, int]:
    counters = probe.rt.metrics(service).get("counters", {})
    return {k.split(".", 1)[1]: int(v) for k, v in counters.items() if k.startswith("rx_rejected.")}


def _expected(reasons: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reasons:
        out[r] = out.get(r, 0) + 1
    return out


def bad_input(runtime: Any, root: Path, result: RunResult, **opts: Any) -> None:
    """Malformed frames on the real inputs of game_shard and execution_service (and zmq_listener), then a good
    message: each bad one counted under its reason, the good one processed."""
    probe = StackProbe(runtime)
    consumers = [s for s in ("game_shard", "execution_service", "zmq_listener") if s in probe.running()]
    if not probe.zmq_mode:
        consumers = [s for s in consumers if s != "zmq_listener"]
    before = {s: _rejects(probe, s) for s in consumers}
    books0 = int(probe.field("execution_service", "books") or 0)
    unmapped0 = probe.counter("game_shard", "prices_unmapped")
    followed = shard_ticker(probe)
    topic = price_topic("kalshi", followed or "CHAOS-BAD")
    good: tuple[bool, str] | None = None
    if probe.zmq_mode:
        good = _bad_input_zmq(probe, topic, followed)
    else:
        _bad_input_redis(probe, topic)
    price_reasons = _expected(_PRICE_REASONS if probe.zmq_mode else
                              ["missing_topic_field" if r == "frame_count" else r for r in _PRICE_REASONS])
    for service in consumers:
        want = dict(price_reasons)
        # the bad signals go out on the monitor's port: zmq_listener hears every family there; execution_service
        # takes signals from game_shard's port only in ZMQ mode, from signals:trades in Redis mode
        if service == "zmq_listener" or (service == "execution_service" and not probe.zmq_mode):
            want["bad_value"] = want.get("bad_value", 0) + 1
            want["malformed"] = want.get("malformed", 0) + 1

        def delta(s: str = service) -> dict[str, int]:
            now = _rejects(probe, s)
            return {r: now.get(r, 0) - before[s].get(r, 0) for r in want}

        got = eventually(lambda w=want: (lambda d: d if all(d[r] >= n for r, n in w.items()) else None)(delta()), 20,
                         raises=False)
        result.add(f"{service}: every bad frame rejected and counted by reason", bool(got),
                   ", ".join(f"{r} +{n}" for r, n in (got or delta()).items()) + f" (expected {want})")
        log_lines = probe.rt.logs(service, since_s=60).count("Rejected frame")
        result.add(f"{service}: rejects logged, rate-limited", 0 < log_lines <= 3 * len(want),
                   f"{log_lines} `Rejected frame` lines for {sum(want.values())} frames", critical=False)
    if "game_shard" in consumers and good is not None:
        result.add("game_shard processes the next good message", *good)
    elif "game_shard" in consumers:
        ok = eventually(lambda: probe.counter("game_shard", "prices_unmapped") > unmapped0, 20, raises=False)
        result.add("game_shard processes the next good message", bool(ok),
                   f"prices_unmapped {unmapped0} -> {probe.counter('game_shard', 'prices_unmapped')} "
                   "(the good price after the bad ones, on an unmapped ticker)")
    if "execution_service" in consumers:
        ok = eventually(lambda: int(probe.field("execution_service", "books") or 0) > books0, 20, raises=False)
        result.add("execution_service processes the next good message", bool(ok),
                   f"books {books0} -> {probe.field('execution_service', 'books')}")
    alive = [s for s in consumers if probe.row(s).state == "running"]
    result.add("no consumer crashed on bad input", len(alive) == len(consumers), ", ".join(alive))


def _bad_input_zmq(probe: StackProbe, topic: str, followed: str | None) -> tuple[bool, str] | None:
    """The bad frames on `topic` from the injector, then a good price: on `followed` (a market game_shard holds, a
    book no arbitrage can be made of) whose receipt is checked here, while only the injector prices Kalshi; else
    on an unmapped ticker (returns None: the caller checks it)."""
    expect = {topic: price_subscribers(probe)}  # every subscriber back, not only those checked
    with take_over_port(probe, "kalshi_monitor", expect) as pub:
        for frames in _bad_price_frames(pub.price, topic):
            pub.send_raw(*frames)
        sig_topic = signal_topic("chaos-bad").encode()
        pub.send_raw(sig_topic, _bad_signal(pub.src))
        pub.send_raw(sig_topic, b'{"v": 1, "src": "x"')
        pub.send_price(f"CHAOS-GOOD-{pub.src}")  # a new book for execution_service, which hears every market
        if followed is None:
            return None
        rx0 = probe.counter("game_shard", "prices_rx.kalshi")
        pub.send_price(followed, **WIDE_BOOK)
        pub.sync()
        ok = eventually(lambda: probe.counter("game_shard", "prices_rx.kalshi") > rx0, 20, raises=False)
        return bool(ok), (f"prices_rx.kalshi {rx0} -> {probe.counter('game_shard', 'prices_rx.kalshi')} (the good "
                          f"price after the bad ones, on {followed}, a market it holds)")


def _bad_input_redis(probe: StackProbe, topic: str) -> None:
    maker = Takeover(proc=None, src=f"chaos.{os.getpid()}")  # type: ignore[arg-type]
    client = probe.redis()
    try:
        for frames in _bad_price_frames(maker.price, topic):
            fields = {b"topic": frames[0], b"data": frames[1]} if len(frames) == 2 else {b"data": frames[1]}
            client.xadd("prices:kalshi", fields)
        sig_topic = signal_topic("chaos-bad")
        client.xadd("signals:trades", {"topic": sig_topic, "data": _bad_signal(maker.src)})
        client.xadd("signals:trades", {"topic": sig_topic, "data": b'{"v": 1, "src": "x"'})
        good = maker.price(f"CHAOS-GOOD-{maker.src}")
        client.xadd("prices:kalshi", {"topic": price_topic("kalshi", good.ticker), "data": encode(good)})
    finally:
        client.close()


# -- loss at the high-water mark -----------------------------------------------------------------------------------


def hwm(runtime: Any, root: Path, result: RunResult, **opts: Any) -> None:
    """A subscriber (game_shard) stalls while a publisher bursts past every buffer: what it misses must show up as
    `lost` through the sequence numbers (ZMQ: the HWM drops; Redis: MAXLEN trims the stream under it)."""
    probe = StackProbe(runtime)
    shard = probe.row("game_shard")
    if shard.state != "running":
        raise ChaosUnavailable("game_shard is not running")
    burst = int(opts.get("burst", 20000))
    # ZMQ: only the injector prices Kalshi meanwhile (on a market game_shard follows); Redis: unmapped prices
    seen = "prices_rx.kalshi" if probe.zmq_mode else "prices_unmapped"
    lost0, rx0 = probe.counter("game_shard", "lost"), probe.counter("game_shard", seen)
    if probe.zmq_mode:
        ticker = shard_ticker(probe)
        fields = WIDE_BOOK if ticker else {}
        with take_over_port(probe, "kalshi_monitor", {price_topic("kalshi", ticker or "CHAOS-HWM"):
                                                      price_subscribers(probe)}) as pub:
            _burst(probe, seen, rx0, burst, lambda: pub.send_price(ticker or "CHAOS-HWM", **fields), pub.sync)
    else:
        maker = Takeover(proc=None, src=f"chaos.{os.getpid()}.hwm")  # type: ignore[arg-type]
        client = probe.redis()
        topic = price_topic("kalshi", "CHAOS-HWM")
        try:
            _burst(probe, seen, rx0, burst,
                   lambda: client.xadd("prices:kalshi", {"topic": topic, "data": encode(maker.price("CHAOS-HWM"))},
                                       maxlen=1000, approximate=True))
        finally:
            client.close()
    sent = burst + 2
    lost = probe.counter("game_shard", "lost") - lost0
    rx = probe.counter("game_shard", seen) - rx0
    result.add("loss under overload is counted as lost (sequence gap), never hidden", lost > 0 and rx + lost >= sent,
               f"{sent} sent while game_shard was stalled: {lost} counted lost, {rx} prices received "
               "(received + lost covers every message sent)")
    line = "Sequence gap from chaos." in probe.rt.logs("game_shard", since_s=120)
    result.add("the loss is logged", line, "`Sequence gap from chaos... messages lost` in game_shard's log")
    result.add("game_shard survives the overload", probe.row("game_shard").state == "running",
               probe.row("game_shard").state)


def _burst(probe: StackProbe, seen: str, seen0: int, n: int, send: Callable[[], Any],
           sync: Callable[[], Any] = lambda: None) -> None:
    """First message seen (the baseline; `seen` is game_shard's counter of them, `seen0` its value before), game_shard
    frozen, `n` messages, thawed, drained, one final message. `sync` returns once everything sent so far has left
    the publisher (the injector's sends are asynchronous)."""
    send()
    sync()
    eventually(lambda: probe.counter("game_shard", seen) > seen0, 20, raises=False)
    with probe.paused("game_shard"):
        for _ in range(n):
            send()
        sync()
    last = [-1]

    def settled() -> bool:
        now = probe.counter("game_shard", seen)
        done, last[0] = now == last[0], now
        return done

    eventually(settled, 30, interval=1.0, raises=False)
    send()  # the message that reveals a gap at the tail
    sync()
    time.sleep(2.0)
    eventually(lambda: probe.counter("game_shard", seen) > last[0], 10, raises=False)
