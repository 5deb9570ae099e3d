"""Positions per arbitrage pair and market resolutions in PostgreSQL: the durable form of `strategy/positions`.

`positions` holds one row per leg of an executed signal that bought something (`pair_id` = the signal id), written
by the trade writer in the same transaction as the signal's `paper_trades`, so a replayed spool record never opens
a position twice. A leg is closed by its market's resolution (`market_resolutions`, written when a monitor
announces it) or when nothing of it is left after a sale. Whichever of the two rows arrives second does the
settling, so their order does not matter and each is idempotent. Exposure is the sum of `cost_cents` of the open
rows; `load_open` rebuilds execution's `PositionBook` from them at a restart.

The settlement arithmetic is `strategy/positions.settle`, the same function the in-memory book uses.
execution_service's trade writer is the only writer of a leg's contracts and cost; position_tracker stores market
results too (the same idempotent `record_resolutions`) and keeps its marks apart (`store/marks.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg

from arbees_core.messages import MarketResolution
from arbees_core.store.db import datetime_to_ns as _to_ns
from arbees_core.store.db import ns_to_datetime
from arbees_core.store.spool import SpoolRecord
from arbees_core.strategy.positions import LegPosition, legs_of, sell_before_settlement, settle

_COLUMNS = ("pair_id", "leg", "game_id", "venue", "ticker", "side", "qty", "cost_cents", "exited_qty",
            "exit_proceeds_cents", "realised_pnl_cents", "opened_at", "closed_at", "close_reason", "result",
            "payout_cents", "transport")
_INSERT = (f"INSERT INTO positions ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
           "ON CONFLICT (pair_id, leg) DO NOTHING")
_SETTLE = ("UPDATE positions SET closed_at = %s, close_reason = %s, result = %s, payout_cents = %s, "
           "realised_pnl_cents = %s WHERE pair_id = %s AND leg = %s AND closed_at IS NULL")
_INSERT_RESOLUTION = ("INSERT INTO market_resolutions (venue, ticker, result, game_id, resolved_at) "
                      "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (venue, ticker) DO NOTHING")
_OPEN_PAIRS = ("SELECT " + ", ".join(_COLUMNS) + " FROM positions WHERE pair_id IN "
               "(SELECT pair_id FROM positions WHERE closed_at IS NULL)")


def _row(leg: LegPosition, transport: str) -> tuple:
    return (leg.pair_id, leg.leg, leg.game_id, leg.venue, leg.ticker, leg.side, leg.qty, leg.cost_cents,
            leg.exited_qty, leg.exit_proceeds_cents, leg.realised_pnl_cents, ns_to_datetime(leg.opened_ns),
            ns_to_datetime(leg.closed_ns) if leg.closed_ns else None, leg.close_reason or None, leg.result or None,
            leg.payout_cents if leg.close_reason == "settled" else None, transport)


def _leg(row: tuple) -> LegPosition:
    (pair_id, leg, game_id, venue, ticker, side, qty, cost, exited, proceeds, pnl, opened, closed, reason, result,
     payout, _) = row
    return LegPosition(pair_id, leg, game_id, venue, ticker, side, qty, cost, _to_ns(opened), exited, proceeds, pnl,
                       _to_ns(closed), reason or "", result or "", payout or 0.0)


def record_legs(record: SpoolRecord) -> list[LegPosition]:
    """The legs an executed signal's record opens (`strategy/positions.legs_of` of its results)."""
    return legs_of(record.signal_id, record.game_id, record.results, record.executed_ns)


def resolved_markets(conn: psycopg.Connection, markets: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
    """(venue, ticker) -> (result, resolved_at ns) of those of `markets` that have resolved."""
    keys = sorted(set(markets))
    if not keys:
        return {}
    rows = conn.execute("SELECT venue, ticker, result, resolved_at FROM market_resolutions r "
                        "WHERE (venue, ticker) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                        ([k[0] for k in keys], [k[1] for k in keys])).fetchall()
    return {(r[0], r[1]): (r[2], _to_ns(r[3])) for r in rows}


def settle_known(legs: list[LegPosition], resolved: dict[tuple[str, str], tuple]) -> list[LegPosition]:
    """`legs` with those whose market already resolved closed by that settlement."""
    out = []
    for leg in legs:
        known = resolved.get(leg.market)
        out.append(settle(leg, known[0], known[1]) if known is not None and leg.open else leg)
    return out


_SELL = ("UPDATE positions SET qty = %s, cost_cents = %s, exited_qty = %s, exit_proceeds_cents = %s, "
         "realised_pnl_cents = %s, closed_at = %s, close_reason = %s, result = %s, payout_cents = %s "
         "WHERE pair_id = %s AND leg = %s")


def apply_exits(conn: psycopg.Connection, records: list[SpoolRecord]) -> int:
    """Apply newly stored exits' sales to their pairs' legs (call inside their insert transaction, which
    `executed_signals` gates, so an exit is applied once). A leg settled meanwhile is sold as it was before its
    settlement and settled again (`sell_before_settlement`). Returns the legs changed."""
    changed = 0
    for rec in records:
        sales = [r for r in rec.results if r.action == "sell" and r.filled_qty > 0 and r.avg_price is not None]
        if not rec.pair_id or not sales:
            continue
        rows = conn.execute("SELECT " + ", ".join(_COLUMNS) + " FROM positions WHERE pair_id = %s FOR UPDATE",
                            (rec.pair_id,)).fetchall()
        legs = {leg.leg: leg for leg in map(_leg, rows)}
        for r in sales:
            if r.leg not in legs:
                continue
            leg = sell_before_settlement(legs[r.leg], r.filled_qty, r.filled_qty * float(r.avg_price or 0.0)
                                         - r.fees_cents, r.ts_fill_ns or rec.executed_ns)
            legs[r.leg] = leg
            conn.execute(_SELL, (leg.qty, leg.cost_cents, leg.exited_qty, leg.exit_proceeds_cents,
                                 leg.realised_pnl_cents, ns_to_datetime(leg.closed_ns) if leg.closed_ns else None,
                                 leg.close_reason or None, leg.result or None,
                                 leg.payout_cents if leg.close_reason == "settled" else None, leg.pair_id, leg.leg))
            changed += 1
    return changed


def insert_positions(conn: psycopg.Connection, records: list[SpoolRecord]) -> int:
    """Open the positions of newly stored signals (call inside their insert transaction); a leg whose market has
    already resolved is stored settled. Returns the rows written."""
    rows = [(leg, rec.transport) for rec in records if not rec.pair_id for leg in record_legs(rec)]
    if not rows:
        return 0
    resolved = resolved_markets(conn, (leg.market for leg, _ in rows))
    settled = settle_known([leg for leg, _ in rows], resolved)
    with conn.cursor() as cur:
        cur.executemany(_INSERT, [_row(leg, transport) for leg, (_, transport) in zip(settled, rows)])
        return max(cur.rowcount, 0)


def record_resolutions(conn: psycopg.Connection, resolutions: list[MarketResolution]) -> int:
    """Store market results and settle the open positions in those markets (one transaction). Idempotent: a result
    already stored is kept, a position already closed is left. Returns the positions settled."""
    if not resolutions:
        return 0
    # in one order (markets, then legs): execution's writer and position_tracker may store the same results at once
    resolutions = sorted(resolutions, key=lambda r: (r.venue, r.ticker))
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(_INSERT_RESOLUTION, [(r.venue, r.ticker, r.result, r.game_id,
                                                  ns_to_datetime(r.ts_event_ns or r.ts_origin_ns))
                                                 for r in resolutions])
        markets = {(r.venue, r.ticker) for r in resolutions}
        resolved = resolved_markets(conn, markets)
        rows = conn.execute("SELECT " + ", ".join(_COLUMNS) + " FROM positions WHERE closed_at IS NULL AND "
                            "(venue, ticker) IN (SELECT * FROM unnest(%s::text[], %s::text[])) ORDER BY pair_id, leg "
                            "FOR UPDATE",
                            ([m[0] for m in markets], [m[1] for m in markets])).fetchall()
        done = settle_known([_leg(r) for r in rows], resolved)
        with conn.cursor() as cur:
            cur.executemany(_SETTLE, [(ns_to_datetime(leg.closed_ns), leg.close_reason, leg.result, leg.payout_cents,
                                       leg.realised_pnl_cents, leg.pair_id, leg.leg) for leg in done])
        return len(done)


def load_open(conn: psycopg.Connection) -> list[LegPosition]:
    """Every leg of every pair that still has an open leg (the settled legs of such a pair count for its hedge)."""
    return [_leg(r) for r in conn.execute(_OPEN_PAIRS).fetchall()]


def open_exposure_usd(conn: psycopg.Connection) -> float:
    """Cost of the open positions, dollars, as stored."""
    row = conn.execute("SELECT coalesce(sum(cost_cents), 0) FROM positions WHERE closed_at IS NULL").fetchone()
    return float(row[0]) / 100.0


_UNEQUAL_PAIRS = """
WITH t AS (SELECT signal_id, leg, action, ticker, side, filled_qty FROM paper_trades {where}),
     buys AS (SELECT signal_id, leg, ticker, side, sum(filled_qty) AS q FROM t WHERE action = 'buy'
               GROUP BY signal_id, leg, ticker, side),
     sells AS (SELECT signal_id, ticker, side, sum(filled_qty) AS q FROM t WHERE action = 'sell'
                GROUP BY signal_id, ticker, side),
     net AS (SELECT b.signal_id, sum(CASE WHEN b.leg = 0 THEN b.q - coalesce(s.q, 0) ELSE 0 END) AS leg0,
                    sum(CASE WHEN b.leg = 1 THEN b.q - coalesce(s.q, 0) ELSE 0 END) AS leg1
               FROM buys b LEFT JOIN sells s USING (signal_id, ticker, side) GROUP BY b.signal_id)
SELECT signal_id, leg0, leg1 FROM net WHERE abs(leg0 - leg1) > 1e-9 ORDER BY signal_id"""


def unequal_pairs(conn: psycopg.Connection, since: datetime | None = None) -> list[tuple[str, float, float]]:
    """(signal id, net contracts of leg 0, net of leg 1) of every executed signal whose two legs ended with
    different quantities in `paper_trades` (bought, less what the same signal sold back): the naked legs the joint
    fill exists to prevent. With `since`, only trades from then on."""
    where, params = ("WHERE created_at >= %s", (since,)) if since is not None else ("", ())
    rows = conn.execute(_UNEQUAL_PAIRS.format(where=where), params).fetchall()
    return [(r[0], float(r[1]), float(r[2])) for r in rows]


#: The columns of a `positions` row, and the leg one such row holds (for the tracker's reads, store/marks.py).
POSITION_COLUMNS = _COLUMNS
leg_from_row = _leg
