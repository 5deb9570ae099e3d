"""What position_tracker publishes: each pair's position, and its finding that selling a pair beats holding it."""

from __future__ import annotations

from typing import Literal

import msgspec

from arbees_core.messages.base import SCHEMA_VERSION, Side, Venue


class ExitLeg(msgspec.Struct, kw_only=True, gc=False):
    """Sell `qty` contracts of `side` held by leg `leg` of a pair, at no less than `limit_price` cents (the bid the
    tracker saw: the exit is only worth it at that price)."""

    leg: int
    venue: Venue
    ticker: str
    side: Side
    qty: float
    limit_price: float


class ExitSignal(msgspec.Struct, kw_only=True, gc=False):
    """position_tracker's finding that selling both legs of pair `pair_id` now beats holding them to settlement.

    Values are cents for the contracts named in `legs`: `exit_value_cents` what selling them into the bids seen
    brings after sell fees, `hold_value_cents` what they pay at settlement (100 per hedged contract),
    `gain_cents` the difference. `exit_id` is unique per decision; execution_service sells at most what the pair
    still holds, both legs the same quantity or neither.
    """

    v: int = SCHEMA_VERSION
    src: str
    seq: int
    ts_pub_ns: int = 0
    ts_detect_ns: int
    exit_id: str
    pair_id: str
    game_id: str = ""
    legs: list[ExitLeg]
    exit_value_cents: float
    hold_value_cents: float
    gain_cents: float


class PositionUpdate(msgspec.Struct, kw_only=True, gc=False):
    """One arbitrage pair's position as position_tracker sees it (published when it opens, changes, is re-marked or
    closes). qty: contracts held per leg (hedged); cost_cents: what the open contracts cost; mark_cents: what
    selling them into the current bids would bring after fees (None while a leg has no bid); hold_cents: what they
    pay at settlement; realised_pnl_cents: settled and sold so far; status: open | closed."""

    v: int = SCHEMA_VERSION
    src: str
    seq: int
    ts_pub_ns: int = 0
    ts_mark_ns: int = 0
    pair_id: str
    game_id: str = ""
    status: Literal["open", "closed"]
    open_legs: int
    qty: float
    cost_cents: float
    mark_cents: float | None = None
    hold_cents: float = 0.0
    unrealised_pnl_cents: float | None = None
    realised_pnl_cents: float = 0.0
    close_reason: str = ""
