"""Push to browsers: one bounded queue per client, filled by one task; a slow browser only loses its own updates.

Every `push_ms` the push task takes what changed (games whose books moved, new signals, new or completed trades)
and, once a second, the slower panels (latency, rates, health, positions, the api's own status). It encodes that
update once and offers it to every client's queue without waiting. A full queue (a browser that stopped reading)
drops the update, counts it (`updates_dropped`, per client and for the service) and marks the client for a
resync: the next time its queue has room it gets a whole snapshot instead of an update, so what it shows is never
wrong for long, only late. Nothing here ever waits on a client, and nothing here touches the pipeline: the feed
thread fills the state whatever the browsers do.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from arbees_core.dashboard.models import ApiStatus
from arbees_core.dashboard.state import LiveState
from arbees_core.telemetry.metrics import Metrics

log = logging.getLogger("api")

#: The slower panels go out once per this many pushes' worth of time.
SLOW_PANELS_EVERY_S = 1.0


@dataclass
class Client:
    """One connected browser (an SSE stream): its queue of (event, JSON text), what it missed."""

    id: int
    queue: asyncio.Queue[tuple[str, str]]
    dropped: int = 0
    resync: bool = False
    connected_s: float = field(default_factory=time.monotonic)


class Hub:
    """The clients and the push task."""

    def __init__(self, state: LiveState, metrics: Metrics, status: Callable[[], ApiStatus], push_ms: float,
                 queue_size: int) -> None:
        self.state, self.metrics, self.status = state, metrics, status
        self.push_s = push_ms / 1000.0
        self.queue_size = queue_size
        self.clients: dict[int, Client] = {}
        self._ids = itertools.count(1)
        self._last_slow = 0.0

    def snapshot_event(self) -> tuple[str, str]:
        return "snapshot", self.state.snapshot(self.status()).model_dump_json()

    def subscribe(self) -> Client:
        """A new client, its queue starting with a whole snapshot (the late joiner gets the current state at once)."""
        client = Client(next(self._ids), asyncio.Queue(maxsize=self.queue_size))
        client.queue.put_nowait(self.snapshot_event())
        self.clients[client.id] = client
        self.metrics.gauges["clients"] = len(self.clients)
        return client

    def unsubscribe(self, client: Client) -> None:
        self.clients.pop(client.id, None)
        self.metrics.gauges["clients"] = len(self.clients)

    def update_event(self) -> tuple[str, str] | None:
        """The changes since the previous push (None when nothing changed and no slow panel is due)."""
        games, signals, trades = self.state.changes()
        body: dict = {}
        if games:
            body["games"] = [g.model_dump(mode="json") for g in games]
        if signals:
            body["signals"] = [s.model_dump(mode="json") for s in signals]
        if trades:
            body["trades"] = [t.model_dump(mode="json") for t in trades]
        now = time.monotonic()
        if now - self._last_slow >= SLOW_PANELS_EVERY_S:
            self._last_slow = now
            latency, rates = self.state.windows()
            body.update(latency=latency.model_dump(mode="json"), rates=rates.model_dump(mode="json"),
                        health=[h.model_dump(mode="json") for h in self.state.health],
                        positions=self.state.positions.model_dump(mode="json"),
                        api=self.status().model_dump(mode="json"))
        if not body:
            return None
        body["ts_ns"] = time.time_ns()
        return "update", orjson.dumps(body).decode()

    def offer(self, event: tuple[str, str]) -> None:
        """Give `event` to every client without waiting: a full queue drops it and marks the client for resync."""
        snapshot: tuple[str, str] | None = None
        for client in list(self.clients.values()):
            if client.resync and client.queue.qsize() < self.queue_size:
                snapshot = snapshot or self.snapshot_event()
                client.queue.put_nowait(snapshot)
                client.resync = False
                continue
            try:
                client.queue.put_nowait(event)
            except asyncio.QueueFull:
                client.dropped += 1
                client.resync = True
                self.metrics.inc("updates_dropped")

    async def run(self) -> None:
        """The push task (until cancelled)."""
        while True:
            await asyncio.sleep(self.push_s)
            try:
                event = self.update_event()
            except Exception:  # noqa: BLE001 - a bad update must not end the pushes for everyone
                log.exception("Building a dashboard update failed")
                continue
            if event is not None:
                self.offer(event)
