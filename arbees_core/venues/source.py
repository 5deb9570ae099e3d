"""Where a monitor's raw venue frames come from, and what it asks of that source.

`<VENUE>_SOURCE` picks it: the simulator (venues/sim.py), a recording (venues/replay.py) or the venue's live
WebSocket (venues/<venue>/ws.py, through the registry). All three are a `VenueSource`, so the monitor runs the
same parser and books on each and never asks which one it has.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from arbees_core.config import ConfigError


class VenueSource(Protocol):
    """A source of raw venue frames, as the monitor uses it. `connects`: connections made so far (a new one voids
    the books of the previous; 0 for a source without connections); `connected`: up now; `intact(now_ns)`:
    connected with its keep-alive current; `gauges()`: connection counters the monitor exports as
    `venue_<name>`; `stream_batches`: the frames of each read together."""

    connects: int

    @property
    def connected(self) -> bool: ...

    def intact(self, now_ns: int) -> bool: ...

    def stats(self) -> dict[str, Any]: ...

    def gauges(self) -> dict[str, int]: ...

    def stream_batches(self, stop: asyncio.Event | None = None) -> AsyncIterator[list[bytes]]: ...


# -- source selection ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    """`<VENUE>_SOURCE`: `sim` (default), `live`, or `replay:<file>[@<speed>x]` (speed 1 by default; `0x` or
    `maxx`/`max` = as fast as possible)."""

    kind: str = "sim"
    path: str = ""
    speed: float = 1.0

    def describe(self) -> str:
        if self.kind == "replay":
            return f"replay:{self.path}@{'max' if self.speed <= 0 else f'{self.speed:g}x'}"
        return self.kind


def parse_source(text: str, var: str) -> SourceSpec:
    """Parse a `<VENUE>_SOURCE` value; a ConfigError names the variable and the accepted forms."""
    value = (text or "sim").strip()
    if value in ("sim", "live"):
        return SourceSpec(value)
    if value.startswith("replay:") and len(value) > len("replay:"):
        body = value[len("replay:"):]
        head, sep, tail = body.rpartition("@")
        rate = tail.lower()
        rate = "max" if rate in ("max", "maxx") else rate.removesuffix("x")
        if sep and head and (rate == "max" or _is_number(rate)):
            speed = 0.0 if rate == "max" else float(rate)
            if speed < 0:
                raise ConfigError(f"{var}={value!r}: the replay speed cannot be negative")
            return SourceSpec("replay", head, speed)
        return SourceSpec("replay", body, 1.0)
    raise ConfigError(f"{var}={value!r}: expected sim, live, or replay:<file>[@<speed>x]")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
