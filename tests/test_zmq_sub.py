"""`zmq-sub`, the plan's manual ZMQ test (`docker run --rm --network arbees-network zmqtools zmq-sub
tcp://kalshi_monitor:5555`): a stream of `<topic> <json>` lines from a real publisher, and a clean stop on SIGTERM
(as a container's PID 1 it would otherwise ignore it)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import zmq

from arbees_core.messages import PriceUpdate, encode
from arbees_core.polling import eventually
from arbees_core.runtime.ports import free_port


def _price(seq: int) -> PriceUpdate:
    now = time.time_ns()
    return PriceUpdate(src="test", seq=seq, ts_origin_ns=now, ts_pub_ns=now, venue="kalshi", ticker="KXTEST-A",
                       game_id="g", outcome="A", yes_bid=40.0, yes_bid_size=5.0, yes_ask=42.0, yes_ask_size=5.0,
                       no_bid=58.0, no_bid_size=5.0, no_ask=60.0, no_ask_size=5.0)


def _run(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "arbees_cli.zmq_sub", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_zmq_sub_prints_a_stream_of_messages_from_a_publisher() -> None:
    port = free_port()
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.bind(f"tcp://127.0.0.1:{port}")
    proc = _run(f"tcp://127.0.0.1:{port}", "--count", "3", "--timeout", "30")
    try:
        seq = [0]

        def send_until_done() -> bool:
            seq[0] += 1
            for fmt in ("json", "msgpack"):
                pub.send_multipart([b"prices.kalshi.KXTEST-A", encode(_price(seq[0]), fmt)])
            return proc.poll() is not None

        eventually(send_until_done, timeout=30, interval=0.1, what="zmq-sub received 3 messages")
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
        pub.close(0)
    assert proc.returncode == 0
    lines = out.splitlines()
    assert len(lines) == 3
    for line in lines:
        topic, _, payload = line.partition(" ")
        assert topic == "prices.kalshi.KXTEST-A"
        body = json.loads(payload)  # JSON whatever the wire: MessagePack frames are decoded through the contract
        assert body["ticker"] == "KXTEST-A" and body["yes_ask"] == 42.0


def test_zmq_sub_stops_on_sigterm_and_says_nothing_arrived() -> None:
    proc = _run(f"tcp://127.0.0.1:{free_port()}")
    assert "subscribed to every topic" in proc.stderr.readline()  # its handler is in place from here on
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 1  # stopped, and exit 1: no message arrived
