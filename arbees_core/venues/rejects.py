"""Venue frames a feed cannot use: counted per reason, logged as one rate-limited WARNING per reason.

A venue that changes its schema (a legacy `price_change`, a new event type) sends the same kind of frame many times
a second; an ERROR line for each would drown the log and page someone for what the counters already show. The
first frame of each reason is logged with its detail, then at most one line per `LOG_EVERY_S` per reason, saying
how many were held back.
"""

from __future__ import annotations

import logging
from typing import Final

from arbees_core.telemetry.logs import RateLimiter

#: At most one line per reason this often, seconds (the first one at once).
LOG_EVERY_S: Final = 60.0


class FrameRejects:
    """counts: reason -> frames rejected (the feed's `errors` in its stats)."""

    def __init__(self, venue: str, log: logging.Logger) -> None:
        self.venue = venue
        self.log = log
        self.counts: dict[str, int] = {}
        self._limiter = RateLimiter(1.0 / LOG_EVERY_S, burst=1)

    def reject(self, reason: str, detail: str) -> None:
        """Count one rejected frame under `reason`; log it when the rate limit allows."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if self._limiter.allow(reason):
            held = self._limiter.take_suppressed(reason)
            self.log.warning("%s frame skipped (%s): %s (%d so far%s)", self.venue, reason, detail,
                             self.counts[reason], f", {held} not logged since the last line" if held else "")
