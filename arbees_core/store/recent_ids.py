"""The in-memory half of execution's idempotency: the signal ids executed recently, bounded by age and count.

Durable idempotency is PostgreSQL's (`executed_signals` is keyed by the signal id, and the writer skips a signal
already there) and the spool's. In memory only a recent window is kept, so the set does not grow with every
signal ever traded: an id leaves it once it is older than `window_s` or when `capacity` newer ids have come
after it (oldest first). `horizon_ns` is when the newest id that left was added: a signal detected after it that
is not in the window was never executed here; one detected at or before it might have been, so execution refuses
it (`beyond_window`) rather than risk a second trade. The window's age bound is at least SIGNAL_MAX_AGE_MS, so
such a signal is one execution would have refused as expired anyway.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

#: Defaults of EXECUTED_IDS_WINDOW_S and EXECUTED_IDS_MAX (execution_service).
DEFAULT_WINDOW_S = 600.0
DEFAULT_CAPACITY = 100_000


class RecentIds:
    """Ids with the wall-clock time (ns) each was added, oldest first; see the module docstring."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, capacity: int = DEFAULT_CAPACITY,
                 clock_ns=time.time_ns) -> None:
        if window_s <= 0 or capacity <= 0:
            raise ValueError("window_s and capacity must be positive")
        self.window_ns = int(window_s * 1e9)
        self.capacity = capacity
        self.horizon_ns = 0
        self._clock = clock_ns
        self._ids: OrderedDict[str, int] = OrderedDict()

    def __contains__(self, signal_id: object) -> bool:
        return signal_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, signal_id: str, at_ns: int | None = None) -> None:
        """Remember `signal_id` as executed at `at_ns` (default now), then drop what the bounds exclude."""
        now = self._clock()
        at = now if at_ns is None else min(int(at_ns), now)
        if signal_id in self._ids:
            return
        self._ids[signal_id] = at
        self.prune(now)

    def update(self, signal_ids: Iterable[str], at_ns: int | None = None) -> None:
        """Ids executed before (the spool's, the database's), as of `at_ns` (default now: the safe side)."""
        for signal_id in signal_ids:
            self.add(signal_id, at_ns)

    def prune(self, now_ns: int | None = None) -> int:
        """Drop ids older than the window and beyond the capacity; returns how many left."""
        now = self._clock() if now_ns is None else now_ns
        dropped = 0
        while self._ids:
            signal_id, at = next(iter(self._ids.items()))
            if len(self._ids) <= self.capacity and now - at <= self.window_ns:
                break
            del self._ids[signal_id]
            self.horizon_ns = max(self.horizon_ns, at)
            dropped += 1
        return dropped

    def maybe_seen(self, signal_id: str, detected_ns: int) -> bool:
        """True when `signal_id` is in the window, or was detected no later than the window's horizon (it may have
        been executed and dropped since): either way it must not trade."""
        return signal_id in self._ids or (self.horizon_ns > 0 and 0 < detected_ns <= self.horizon_ns)
