"""Cross-venue arbitrage on one team: buy YES on one venue and NO on the other for less than 100 cents after fees.

Both contracts pay on the same team (`outcome`), so exactly one of YES-here / NO-there pays $1 at settlement.
An opportunity is a two-leg object naming both contracts, sized from both books (the NO leg from the NO side of
the book, which the original got wrong), with both venues' taker fees from the venue registry's `taker_fee_cents`.

Safety rules, each with a test that proves it blocks: a price not confirmed valid within `max_price_age_ms` is
not traded on; an edge below `min_edge_pct` (a **percent** of the cost, never cents: the original compared a
profit in cents with a percent threshold) is not traded; one signal per game per `cooldown_ms`; no order above
`max_order_contracts`.

Units: prices and edges in cents per contract, `edge_pct` in percent, quantities in contracts, times in ns.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Final

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.messages import Leg, PriceUpdate, Side
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.venues import taker_fee_cents

#: (Kalshi side, Polymarket side) of the two directions: YES on Kalshi + NO on Polymarket, and the reverse.
DIRECTIONS: Final[tuple[tuple[Side, Side], ...]] = (("yes", "no"), ("no", "yes"))


@dataclass(frozen=True)
class ArbConfig:
    """min_edge_pct: MIN_EDGE_PCT, percent of cost per contract after fees (default 0.5);
    max_price_age_ms: MAX_PRICE_AGE_MS, a price not known valid within this many ms is not traded on (2000);
    cooldown_ms: GAME_COOLDOWN_MS, minimum time between two signals of one game (10000);
    max_order_contracts: MAX_ORDER_CONTRACTS, the largest leg in contracts (100);
    fees: the taker fee rates (KALSHI_TAKER_FEE_RATE, POLYMARKET_TAKER_FEE_RATE, FEE_RATES_AS_OF)."""

    min_edge_pct: float = S.MIN_EDGE_PCT.default
    max_price_age_ms: float = S.MAX_PRICE_AGE_MS.default
    cooldown_ms: float = S.GAME_COOLDOWN_MS.default
    max_order_contracts: float = S.MAX_ORDER_CONTRACTS.default
    fees: FeeSchedule = field(default_factory=FeeSchedule)

    @classmethod
    def from_env(cls, env: Env) -> "ArbConfig":
        return cls(
            min_edge_pct=env.get(S.MIN_EDGE_PCT),
            max_price_age_ms=env.get(S.MAX_PRICE_AGE_MS),
            cooldown_ms=env.get(S.GAME_COOLDOWN_MS),
            max_order_contracts=env.get(S.MAX_ORDER_CONTRACTS),
            fees=FeeSchedule.from_env(env),
        )


@dataclass(frozen=True)
class ArbOpportunity:
    """One direction of an arbitrage on one team, ready to become a `TradingSignal`.

    legs: (Kalshi leg, Polymarket leg); each `fee_cents` is that leg's total taker fee for `qty`.
    qty: contracts per leg. gross_edge_cents: 100 - sum of the two asks (per contract).
    edge_cents: per contract after both fees. cost_cents: per contract, ask sum + fees / qty.
    edge_pct: edge_cents / cost_cents x 100 (so cost_cents + edge_cents == 100).
    inputs: (Kalshi update, Polymarket update) the prices were read from.
    """

    game_id: str
    outcome: str
    legs: tuple[Leg, Leg]
    qty: float
    gross_edge_cents: float
    edge_cents: float
    edge_pct: float
    cost_cents: float
    inputs: tuple[PriceUpdate, PriceUpdate]


def _ask(update: PriceUpdate, side: str) -> tuple[float | None, float]:
    """Best ask price (cents) and its size (contracts) of buying `side` of this contract."""
    if side == "yes":
        return update.yes_ask, update.yes_ask_size
    return update.no_ask, update.no_ask_size


def is_stale(now_ns: int, valid_ns: int, max_price_age_ms: float) -> bool:
    """Whether a price last known valid at `valid_ns` is too old to trade on at `now_ns`."""
    return now_ns - valid_ns > max_price_age_ms * 1e6


def _opportunity(game_id: str, outcome: str, kalshi: PriceUpdate, poly: PriceUpdate, k_side: Side, p_side: Side,
                 cfg: ArbConfig) -> ArbOpportunity | None:
    """One direction: buy `k_side` on Kalshi and `p_side` on Polymarket, or None when a side is missing or thin."""
    k_price, k_size = _ask(kalshi, k_side)
    p_price, p_size = _ask(poly, p_side)
    if k_price is None or p_price is None:
        return None
    qty = float(math.floor(min(k_size, p_size, cfg.max_order_contracts)))
    if qty < 1.0:
        return None
    k_fee = taker_fee_cents("kalshi", qty, k_price, cfg.fees)
    p_fee = taker_fee_cents("polymarket", qty, p_price, cfg.fees)
    cost = k_price + p_price + (k_fee + p_fee) / qty
    if cost <= 0.0:
        return None
    edge = 100.0 - cost
    legs = (
        Leg(venue="kalshi", ticker=kalshi.ticker, side=k_side, limit_price=k_price, qty=qty, fee_cents=k_fee),
        Leg(venue="polymarket", ticker=poly.ticker, side=p_side, limit_price=p_price, qty=qty, fee_cents=p_fee),
    )
    return ArbOpportunity(game_id=game_id, outcome=outcome, legs=legs, qty=qty,
                          gross_edge_cents=100.0 - (k_price + p_price), edge_cents=edge,
                          edge_pct=edge / cost * 100.0, cost_cents=cost, inputs=(kalshi, poly))


def find_arbs(game_id: str, outcome: str, kalshi: PriceUpdate, poly: PriceUpdate, cfg: ArbConfig, now_ns: int,
              kalshi_valid_ns: int, poly_valid_ns: int) -> list[ArbOpportunity]:
    """Both directions' opportunities with a positive edge of at least `cfg.min_edge_pct` percent after fees.

    `kalshi` and `poly` are the two venues' contracts paying on the same team. `*_valid_ns` is when each price was
    last known valid (its receipt, or a later feed heartbeat); if either is older than `cfg.max_price_age_ms`
    nothing is returned. Raises ValueError when the updates are not from Kalshi and Polymarket respectively.
    """
    if kalshi.venue != "kalshi" or poly.venue != "polymarket":
        raise ValueError(f"find_arbs takes a Kalshi and a Polymarket price, got {kalshi.venue} and {poly.venue}")
    if is_stale(now_ns, kalshi_valid_ns, cfg.max_price_age_ms) or is_stale(now_ns, poly_valid_ns, cfg.max_price_age_ms):
        return []
    found = []
    for k_side, p_side in DIRECTIONS:
        opp = _opportunity(game_id, outcome, kalshi, poly, k_side, p_side, cfg)
        if opp is not None and opp.edge_cents > 0.0 and opp.edge_pct >= cfg.min_edge_pct:
            found.append(opp)
    return found


def direction_edges(game_id: str, outcome: str, kalshi: PriceUpdate, poly: PriceUpdate,
                    cfg: ArbConfig) -> list[ArbOpportunity]:
    """Both directions as they stand, whatever their edge (negative too) and age: what an operator's view shows of
    a pair, never what is traded (that is `find_arbs`, with its staleness and minimum-edge rules)."""
    found = [_opportunity(game_id, outcome, kalshi, poly, k_side, p_side, cfg) for k_side, p_side in DIRECTIONS]
    return [o for o in found if o is not None]


def _leg_key(leg: Leg) -> tuple[str, str, str, float]:
    return (leg.venue, leg.ticker, leg.side, leg.limit_price)


def best_arb(opps: list[ArbOpportunity]) -> ArbOpportunity | None:
    """The opportunity with the largest total edge (edge_cents x qty, cents); ties go to the higher edge_pct, then
    to the lexicographically first legs, so the choice never depends on input order."""
    if not opps:
        return None
    return min(opps, key=lambda o: (-(o.edge_cents * o.qty), -o.edge_pct, *(_leg_key(leg) for leg in o.legs)))


def signal_id_for(opp: ArbOpportunity) -> str:
    """`arb-` + 16 hex chars of BLAKE2b over the game, both legs and both input prices' (src, seq): the same
    opportunity from the same prices always gets the same id, so a replayed signal is recognisably a duplicate."""
    parts = [opp.game_id]
    parts += [f"{leg.venue}|{leg.ticker}|{leg.side}|{leg.limit_price!r}|{leg.qty!r}" for leg in opp.legs]
    parts += [f"{u.src}|{u.seq}" for u in opp.inputs]
    digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()
    return f"arb-{digest}"


class GameCooldown:
    """At most one signal per game per `cooldown_ms` (so a persisting edge is not re-signalled on every tick)."""

    def __init__(self, cooldown_ms: float) -> None:
        self.cooldown_ns = cooldown_ms * 1e6
        self._last_ns: dict[str, int] = {}

    def ready(self, game_id: str, now_ns: int) -> bool:
        """Whether `game_id` may signal at `now_ns`: never signalled, or the last signal is `cooldown_ms` old."""
        last = self._last_ns.get(game_id)
        return last is None or now_ns - last >= self.cooldown_ns

    def record(self, game_id: str, now_ns: int) -> None:
        """Remember that `game_id` signalled at `now_ns`."""
        self._last_ns[game_id] = now_ns

    def prune(self, now_ns: int) -> int:
        """Forget games whose cooldown is over (`ready` says the same without them): the map holds only the games
        that signalled within the last `cooldown_ms`. Returns how many were forgotten."""
        over = [g for g, last in self._last_ns.items() if now_ns - last >= self.cooldown_ns]
        for g in over:
            del self._last_ns[g]
        return len(over)

    def __len__(self) -> int:
        return len(self._last_ns)
