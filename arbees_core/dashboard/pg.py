"""What the api reads from PostgreSQL: recent paper trades (its history at start) and positions.

Positions belong to the position store (`positions`, one row per leg of an executed signal; its writer owns the
schema). The api only reads them. An open leg shows position_tracker's mark (`position_marks`: the bid of its side
net of the sell fee, what closing it would really bring) while that mark is fresh, else the api's own mark at the
live bid; when the table does not exist the panel says so ("position tracker not running") instead of showing
anything made up.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from arbees_core.dashboard.models import PositionLeg, PositionsView
from arbees_core.messages import TradeResult

#: Columns the positions panel needs, and the ones it uses when present.
POSITION_COLUMNS = ("pair_id", "leg", "game_id", "venue", "ticker", "side", "qty", "cost_cents",
                    "realised_pnl_cents", "opened_at", "closed_at")
OPTIONAL_POSITION_COLUMNS = ("exited_qty", "close_reason")
NOT_RUNNING = "position tracker not running: PostgreSQL has no positions table"
#: Legs listed: every open one, and the most recently opened closed ones, up to this many rows.
MAX_POSITION_ROWS = 300
#: A tracker's mark older than this (seconds) is not shown: the tracker is behind or stopped.
TRACKER_MARK_FRESH_S = 10.0

_RESULT_COLUMNS = ("order_id", "signal_id", "game_id", "leg", "venue", "ticker", "side", "status", "limit_price",
                   "qty", "filled_qty", "avg_price", "fees_cents", "transport", "ts_origin_ns", "ts_fill_ns",
                   "price_latency_ms", "signal_latency_ms", "execution_latency_ms", "latency_ms")

BestBid = Callable[[str, str, str], "float | None"]


def recent_results(conn: psycopg.Connection, limit_signals: int) -> list[TradeResult]:
    """The paper fills of the last `limit_signals` executed signals, oldest first, as trade results."""
    rows = conn.execute(
        f"SELECT {', '.join(_RESULT_COLUMNS)} FROM paper_trades WHERE signal_id IN "
        "(SELECT signal_id FROM executed_signals ORDER BY executed_at DESC LIMIT %s) ORDER BY ts_fill_ns, leg",
        (limit_signals,)).fetchall()
    out = []
    for row in rows:
        values = dict(zip(_RESULT_COLUMNS, row))
        out.append(TradeResult(src="history", seq=0, **values))
    return out


def _columns(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = 'positions'").fetchall()
    return {r[0] for r in rows}


def read_positions(conn: psycopg.Connection, best_bid: BestBid) -> PositionsView:
    """The position store's legs and totals, open legs marked at the best bid of their side (`best_bid`)."""
    if conn.execute("SELECT to_regclass('positions')").fetchone()[0] is None:
        return PositionsView(available=False, status=NOT_RUNNING)
    present = _columns(conn)
    missing = [c for c in POSITION_COLUMNS if c not in present]
    if missing:
        return PositionsView(available=False, status=f"positions table lacks {', '.join(missing)}: this api reads "
                             f"{', '.join(POSITION_COLUMNS)}")
    optional = [c for c in OPTIONAL_POSITION_COLUMNS if c in present]
    cols = [*POSITION_COLUMNS, *optional]
    marks = conn.execute("SELECT to_regclass('position_marks')").fetchone()[0] is not None
    select = ", ".join(f"p.{c}" for c in cols)
    if marks:
        select += (", m.value_cents AS tracker_mark, m.unrealised_pnl_cents AS tracker_unrealised FROM positions p "
                   "LEFT JOIN position_marks m ON m.pair_id = p.pair_id AND m.leg = p.leg AND "
                   f"m.marked_at > now() - make_interval(secs => {TRACKER_MARK_FRESH_S})")
        cols = [*cols, "tracker_mark", "tracker_unrealised"]
    else:
        select += " FROM positions p"
    rows = conn.execute(f"SELECT {select} ORDER BY (p.closed_at IS NULL) DESC, p.opened_at DESC LIMIT %s",
                        (MAX_POSITION_ROWS,)).fetchall()
    totals = conn.execute("SELECT count(*) FILTER (WHERE closed_at IS NULL), "
                          "coalesce(sum(cost_cents) FILTER (WHERE closed_at IS NULL), 0), "
                          "coalesce(sum(realised_pnl_cents), 0) FROM positions").fetchone()
    legs = [_leg(dict(zip(cols, row)), best_bid) for row in rows]
    open_legs = [leg for leg in legs if not leg.closed]
    unrealised = None
    if open_legs and all(leg.unrealised_pnl_cents is not None for leg in open_legs):
        unrealised = round(sum(leg.unrealised_pnl_cents or 0.0 for leg in open_legs), 4)
    return PositionsView(available=True, status=f"{totals[0]} open legs", open_legs=int(totals[0]),
                         open_cost_cents=round(float(totals[1]), 4), realised_pnl_cents=round(float(totals[2]), 4),
                         unrealised_pnl_cents=unrealised, legs=legs)


def _leg(row: dict, best_bid: BestBid) -> PositionLeg:
    qty = float(row["qty"])  # what the leg holds: bought less sold (`strategy/positions.LegPosition`)
    open_qty = 0.0 if row["closed_at"] is not None else qty
    cost = float(row["cost_cents"])  # of the contracts held
    mark = unrealised = None
    source = ""
    if open_qty > 0 and row.get("tracker_mark") is not None:
        mark, unrealised, source = round(row["tracker_mark"], 4), round(row["tracker_unrealised"], 4), "tracker"
    elif open_qty > 0:
        bid = best_bid(row["venue"], row["ticker"], row["side"])
        if bid is not None:
            mark, source = round(open_qty * bid, 4), "api"
            unrealised = round(mark - cost, 4)
    return PositionLeg(pair_id=row["pair_id"], leg=int(row["leg"]), game_id=row["game_id"], venue=row["venue"],
                       ticker=row["ticker"], side=row["side"], qty=qty, open_qty=open_qty, cost_cents=cost,
                       realised_pnl_cents=float(row["realised_pnl_cents"] or 0.0), mark_cents=mark,
                       unrealised_pnl_cents=unrealised, mark_source=source, closed=row["closed_at"] is not None,
                       close_reason=row.get("close_reason") or "")
