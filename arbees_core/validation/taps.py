"""ZMQ taps: what a check reads instead of a Redis stream when the stack runs without zmq_listener (ZMQ only).

In ZMQ mode the services publish only on ZMQ; the streams get their entries from zmq_listener's mirror. With the
mirror stopped (the plan's week 3: "test without zmq_listener") a check that reads `prices:kalshi` would see a
stream that stopped growing and blame the pipeline. Such a check subscribes to the stream's publisher instead (a
tap: a SUB socket of its own, like the plan's `zmq-sub` tool) and says so in its evidence.

Locally a tap connects to 127.0.0.1:<port>; under compose it runs `zmq-sub` inside a container of the stack (the
publishers' ports are reachable only on arbees-network), as the plan's manual test does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env, read_dotenv
from arbees_core.registry import spec
from arbees_core.topics import (
    EXECUTION_SERVICE, GAME_SHARD, KALSHI_MONITOR, POLYMARKET_MONITOR, STREAM_FAMILY, ZMQ_LISTENER, Family,
)

#: The publisher of each stream's family (heartbeats come from every publisher: no single tap).
PUBLISHER: dict[Family, str] = {Family.PRICES_KALSHI: KALSHI_MONITOR, Family.PRICES_POLY: POLYMARKET_MONITOR,
                                Family.SIGNALS: GAME_SHARD, Family.RESULTS: EXECUTION_SERVICE}


@dataclass
class TapResult:
    """What a tap saw: messages as (topic, JSON body), where from (`source`), and why it saw nothing (`error`)."""

    source: str
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    @property
    def live(self) -> int:
        """Messages that are not last-value replays (`snapshot`): evidence that data is flowing now."""
        return sum(1 for _, body in self.messages if not body.get("snapshot"))


def mirror_absent(runtime: Any, root: Path) -> str:
    """Why the streams get no new entries (ZMQ mode, zmq_listener not running), or "" when they do (the mirror runs,
    or Redis mode, where the services write the streams themselves)."""
    try:
        zmq_mode = Env({**read_dotenv(root / ".env")}).get(S.ZMQ_ENABLED)
    except ConfigError:
        return ""
    if not zmq_mode:
        return ""
    listener = next((s for s in runtime.status() if s.name == ZMQ_LISTENER), None)
    if listener is not None and listener.state == "running":
        return ""
    state = listener.state if listener is not None else "missing"
    return f"ZMQ-only: zmq_listener is {state}, so no Redis mirror"


def stream_publisher(stream: str) -> str | None:
    """The service that publishes what `stream` mirrors, None for a stream without a single publisher."""
    fam = STREAM_FAMILY.get(stream)
    return PUBLISHER.get(fam) if fam is not None else None


def tap(runtime: Any, stream: str, port: int | None, want: int, timeout_s: float, live: bool = False) -> TapResult:
    """Subscribe to the publisher of `stream`'s family until `want` messages (`live`: not counting last-value
    replays) or `timeout_s` seconds."""
    publisher = stream_publisher(stream)
    fam = STREAM_FAMILY.get(stream)
    if publisher is None or fam is None or port is None:
        return TapResult(source=f"no ZMQ tap for {stream}", error=f"{stream} has no single ZMQ publisher")
    if runtime.kind == "local":
        return _tap_local(f"tcp://127.0.0.1:{port}", fam.value, want, timeout_s, live)
    return _tap_exec(runtime, f"tcp://{spec(publisher).name}:{port}", fam.value, want, timeout_s)


def _tap_local(endpoint: str, prefix: str, want: int, timeout_s: float, live: bool) -> TapResult:
    import zmq

    result = TapResult(source=f"ZMQ tap on {endpoint}")
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt_string(zmq.SUBSCRIBE, prefix)
    t0 = time.monotonic()
    try:
        sock.connect(endpoint)
        while (result.live if live else len(result.messages)) < want:
            left = timeout_s - (time.monotonic() - t0)
            if left <= 0 or not sock.poll(int(left * 1000)):
                break
            topic, payload = sock.recv_multipart()[:2]
            result.messages.append((topic.decode(errors="replace"), _body(topic.decode(errors="replace"), payload)))
    finally:
        sock.close(0)
        result.seconds = round(time.monotonic() - t0, 2)
    return result


def _body(topic: str, payload: bytes) -> dict[str, Any]:
    """A payload as a dict: JSON as it came, MessagePack through the contract."""
    if payload[:1] == b"{":
        return json.loads(payload)
    import msgspec

    from arbees_core.messages import decode

    return msgspec.to_builtins(decode(topic, payload))


def _tap_exec(runtime: Any, endpoint: str, prefix: str, want: int, timeout_s: float) -> TapResult:
    """`zmq-sub` inside a running container of the stack (compose), its output lines parsed."""
    runner = next((s.name for s in runtime.status() if s.state == "running" and s.name != ZMQ_LISTENER), None)
    result = TapResult(source=f"ZMQ tap (zmq-sub in {runner}) on {endpoint}")
    if runner is None:
        result.error = "no running container to run zmq-sub in"
        return result
    t0 = time.monotonic()
    code, out = runtime.exec(runner, ["zmq-sub", endpoint, "--topic", prefix, "--count", str(want),
                                      "--timeout", str(max(1, round(timeout_s)))])
    result.seconds = round(time.monotonic() - t0, 2)
    for line in out.splitlines():
        topic, _, body = line.partition(" ")
        if topic.startswith(prefix) and body.startswith("{"):
            result.messages.append((topic, json.loads(body)))
    if code != 0 and not result.messages:
        result.error = f"zmq-sub exited {code}: {out.strip()[-200:]}"
    return result
