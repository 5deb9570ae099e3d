"""A service's liveness and counters, published on a timer by every service."""

from __future__ import annotations

import msgspec

from arbees_core.messages.base import SCHEMA_VERSION


class Heartbeat(msgspec.Struct, kw_only=True, gc=False):
    """A service's periodic liveness and counters. `feed_live_ns` (monitors) says the venue feed was intact then,
    so a quiet market's unchanged book stays valid instead of ageing out (a failure of the original)."""

    v: int = SCHEMA_VERSION
    src: str
    seq: int
    ts_pub_ns: int = 0
    service: str
    state: str = "running"
    started_ns: int = 0
    feed_live_ns: int = 0
    counters: dict[str, float] = {}
