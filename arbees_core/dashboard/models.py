"""What the api serves, as typed models: the JSON endpoints' bodies, the SSE events' payloads, the OpenAPI schema.

Units are in the field names: prices and edges in cents (of a $1 contract), `*_pct` in percent, sizes in contracts,
`*_ns` in nanoseconds since the Unix epoch (UTC), `*_ms` / `*_s` in milliseconds / seconds.
`source` says where the figures came from: `zmq` (the api's own SUB sockets on the publishers) or `redis` (the
streams), so an operator always knows which path they are looking at.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Book(BaseModel):
    """One venue's top of book for one contract, as last published."""

    venue: str
    ticker: str
    yes_bid: float | None = None
    yes_ask: float | None = None
    no_bid: float | None = None
    no_ask: float | None = None
    yes_ask_size: float = 0.0
    no_ask_size: float = 0.0
    age_ms: float = Field(description="since the monitor received the venue message (or its feed was last live)")
    stale: bool = Field(description="older than MAX_PRICE_AGE_MS: game_shard would not trade on it")


class Edge(BaseModel):
    """The better of the two directions (YES here + NO there) for one team, after both venues' taker fees."""

    kalshi_side: str
    poly_side: str
    qty: float
    gross_edge_cents: float
    edge_cents: float
    edge_pct: float
    tradeable: bool = Field(description="edge_pct >= MIN_EDGE_PCT and neither price stale")


class OutcomeView(BaseModel):
    outcome: str
    kalshi: Book | None = None
    polymarket: Book | None = None
    edge: Edge | None = None


class GameView(BaseModel):
    """One mapped game: both venues' books per team and the current cross-venue edge."""

    game_id: str
    league: str
    start_date: str
    outcomes: list[OutcomeView]
    best_edge_pct: float | None = None


class LegView(BaseModel):
    venue: str
    ticker: str
    side: str
    limit_price: float
    qty: float
    status: str = ""
    filled_qty: float | None = None
    avg_price: float | None = None
    fees_cents: float | None = None


class LatencyBreakdown(BaseModel):
    """Per-hop latency of one signal, milliseconds: price (monitor -> game_shard), signal (game_shard ->
    execution_service), execution (receipt -> paper fill), end_to_end (venue message received -> paper fill)."""

    price_ms: float | None = None
    signal_ms: float | None = None
    execution_ms: float | None = None
    end_to_end_ms: float | None = None


class SignalView(BaseModel):
    signal_id: str
    game_id: str
    ts_detect_ns: int
    edge_cents: float
    edge_pct: float
    qty: float
    legs: list[LegView]
    price_latency_ms: float


class TradeView(BaseModel):
    """One executed signal: both legs' paper fills and the latency breakdown."""

    signal_id: str
    game_id: str
    transport: str
    ts_fill_ns: int
    legs: list[LegView]
    latency: LatencyBreakdown
    edge_pct: float | None = None
    from_history: bool = Field(False, description="loaded from paper_trades at the api's start, not seen live")


class HopStats(BaseModel):
    count: int
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class LatencyView(BaseModel):
    """Per mode (zmq / redis) and hop: percentiles over the last `window_s` seconds of trades, plus the end-to-end
    histogram (counts per bucket; `bounds_ms` are the upper bounds)."""

    window_s: float
    modes: dict[str, dict[str, HopStats]]
    bounds_ms: list[float]
    histogram: dict[str, list[int]]


class RateView(BaseModel):
    """Messages per second the api received per topic family: the last 10 s, and one point per second."""

    per_s: dict[str, float]
    series: dict[str, list[list[float]]]


class ServiceHealth(BaseModel):
    name: str
    state: str
    mode: str = ""
    restarts: int = 0
    restarts_source: str = Field("", description="supervisor (local runtime) or `seen by the api` (instance changes)")
    exit_code: int | None = None
    pid: int | None = None
    heartbeat_age_s: float | None = None
    lost: int = 0
    rejected: int = 0
    rx: int = 0
    tx: int = 0


class PositionLeg(BaseModel):
    pair_id: str
    leg: int
    game_id: str
    venue: str
    ticker: str
    side: str
    qty: float
    open_qty: float
    cost_cents: float
    realised_pnl_cents: float
    mark_cents: float | None = Field(None, description="what the open contracts would bring now: position_tracker's "
                                     "mark (the bid of their side, net of the sell fee) while fresh, else open "
                                     "contracts x the current best bid")
    unrealised_pnl_cents: float | None = None
    mark_source: str = Field("", description="tracker | api: who marked it")
    closed: bool
    close_reason: str = ""


class PositionsView(BaseModel):
    """Positions as the position store keeps them in PostgreSQL (`positions`), marked by position_tracker
    (`position_marks`) or, without a fresh mark of it, to the live books here."""

    available: bool
    status: str
    open_legs: int = 0
    open_cost_cents: float = 0.0
    realised_pnl_cents: float = 0.0
    unrealised_pnl_cents: float | None = None
    legs: list[PositionLeg] = []


class ApiStatus(BaseModel):
    source: str
    endpoints: list[str]
    connected: list[str]
    clients: int
    updates_dropped: int
    messages: int
    feed_lost: int
    feed_rejected: int


class Snapshot(BaseModel):
    """Everything the page shows, at once (the first SSE event; `GET /api/snapshot`)."""

    source: str
    ts_ns: int
    games: list[GameView]
    signals: list[SignalView]
    trades: list[TradeView]
    latency: LatencyView
    rates: RateView
    health: list[ServiceHealth]
    positions: PositionsView
    api: ApiStatus
