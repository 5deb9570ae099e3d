"""The shard benchmark's failover time: kill -9 one of several shards, time until a game it held is signalled by
another (`arbees bench --shards`, arbees_core/bench/shards.py).

The rate steps' replay publisher is replaced by this process, bound on the monitors' ports: once every live shard
has subscribed again, the last shard is killed and, from that instant, both venues' books of every game it held
are published as an arbitrage (Kalshi YES and Polymarket NO at 40 cents) every PUBLISH_EVERY_S. A game reaches
another shard when the orchestrator has seen the dead shard silent for SHARD_DEAD_S and the new holder has read
the assignment; it subscribes to the game's markets, gets their last values at once and signals. The figure is
kill to the `ts_detect_ns` of the first signal of a moved game from a live shard (a SUB on every live shard).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import zmq

from arbees_core.messages import PriceUpdate, TradingSignal, decode
from arbees_core.harness import ProcessStack
from arbees_core.store.assignments import read_assignments
from arbees_core.store.db import connect
from arbees_core.store.mappings import load_mappings
from arbees_core.topics import KALSHI, POLYMARKET, Family, price_topic
from arbees_core.transport import Outbox, TransportSettings, make_publisher

PUBLISH_EVERY_S = 0.02
#: Longest wait for a moved game's signal, past SHARD_DEAD_S.
TIMEOUT_PAST_DEAD_S = 20.0


def _book(venue: str, ticker: str, yes_ask: float, no_ask: float) -> PriceUpdate:
    return PriceUpdate(src="", seq=0, ts_origin_ns=time.time_ns(), venue=venue, ticker=ticker, game_id="",  # type: ignore[arg-type]
                       outcome="", yes_bid=yes_ask - 2, yes_bid_size=100.0, yes_ask=yes_ask, yes_ask_size=100.0,
                       no_bid=no_ask - 2, no_bid_size=100.0, no_ask=no_ask, no_ask_size=100.0)


def _arb_books(pairs: list[tuple[str, str]]) -> dict[str, list[tuple[str, Any]]]:
    """Per venue, the (topic, update) of an arbitrage on every pair: YES on Kalshi + NO on Polymarket = 80 c."""
    out: dict[str, list[tuple[str, Any]]] = {KALSHI: [], POLYMARKET: []}
    for kalshi, poly in pairs:
        out[KALSHI].append((price_topic(KALSHI, kalshi), _book(KALSHI, kalshi, 40.0, 62.0)))
        out[POLYMARKET].append((price_topic(POLYMARKET, poly), _book(POLYMARKET, poly, 62.0, 40.0)))
    return out


def _victim(stack: ProcessStack, names: list[str]) -> tuple[str, set[str], list[tuple[str, str]]]:
    """The last shard, the games it holds, and their (Kalshi ticker, Polymarket token) pairs."""
    victim = names[-1]
    with connect(stack.env["DATABASE_URL"]) as conn:
        held = {g for g, a in read_assignments(conn).items() if a.shard_id == str(len(names))}
        pairs = [(p.kalshi_ticker, p.poly_token) for g in load_mappings(conn) if g.game_id in held for p in g.pairs]
    return victim, held, pairs


def _outboxes(env: dict[str, str]) -> dict[str, Outbox]:
    settings = TransportSettings(zmq_enabled=True)
    return {venue: Outbox(make_publisher(settings, int(env[f"_PORT_{venue}_monitor"])), f"bench_failover.{venue}",
                          settings.wire) for venue in (KALSHI, POLYMARKET)}


def _signal_sub(ports: list[int]) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, Family.SIGNALS.value.encode())
    for port in ports:
        sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def _first_moved(sock: zmq.Socket, games: set[str], victim_id: str) -> TradingSignal | None:
    while sock.poll(0):
        topic, payload = sock.recv_multipart()
        sig = decode(topic.decode(), payload)
        if isinstance(sig, TradingSignal) and sig.game_id in games and sig.shard_id != victim_id:
            return sig
    return None


def measure_failover(stack: ProcessStack, names: list[str], ports: list[int], dead_s: float) -> float | None:
    """Seconds from kill -9 of the last shard to the first signal of one of its games from another shard; None
    when no moved game was signalled within SHARD_DEAD_S + TIMEOUT_PAST_DEAD_S. The caller has stopped the
    replay publisher (this process binds the monitors' ports)."""
    victim, games, pairs = _victim(stack, names)
    if not games:
        return None
    outboxes = _outboxes(stack.env)
    sock = _signal_sub(ports[:-1])
    try:
        deadline = time.monotonic() + 20
        waiting = set(outboxes)
        while waiting and time.monotonic() < deadline:  # the live shards subscribed again after the swap
            waiting = {v for v in waiting if not outboxes[v].publisher.new_subscriptions()}
            time.sleep(0.05)
        kill_ns = time.time_ns()
        os.kill(stack.procs[victim].pid, signal.SIGKILL)
        until = time.monotonic() + dead_s + TIMEOUT_PAST_DEAD_S
        while time.monotonic() < until:
            for venue, items in _arb_books(pairs).items():
                outboxes[venue].publish_many(items)
                outboxes[venue].serve_late_joiners()
            first = _first_moved(sock, games, str(len(names)))
            if first is not None:
                return round((first.ts_detect_ns - kill_ns) / 1e9, 3)
            time.sleep(PUBLISH_EVERY_S)
        return None
    finally:
        sock.close(0)
        for ob in outboxes.values():
            ob.publisher.close()
