"""Is the venue connection still working? Its keep-alive says so even when the market is quiet.

A quiet market sends no data, so the time of the last data frame says nothing about the connection. Each venue
has a keep-alive that does: Kalshi sends a WebSocket Ping frame (body `heartbeat`) every 10 s; Polymarket answers
the text `PING` we send every `POLYMARKET_PING_S` with `PONG`. `KeepAlive` keeps the time of the last sign of
life (a keep-alive, any other frame, a pong to our own protocol ping, or the connection opening) and calls the
connection intact while that is at most one interval plus `GRACE` of it old (plus one receive poll, the loop's
granularity). `WatchedConnection` reports the control frames that the WebSocket library answers by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode

#: How late a keep-alive may be, as a share of its interval (network and scheduling), before the feed is not intact.
GRACE: Final = 0.5


class WatchedConnection(ClientConnection):
    """A client connection that calls `on_control(opcode)` for every Ping or Pong frame the server sends."""

    def __init__(self, *args: Any, on_control: Callable[[Opcode], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_control = on_control

    def process_event(self, event: Any) -> None:
        super().process_event(event)
        if isinstance(event, Frame) and event.opcode in (Opcode.PING, Opcode.PONG):
            self._on_control(event.opcode)


@dataclass
class KeepAlive:
    """interval_s: how often the venue's keep-alive arrives, seconds; slack_s: the read loop's granularity, seconds.
    last_ns: the last sign of life (ns since the epoch); received: keep-alives seen; misses: times it went
    overdue while connected; overdue: whether it is overdue now (as last checked)."""

    interval_s: float
    slack_s: float = 0.0
    last_ns: int = 0
    received: int = 0
    misses: int = 0
    overdue: bool = False

    @property
    def window_ns(self) -> int:
        """How old the last sign of life may be for the connection to count as intact, ns."""
        return int((self.interval_s * (1.0 + GRACE) + self.slack_s) * 1e9)

    def alive(self, keepalive: bool, now_ns: int | None = None) -> None:
        """A sign of life now: a keep-alive (counted) or any other frame from the venue."""
        self.last_ns = time.time_ns() if now_ns is None else now_ns
        self.received += keepalive

    def fresh(self, now_ns: int) -> bool:
        return now_ns - self.last_ns <= self.window_ns

    def check(self, now_ns: int) -> bool | None:
        """True when the keep-alive just became overdue (counted in `misses`), False when it just came back,
        None when nothing changed."""
        overdue = not self.fresh(now_ns)
        if overdue == self.overdue:
            return None
        self.overdue = overdue
        self.misses += overdue
        return overdue
