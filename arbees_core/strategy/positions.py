"""Positions per arbitrage pair, and the exposure they make: the one place exposure is computed.

A pair is what one executed signal bought: a position per leg (a contract on one venue), opened by the fills,
reduced by sales (the unwind of a leg whose partner missed, or an exit), closed when the leg's market resolves
(`settle`) or when nothing is left of it. Exposure is the cost of the open legs: it rises with every fill and
falls when a market resolves or a leg is sold, so `MAX_EXPOSURE_USD` caps what is at risk now, not what a run has
ever spent. A pair whose legs hold different quantities is unhedged by the difference: reported with its size and
age until the pair is closed.

Pure (no I/O): execution_service keeps a `PositionBook` in memory; `store/positions.py` writes the same legs to
PostgreSQL (`positions`) with the same functions, and a restart rebuilds the book from there.
Units: quantities in contracts, money in cents (`_cents`) unless the name says `_usd`, times in ns since the epoch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from arbees_core.messages import TradeResult

#: Contracts below which a difference between two legs is float noise, not an unhedged position.
QTY_EPSILON = 1e-9


@dataclass(frozen=True)
class LegPosition:
    """One leg of one pair. qty: contracts held (bought less sold); cost_cents: what the held contracts cost, buy
    fees included; realised_pnl_cents: gains and losses already realised (sales, settlement); closed_ns: 0 while
    open; close_reason: "settled" | "exit"; result / payout_cents: the market's result and what the held contracts
    paid at settlement."""

    pair_id: str
    leg: int
    game_id: str
    venue: str
    ticker: str
    side: str
    qty: float
    cost_cents: float
    opened_ns: int
    exited_qty: float = 0.0
    exit_proceeds_cents: float = 0.0
    realised_pnl_cents: float = 0.0
    closed_ns: int = 0
    close_reason: str = ""
    result: str = ""
    payout_cents: float = 0.0

    @property
    def open(self) -> bool:
        return self.closed_ns == 0

    @property
    def market(self) -> tuple[str, str]:
        return (self.venue, self.ticker)


def settlement_payout_cents(leg: LegPosition, result: str) -> float:
    """What `leg`'s held contracts pay when its market settles `result`: 100 cents each when the side it holds won,
    nothing when it lost, its cost back when the market is voided."""
    if result == "void":
        return leg.cost_cents
    return leg.qty * 100.0 if result == leg.side else 0.0


def settle(leg: LegPosition, result: str, ts_ns: int) -> LegPosition:
    """`leg` closed by its market's settlement (`result`: yes | no | void) at `ts_ns`."""
    payout = settlement_payout_cents(leg, result)
    return replace(leg, closed_ns=ts_ns, close_reason="settled", result=result, payout_cents=payout,
                   realised_pnl_cents=leg.realised_pnl_cents + payout - leg.cost_cents)


def sell(leg: LegPosition, qty: float, proceeds_cents: float, ts_ns: int) -> LegPosition:
    """`leg` after selling `qty` of its contracts for `proceeds_cents` (net of sell fees): the cost of what is left
    is pro rata, the difference realised; closed as an exit when nothing is left."""
    qty = min(qty, leg.qty)
    share = leg.cost_cents * qty / leg.qty if leg.qty > 0 else 0.0
    left = leg.qty - qty
    out = replace(leg, qty=left, cost_cents=leg.cost_cents - share, exited_qty=leg.exited_qty + qty,
                  exit_proceeds_cents=leg.exit_proceeds_cents + proceeds_cents,
                  realised_pnl_cents=leg.realised_pnl_cents + proceeds_cents - share)
    return replace(out, closed_ns=ts_ns, close_reason="exit", cost_cents=0.0, qty=0.0) if left <= QTY_EPSILON else out


def sell_before_settlement(leg: LegPosition, qty: float, proceeds_cents: float, ts_ns: int) -> LegPosition:
    """`sell`, for a leg that may have been settled since the sale was made (the position store heard the market's
    result before the sale's record): the sale came first, so it is applied to the leg as it was before settlement,
    and what is left is settled again. A leg closed by an earlier exit is returned as it is."""
    if leg.open:
        return sell(leg, qty, proceeds_cents, ts_ns)
    if leg.close_reason != "settled":
        return leg
    before = replace(leg, closed_ns=0, close_reason="", result="", payout_cents=0.0,
                     realised_pnl_cents=leg.realised_pnl_cents - (leg.payout_cents - leg.cost_cents))
    sold = sell(before, qty, proceeds_cents, ts_ns)
    return settle(sold, leg.result, leg.closed_ns) if sold.open else sold


def legs_of(pair_id: str, game_id: str, results: Iterable[TradeResult], opened_ns: int) -> list[LegPosition]:
    """The positions an executed signal's results open: one per leg that bought something, less what the same
    signal sold of it (an unwind). Sales are matched to the leg of the same contract and side."""
    legs: dict[int, LegPosition] = {}
    sales = [r for r in results if r.action == "sell" and r.filled_qty > 0 and r.avg_price is not None]
    for r in results:
        if r.action != "buy" or r.filled_qty <= 0 or r.avg_price is None:
            continue
        legs[r.leg] = LegPosition(pair_id, r.leg, game_id or r.game_id, r.venue, r.ticker, r.side, r.filled_qty,
                                  r.filled_qty * r.avg_price + r.fees_cents, opened_ns)
    for s in sales:
        match = next((k for k, leg in legs.items() if (leg.venue, leg.ticker, leg.side) == (s.venue, s.ticker, s.side)),
                     None)
        if match is not None:
            proceeds = s.filled_qty * float(s.avg_price or 0.0) - s.fees_cents
            legs[match] = sell(legs[match], s.filled_qty, proceeds, s.ts_fill_ns or opened_ns)
    return list(legs.values())


@dataclass(frozen=True)
class Unhedged:
    """A pair whose legs hold different quantities: `contracts` more on `leg`'s side, open since `opened_ns`."""

    pair_id: str
    contracts: float
    leg: LegPosition
    opened_ns: int

    def age_s(self, now_ns: int) -> float:
        return max(0.0, (now_ns - self.opened_ns) / 1e9)


class PositionBook:
    """The pairs with at least one open leg, in memory; every fill, sale and settlement goes through it."""

    def __init__(self) -> None:
        self._pairs: dict[str, dict[int, LegPosition]] = {}
        self._open_by_market: dict[tuple[str, str], set[tuple[str, int]]] = {}
        self._exposure_cents = 0.0
        self.settled_legs = 0
        self.realised_pnl_cents = 0.0

    @property
    def exposure_usd(self) -> float:
        """Cost of every open leg (price x contracts + buy fees), dollars (a running sum, rounded to a millionth of
        a cent so that float noise never shows as exposure once everything has closed)."""
        return max(0.0, round(self._exposure_cents, 6)) / 100.0

    def __contains__(self, pair_id: str) -> bool:
        return pair_id in self._pairs

    @property
    def open_pairs(self) -> int:
        """Pairs with at least one open leg."""
        return len(self._pairs)

    def legs(self, pair_id: str) -> list[LegPosition]:
        return sorted(self._pairs.get(pair_id, {}).values(), key=lambda leg: leg.leg)

    def open_legs(self) -> list[LegPosition]:
        return [leg for legs in self._pairs.values() for leg in legs.values() if leg.open]

    def add(self, legs: Iterable[LegPosition]) -> int:
        """Track these legs; a leg already tracked is left as it is (a replayed record is not counted twice).
        Returns how many were added."""
        legs = list(legs)
        added = 0
        for leg in legs:
            pair = self._pairs.setdefault(leg.pair_id, {})
            if leg.leg in pair:
                continue
            pair[leg.leg] = leg
            added += 1
            self.realised_pnl_cents += leg.realised_pnl_cents
            if leg.open:
                self._exposure_cents += leg.cost_cents
                self._open_by_market.setdefault(leg.market, set()).add((leg.pair_id, leg.leg))
        self._drop_closed_pairs({leg.pair_id for leg in legs})
        return added

    def settle_market(self, venue: str, ticker: str, result: str, ts_ns: int) -> list[LegPosition]:
        """Close every open leg in this market at its settlement; returns the closed legs."""
        closed = []
        for pair_id, leg_no in sorted(self._open_by_market.pop((venue, ticker), set())):
            done = settle(self._pairs[pair_id][leg_no], result, ts_ns)
            self._replace(done)
            self.settled_legs += 1
            closed.append(done)
        self._drop_closed_pairs({leg.pair_id for leg in closed})
        return closed

    def sell_legs(self, pair_id: str, sales: list[tuple[int, float, float]], ts_ns: int) -> list[LegPosition]:
        """An exit: (leg number, contracts sold, proceeds net of fees in cents) applied to the pair's open legs;
        returns the legs after the sales (a leg sold out is closed as an exit, its exposure freed)."""
        done = []
        for leg_no, qty, proceeds in sales:
            leg = self._pairs.get(pair_id, {}).get(leg_no)
            if leg is None or not leg.open or qty <= 0:
                continue
            after = sell(leg, qty, proceeds, ts_ns)
            self._replace(after)
            done.append(after)
        self._drop_closed_pairs({pair_id})
        return done

    def _replace(self, leg: LegPosition) -> None:
        old = self._pairs[leg.pair_id][leg.leg]
        self._exposure_cents += (leg.cost_cents if leg.open else 0.0) - (old.cost_cents if old.open else 0.0)
        self.realised_pnl_cents += leg.realised_pnl_cents - old.realised_pnl_cents
        self._pairs[leg.pair_id][leg.leg] = leg
        if not leg.open:
            still_open = self._open_by_market.get(leg.market)
            if still_open is not None:
                still_open.discard((leg.pair_id, leg.leg))
                if not still_open:  # a market with no open leg left is not kept
                    del self._open_by_market[leg.market]

    def _drop_closed_pairs(self, pair_ids: set[str]) -> None:
        for pair_id in pair_ids:
            if pair_id in self._pairs and not any(leg.open for leg in self._pairs[pair_id].values()):
                del self._pairs[pair_id]

    def residual(self, pair_id: str) -> Unhedged | None:
        """The pair's unhedged contracts: the difference between its legs' held quantities (a leg that bought
        nothing holds 0), or None when they are equal."""
        legs = self._pairs.get(pair_id, {})
        held = [legs[n].qty if n in legs else 0.0 for n in (0, 1)]
        diff = abs(held[0] - held[1])
        if diff <= QTY_EPSILON:
            return None
        bigger = legs[0 if held[0] > held[1] else 1]
        return Unhedged(pair_id, diff, bigger, min(leg.opened_ns for leg in legs.values()))

    def unhedged(self) -> list[Unhedged]:
        return [u for u in (self.residual(p) for p in self._pairs) if u is not None]

    def summary(self, now_ns: int) -> dict[str, float]:
        """The figures a metrics snapshot carries (and the soak samples): exposure, open pairs and legs, unhedged
        contracts with the oldest one's age, settled legs and realised P&L."""
        naked = self.unhedged()
        return {"exposure_usd": round(self.exposure_usd, 4), "open_pairs": self.open_pairs,
                "open_legs": len(self.open_legs()), "unhedged_pairs": len(naked),
                "unhedged_contracts": round(sum(u.contracts for u in naked), 6),
                "oldest_unhedged_s": round(max((u.age_s(now_ns) for u in naked), default=0.0), 3),
                "settled_legs": self.settled_legs, "realised_pnl_usd": round(self.realised_pnl_cents / 100.0, 4)}
