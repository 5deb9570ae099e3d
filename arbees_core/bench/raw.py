"""The machine's own limits: one bare pyzmq PUB/SUB hop and one bare Redis stream hop between two processes.

Same payload as the pipeline (an encoded `PriceUpdate`, JSON; or a `TradingSignal` for the signal hop's
reference), same rate, same stamping (`ts_pub_ns` = `time.time_ns()` just before the send, receive time stamped
right after the frame arrives, before decoding), and the receiver decodes every payload with msgspec as the
pipeline's Inbox does. What the pipeline adds on top of these numbers is the cost of arbees itself.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from hdrh.histogram import HdrHistogram

from arbees_core.messages import PriceUpdate, TradingSignal
from arbees_core.runtime.ports import free_port
from arbees_core.bench.common import HopRow, SeqTracker, new_histogram, row_from_histogram, sample_signal, sample_update

TOPIC = b"prices.kalshi.KXNBAGAME-26NOV24MIABOS-BOS"
END_TOPIC = b"end"
#: Longest the receiver waits for the next frame before it gives up (seconds).
IDLE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RawSpec:
    """One raw run. hwm: ZMQ SNDHWM/RCVHWM (messages; 0 = unlimited); slow_us: the receiver sleeps this long per
    message (to force drops in tests); warmup_s: messages sent in the first warmup_s are not timed; payload:
    "price" (a PriceUpdate, the price hop's) or "signal" (a TradingSignal, the signal hop's); spin: the ZMQ
    receiver polls (yielding the CPU between polls) instead of blocking, as game_shard does with ZMQ_SPIN_US."""

    mode: str  # "zmq" | "redis"
    rate: float
    duration_s: float
    redis_url: str = ""
    hwm: int = 10_000
    slow_us: int = 0
    warmup_s: float = 0.5
    payload: str = "price"
    spin: bool = False


def _pace(rate: float, duration_s: float, send) -> int:
    """Call send(i) at `rate` per second for `duration_s` on an absolute schedule; returns how many were sent."""
    total = max(1, int(rate * duration_s))
    t0 = time.perf_counter()
    for i in range(1, total + 1):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(i)
    return total


def _sender(spec: RawSpec, endpoint: str, stream: str, ready: Any, out: Any) -> None:
    msg: PriceUpdate | TradingSignal = sample_signal() if spec.payload == "signal" else sample_update()
    encode = msgspec.json.Encoder().encode
    if spec.mode == "zmq":
        import zmq

        ctx = zmq.Context()
        sock = ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.SNDHWM, spec.hwm)
        sock.setsockopt(zmq.LINGER, 2000)
        sock.bind(endpoint)
        if not sock.poll(15_000):  # the subscription frame: the subscriber is connected, no slow joiner
            out.put({"error": "no subscriber"})
            return
        sock.recv()

        def send(i: int) -> None:
            msg.seq, msg.ts_pub_ns = i, time.time_ns()
            sock.send_multipart((TOPIC, encode(msg)))

        ready.wait(15)
        sent = _pace(spec.rate, spec.duration_s, send)
        for _ in range(5):
            sock.send_multipart((END_TOPIC, b"%d" % sent))
        sock.close()
        ctx.term()
    else:
        import redis

        client = redis.Redis.from_url(spec.redis_url)

        def send(i: int) -> None:
            msg.seq, msg.ts_pub_ns = i, time.time_ns()
            client.xadd(stream, {"topic": TOPIC, "data": encode(msg)}, maxlen=10_000, approximate=True)

        ready.wait(15)
        sent = _pace(spec.rate, spec.duration_s, send)
        client.xadd(stream, {"topic": END_TOPIC, "data": b"%d" % sent})
        client.close()
    out.put({"sent": sent})


def _receiver(spec: RawSpec, endpoint: str, stream: str, ready: Any, out: Any) -> None:
    """The receiving process: decode every message (as a service would), record its one-way latency after the
    warm-up, track sequence gaps; the result goes back through `out`."""
    decode = msgspec.json.Decoder(TradingSignal if spec.payload == "signal" else PriceUpdate).decode
    hist, seqs = new_histogram(), SeqTracker()
    skip = int(spec.rate * spec.warmup_s)
    slow = spec.slow_us / 1e6

    def take(payload: bytes, recv_ns: int) -> None:
        msg = decode(payload)
        seqs.see(msg.seq)
        if msg.seq > skip:
            hist.record_value(max(1, min(60_000_000, (recv_ns - msg.ts_pub_ns) // 1000)))
        if slow:
            time.sleep(slow)

    if spec.mode == "zmq":
        _receive_zmq(spec, endpoint, ready, take)
    else:
        _receive_redis(spec, stream, ready, take)
    out.put({"hdr": hist.encode().decode("ascii") if hist.get_total_count() else "",
             "gaps": seqs.lost, "last": seqs.last or 0, "received": seqs.received})


def _receive_zmq(spec: RawSpec, endpoint: str, ready: Any, take: Any) -> None:
    """A bare SUB socket until the end marker or IDLE_TIMEOUT_S of silence (polling like game_shard with `spin`)."""
    import zmq

    from arbees_core.transport.zmq import poll_spinning  # the polling loop game_shard runs, on a bare socket

    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, spec.hwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    ready.set()

    def wait() -> bool:
        if spec.spin:
            return poll_spinning(sock, time.monotonic_ns() + int(IDLE_TIMEOUT_S * 1e9))
        return bool(sock.poll(int(IDLE_TIMEOUT_S * 1000)))

    while wait():
        topic, payload = sock.recv_multipart()
        recv_ns = time.time_ns()
        if topic == END_TOPIC:
            break
        take(payload, recv_ns)
    sock.close()
    ctx.term()


def _receive_redis(spec: RawSpec, stream: str, ready: Any, take: Any) -> None:
    """A bare blocking XREAD loop until the end marker or IDLE_TIMEOUT_S of silence; the stream is deleted after."""
    import redis

    client = redis.Redis.from_url(spec.redis_url, socket_timeout=IDLE_TIMEOUT_S + 5)
    last = b"0-0"
    ready.set()
    done = False
    while not done:
        result = client.xread({stream: last}, count=500, block=int(IDLE_TIMEOUT_S * 1000))
        if not result:
            break
        recv_ns = time.time_ns()
        for entry_id, fields in result[0][1]:
            last = entry_id
            if fields[b"topic"] == END_TOPIC:
                done = True
                break
            take(fields[b"data"], recv_ns)
    client.delete(stream)
    client.close()


def run_raw(spec: RawSpec, hop: str = "raw") -> HopRow:
    """One raw hop between two fresh processes; the row's `lost` counts sequence gaps and a missing tail."""
    hist, lost = measure_raw(spec)
    return row_from_histogram(hop, spec.mode, spec.rate, hist, lost)


def measure_raw(spec: RawSpec) -> tuple[HdrHistogram | None, int]:
    """`run_raw`'s histogram (None when nothing arrived in the timed part) and lost count, for merging runs."""
    ctx = mp.get_context("spawn")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    stream = f"bench:raw:{uuid.uuid4().hex[:8]}"
    ready, out = ctx.Event(), ctx.Queue()
    recv = ctx.Process(target=_receiver, args=(spec, endpoint, stream, ready, out), daemon=True)
    send = ctx.Process(target=_sender, args=(spec, endpoint, stream, ready, out), daemon=True)
    recv.start()
    send.start()
    results: dict[str, Any] = {}
    deadline = time.monotonic() + spec.duration_s + 60
    try:
        while len(results) < 2 and time.monotonic() < deadline:
            results.update({("recv" if "hdr" in r else "send"): r for r in [out.get(timeout=deadline - time.monotonic())]})
    finally:
        for p in (send, recv):
            p.join(5)
            if p.is_alive():
                p.terminate()
    r = results.get("recv", {})
    if not r:
        raise RuntimeError(f"raw {spec.mode} hop: receiver reported nothing ({results})")
    from arbees_core.telemetry.metrics import decode_histogram

    hist = decode_histogram(r["hdr"]) if r["hdr"] else None
    sent = int(results.get("send", {}).get("sent", r["last"]))
    return hist, int(r["gaps"]) + max(0, sent - int(r["last"]))  # gaps, plus a tail the receiver never saw
