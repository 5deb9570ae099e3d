"""The hot path's decisions: an arbitrage signal (its legs and the prices it came from) and the fill of each leg."""

from __future__ import annotations

import msgspec

from arbees_core.messages.base import SCHEMA_VERSION, Action, FillStatus, Side, Venue


class Leg(msgspec.Struct, kw_only=True, gc=False):
    """One order of an arbitrage: buy `qty` contracts of `side` on `venue`/`ticker` at up to `limit_price` cents."""

    venue: Venue
    ticker: str
    side: Side
    limit_price: float
    qty: float
    fee_cents: float = 0.0


class PriceRef(msgspec.Struct, kw_only=True, gc=False):
    """The price update a signal was derived from, so a signal names its evidence and its hop times."""

    venue: Venue
    ticker: str
    src: str
    seq: int
    ts_origin_ns: int
    ts_pub_ns: int
    ts_recv_ns: int


class TradingSignal(msgspec.Struct, kw_only=True, gc=False):
    """A cross-venue arbitrage: buy YES on one venue and NO on the other for less than 100 cents after fees.

    `signal_id` is deterministic from the inputs, so a redelivered or replayed signal is recognisably the same.
    Edges are per contract: `gross_edge_cents` = 100 - price sum; `edge_cents` after both venues' fees;
    `edge_pct` = `edge_cents` / cost per contract (incl. fees) x 100, the figure `MIN_EDGE_PCT` is compared with.
    `ts_origin_ns` is the venue receipt time of the newest input price: the start of the end-to-end latency.
    `shard_id` / `epoch`: the shard that held the game and the assignment epoch it held it under (0: the shard
    evaluates every game, no orchestrator); execution_service refuses an epoch older than the game's newest.
    """

    v: int = SCHEMA_VERSION
    src: str
    seq: int
    ts_pub_ns: int = 0
    ts_origin_ns: int
    ts_detect_ns: int
    signal_id: str
    game_id: str
    kind: str = "cross_venue_arb"
    legs: list[Leg]
    qty: float
    gross_edge_cents: float
    edge_cents: float
    edge_pct: float
    cost_cents: float
    price_latency_ms: float = 0.0
    inputs: list[PriceRef] = []
    shard_id: str = ""
    epoch: int = 0


class TradeResult(msgspec.Struct, kw_only=True, gc=False):
    """A paper IOC fill of one leg, with the latency breakdown of the hops that produced it (milliseconds).

    `action` is "buy" for the arbitrage's legs and "sell" for an unwind: the sale of a leg whose partner missed
    (`LEG_POLICY=sequential`), back into the book at its bid. `legging_loss_cents` is set on an unwind only: what
    the unwound contracts cost (price and buy fees) minus what selling them brought (price less sell fees), cents.
    """

    v: int = SCHEMA_VERSION
    src: str
    seq: int
    ts_pub_ns: int = 0
    order_id: str
    signal_id: str
    game_id: str
    leg: int
    venue: Venue
    ticker: str
    side: Side
    status: FillStatus
    action: Action = "buy"
    limit_price: float
    qty: float
    filled_qty: float
    avg_price: float | None = None
    fees_cents: float = 0.0
    reason: str = ""
    transport: str = ""
    ts_origin_ns: int = 0
    ts_fill_ns: int = 0
    price_latency_ms: float = 0.0
    signal_latency_ms: float = 0.0
    execution_latency_ms: float = 0.0
    latency_ms: float = 0.0
    legging_loss_cents: float = 0.0
