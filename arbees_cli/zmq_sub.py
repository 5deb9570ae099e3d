"""`zmq-sub ENDPOINT...`: print what a ZMQ publisher sends, one `<topic> <payload>` line per message.

The plan's manual test of a publisher (`docker run --rm --network arbees-network zmqtools zmq-sub
tcp://kalshi_monitor:5555`, "Expected: Stream of messages"). Payloads are shown as JSON whatever the wire
(`ARBEES_WIRE=msgpack` frames are decoded through the contract), so the output can be piped to grep or jq.
"""

from __future__ import annotations

import sys

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


def _as_json(topic: str, payload: bytes) -> str:
    """The payload as one JSON line: JSON frames as they came, MessagePack ones decoded through the contract."""
    if payload[:1] in (b"{", b"["):
        return payload.decode("utf-8", errors="replace")
    import msgspec

    from arbees_core.messages import decode

    try:
        return msgspec.json.encode(decode(topic, payload)).decode()
    except Exception as e:  # noqa: BLE001 - show what could not be decoded rather than stop the stream
        return f'{{"undecodable": "{type(e).__name__}", "bytes": {len(payload)}}}'


@app.command()
def subscribe(
    endpoints: list[str] = typer.Argument(..., help="Publisher endpoints, e.g. tcp://kalshi_monitor:5555"),
    topic: str = typer.Option("", "--topic", "-t", help="Topic prefix to subscribe to (default: everything)"),
    count: int = typer.Option(0, "--count", "-n", min=0, help="Stop after N messages (0: run until Ctrl-C)"),
    timeout: float = typer.Option(0.0, "--timeout", min=0.0,
                                  help="Give up after this many seconds without a message (0: wait forever); "
                                       "exit code 1 when nothing arrived at all"),
) -> None:
    """Subscribe to ZMQ publishers and print each message as `<topic> <json payload>`."""
    import signal

    import zmq

    # As a container's PID 1 (`docker run ... zmq-sub`) a process ignores SIGTERM unless it handles it: stop on it.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt_string(zmq.SUBSCRIBE, topic)
    for endpoint in endpoints:
        sock.connect(endpoint)
    seen = 0
    try:  # from the line on: a SIGTERM right after it must still end in the handler below, not in a traceback
        print(f"zmq-sub: subscribed to {topic or 'every topic'} on {', '.join(endpoints)}", file=sys.stderr, flush=True)
        while not count or seen < count:
            if timeout and not sock.poll(int(timeout * 1000)):
                break
            frames = sock.recv_multipart()
            name = frames[0].decode("utf-8", errors="replace")
            print(f"{name} {_as_json(name, frames[-1])}", flush=True)
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    raise typer.Exit(0 if seen else 1)


def main() -> None:
    app(prog_name="zmq-sub")


if __name__ == "__main__":
    sys.exit(main())
