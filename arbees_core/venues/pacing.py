"""Pacing for venue sources that are not sockets (the simulator, recordings): they must still let the loop run.

A socket source suspends whenever its buffer is empty, so the monitor's other coroutines (housekeeping, late
joiners, the stop request) get their turn. A generated or recorded source that has fallen behind its schedule
has a frame due at every step and would never suspend: the monitor then ignores SIGTERM until it is killed, and
its heartbeats stop while it is busiest. `LoopTurns` hands the loop a turn every few milliseconds of such a run.
"""

from __future__ import annotations

import asyncio
import time

#: Longest stretch a source that never needs to sleep runs without giving the event loop a turn.
TURN_EVERY_S = 0.005


class LoopTurns:
    """Tracks when the source last suspended; `take` yields to the loop when that is `every_s` ago or more."""

    def __init__(self, every_s: float = TURN_EVERY_S) -> None:
        self.every_s = every_s
        self._last = time.monotonic()

    def suspended(self) -> None:
        """The source just awaited something real (a paced sleep): the loop had its turn."""
        self._last = time.monotonic()

    async def take(self, now: float | None = None) -> bool:
        """Give the loop a turn if the source has not suspended for `every_s`; True when it did."""
        now = time.monotonic() if now is None else now
        if now - self._last < self.every_s:
            return False
        await asyncio.sleep(0)
        self._last = time.monotonic()
        return True
