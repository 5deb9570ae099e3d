"""position_tracker's side of the position store: marks, the pairs it reads, and the totals it reports.

`positions` rows are written by execution_service's trade writer (opens, unwinds, exits) and settled by whichever
of it and position_tracker stores a market's result first (`store/positions.record_resolutions`, idempotent).
position_tracker owns `position_marks`: one row per open leg, its value at the current bid of its side net of the
sell fee, refreshed as the books move and removed when the pair closes. The views `pair_positions` and
`market_positions` (store/schema.py) aggregate positions and marks per pair and per market.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from arbees_core.store.db import ns_to_datetime
from arbees_core.store.positions import POSITION_COLUMNS, leg_from_row
from arbees_core.strategy.exits import LegMark
from arbees_core.strategy.positions import LegPosition

_UPSERT = ("INSERT INTO position_marks (pair_id, leg, bid, value_cents, unrealised_pnl_cents, marked_at) "
           "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (pair_id, leg) DO UPDATE SET bid = EXCLUDED.bid, "
           "value_cents = EXCLUDED.value_cents, unrealised_pnl_cents = EXCLUDED.unrealised_pnl_cents, "
           "marked_at = EXCLUDED.marked_at")


def store_marks(conn: psycopg.Connection, marks: Iterable[LegMark], ts_ns: int) -> int:
    """Upsert the marks of open legs (a leg without a bid is stored with no value). Returns the rows written."""
    rows = [(m.leg.pair_id, m.leg.leg, m.bid, m.value_cents, m.unrealised_pnl_cents, ns_to_datetime(ts_ns))
            for m in marks if m.leg.open]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(_UPSERT, rows)
    return len(rows)


def drop_marks(conn: psycopg.Connection, pair_ids: Iterable[str]) -> None:
    """Forget the marks of pairs that closed (nothing of them is open to mark)."""
    ids = sorted(set(pair_ids))
    if ids:
        conn.execute("DELETE FROM position_marks WHERE pair_id = ANY(%s)", (ids,))


def pair_legs(conn: psycopg.Connection, pair_ids: Iterable[str]) -> dict[str, list[LegPosition]]:
    """Every stored leg of these pairs (open or closed), by pair."""
    out: dict[str, list[LegPosition]] = {}
    ids = sorted(set(pair_ids))
    if not ids:
        return out
    for row in conn.execute("SELECT " + ", ".join(POSITION_COLUMNS) + " FROM positions WHERE pair_id = ANY(%s)", (ids,)):
        leg = leg_from_row(row)
        out.setdefault(leg.pair_id, []).append(leg)
    return out


def realised_totals(conn: psycopg.Connection) -> tuple[int, float]:
    """(closed legs, realised P&L in cents) over every stored position: the figures come from the rows the trade
    writer stored once each, so a restart of the tracker never counts a settlement or an exit twice."""
    row = conn.execute("SELECT count(*) FILTER (WHERE closed_at IS NOT NULL), coalesce(sum(realised_pnl_cents), 0) "
                       "FROM positions").fetchone()
    return int(row[0]), float(row[1])
