"""A publisher in a stopped publisher's place: binds its port, waits for its subscribers, sends what it is told.

Run as a process of its own (`python -m arbees_core.validation.chaos.injector --bind tcp://127.0.0.1:5555`), on the
host for the local runtime or in a container answering to the publisher's name under compose, so the same chaos
scenario reaches the subscribers' real SUB sockets on either runtime.

Protocol: the subscriptions it must see first are given as `--expect <prefix>=<count>` (a shorter prefix that
covers one counts: game_shard subscribes by topic class, `prices.`). It then prints `READY` on stdout and reads
stdin: one message per line, its frames hex-encoded and separated by spaces; `SYNC` is answered `SYNCED <n>` once
every message before it is sent; `END` (or end of input) lets queued frames leave and exits 0. Exit 3 with `MISSING <json>` when the subscribers did not all subscribe within
`--timeout`; exit 4 with `BIND <reason>` when the port cannot be bound.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import zmq


def covering(seen: dict[str, int], prefix: str) -> int:
    """Subscriptions that deliver `prefix`: every subscribed prefix it starts with."""
    return sum(n for sub, n in seen.items() if prefix.startswith(sub))


def await_subscribers(sock: zmq.Socket, expect: dict[str, int], timeout_s: float) -> dict[str, int]:
    """Read XPUB subscription frames until `expect` is covered; returns what is still missing (empty: ready)."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    while any(covering(seen, k) < n for k, n in expect.items()) and time.monotonic() < deadline:
        if sock.poll(200):
            frame = sock.recv()
            if frame[:1] == b"\x01":
                prefix = frame[1:].decode(errors="replace")
                seen[prefix] = seen.get(prefix, 0) + 1
    return {k: n - covering(seen, k) for k, n in expect.items() if covering(seen, k) < n}


def relay(sock: zmq.Socket, lines: object) -> int:
    """Send each line's frames until `END`, answering `SYNC`; returns how many messages were sent."""
    sent = 0
    for line in lines:  # type: ignore[attr-defined]
        text = line.strip()
        if text == "END":
            break
        if text == "SYNC":
            print(f"SYNCED {sent}", flush=True)
        elif text:
            sock.send_multipart([bytes.fromhex(part) for part in text.split(" ")])
            sent += 1
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="injector", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", required=True, help="endpoint to bind, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--expect", action="append", default=[], help="PREFIX=COUNT subscriptions to wait for")
    parser.add_argument("--sndhwm", type=int, default=1000, help="send high-water mark (messages)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the subscribers")
    args = parser.parse_args(argv)
    expect = {k: int(v) for k, _, v in (e.rpartition("=") for e in args.expect)}
    sock = zmq.Context.instance().socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.setsockopt(zmq.SNDHWM, args.sndhwm)
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    try:
        sock.bind(args.bind)
    except zmq.ZMQError as e:
        print(f"BIND {e.strerror}", flush=True)
        return 4
    missing = await_subscribers(sock, expect, args.timeout)
    if missing:
        print(f"MISSING {json.dumps(missing)}", flush=True)
        sock.close(0)
        return 3
    print("READY", flush=True)
    sent = relay(sock, sys.stdin)
    time.sleep(0.5)  # let queued frames leave before the socket closes
    sock.close()
    print(f"SENT {sent}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
