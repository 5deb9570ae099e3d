"""What every message of the contract shares: the schema version, the payload limit and the value sets of its
fields (venues, sides, statuses)."""

from __future__ import annotations

from typing import Final, Literal

SCHEMA_VERSION: Final = 1
#: Largest payload accepted from the wire; the plan asks for < 10 KB per message, we allow headroom.
MAX_PAYLOAD_BYTES: Final = 64 * 1024

Venue = Literal["kalshi", "polymarket"]
Side = Literal["yes", "no"]
FillStatus = Literal["filled", "partial", "cancelled", "rejected"]
Action = Literal["buy", "sell"]
#: How a binary contract settled: YES paid 100 cents, NO paid 100 cents, or voided (every position refunded at cost).
MarketResult = Literal["yes", "no", "void"]
