"""The wire contract: one versioned schema per message type, JSON by default, MessagePack as an option.

Units are in the field names or stated here, once:
- prices are **cents** of a $1 contract (0..100, floats because venues quote sub-cent ticks near the extremes);
- sizes and quantities are **contracts**;
- times are **integer nanoseconds since the Unix epoch, UTC** (`time.time_ns()`), suffix `_ns`.

Every message carries `v` (schema version), `src` (publisher instance id), `seq` (strictly increasing per
publisher and topic family, so subscribers count gaps as lost messages) and `ts_pub_ns`. A price update also
carries `topic_seq`, strictly increasing per publisher and topic (market): a subscriber that follows only some
markets (a game shard) counts its gaps there; 0 from a publisher that does not stamp it.

Decoding never trusts the wire: `decode()` raises `DecodeError` with a short machine reason
(`malformed`, `unknown_version`, `bad_value`, `oversized`, `unknown_topic`) that subscribers count per reason.
The original system broke repeatedly on schema drift between publishers and subscribers; one module that both
sides import, plus contract tests, is the cure.
"""

from __future__ import annotations

import math
from typing import Final, Literal, Union

import msgspec

from arbees_core import settings as S
from arbees_core.topics import Family, family_of

SCHEMA_VERSION: Final = 1
#: Largest payload accepted from the wire; the plan asks for < 10 KB per message, we allow headroom.
MAX_PAYLOAD_BYTES: Final = 64 * 1024

Venue = Literal["kalshi", "polymarket"]
Side = Literal["yes", "no"]
FillStatus = Literal["filled", "partial", "cancelled", "rejected"]
Action = Literal["buy", "sell"]
#: How a binary contract settled: YES paid 100 cents, NO paid 100 cents, or voided (every position refunded at cost).
MarketResult = Literal["yes", "no", "void"]


class PriceUpdate(msgspec.Struct, kw_only=True, gc=False):
    """Top of book of one binary contract on one venue, published when it changes.

    `yes_*` is the book of the YES side of `ticker` (the contract that pays if `outcome` wins); `no_*` is derived
    by the monitor where the venue only gives one side (Kalshi: YES ask = 100 - best NO bid). A missing side is
    `None` with size 0. `snapshot` marks a last-value replay for a late joiner, not a change in the book.
    """

    v: int = SCHEMA_VERSION
    src: str
    seq: int
    ts_origin_ns: int
    ts_event_ns: int = 0
    ts_pub_ns: int = 0
    venue: Venue
    ticker: str
    game_id: str
    outcome: str
    yes_bid: float | None = None
    yes_bid_size: float = 0.0
    yes_ask: float | None = None
    yes_ask_size: float = 0.0
    no_bid: float | None = None
    no_bid_size: float = 0.0
    no_ask: float | None = None
    no_ask_size: float = 0.0
    venue_seq: int = 0
    snapshot: bool = False
    topic_seq: int = 0


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


class MarketResolution(msgspec.Struct, kw_only=True, gc=False):
    """A market's result as its venue announced it: the contract `ticker` on `venue` settled `result`.

    Published by the venue's monitor when the venue says the market is determined (Kalshi `market_lifecycle_v2`
    `determined`/`settled` with `result`; Polymarket `market_resolved` with `winning_asset_id`); execution settles
    the positions held in that market and frees their exposure. `ts_event_ns` is the venue's time of the
    determination, `ts_origin_ns` its receipt by the monitor. `snapshot` marks a replay to a late joiner.
    """

    v: int = SCHEMA_VERSION
    src: str
    seq: int
    ts_pub_ns: int = 0
    ts_origin_ns: int
    ts_event_ns: int = 0
    venue: Venue
    ticker: str
    game_id: str = ""
    outcome: str = ""
    result: MarketResult
    snapshot: bool = False


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


class Heartbeat(msgspec.Struct, kw_only=True, gc=False):
    """A service's periodic liveness and counters. `feed_live_ns` (monitors) says the venue feed was intact then,
    so a quiet market's unchanged book stays valid instead of ageing out (a failure of the original)."""

    v: int = SCHEMA_VERSION
    src: str
    seq: int
    ts_pub_ns: int = 0
    service: str
    state: str = "running"
    started_ns: int = 0
    feed_live_ns: int = 0
    counters: dict[str, float] = {}


Message = Union[PriceUpdate, TradingSignal, TradeResult, MarketResolution, Heartbeat, PositionUpdate, ExitSignal]

MESSAGE_TYPES: Final[dict[Family, type]] = {
    Family.PRICES_KALSHI: PriceUpdate,
    Family.PRICES_POLY: PriceUpdate,
    Family.SIGNALS: TradingSignal,
    Family.RESULTS: TradeResult,
    Family.RESOLUTIONS: MarketResolution,
    Family.HEARTBEAT: Heartbeat,
    Family.POSITIONS: PositionUpdate,
    Family.EXITS: ExitSignal,
}


class DecodeError(ValueError):
    """A frame that cannot be accepted; `reason` is the counter name, the message says what was wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _VersionProbe(msgspec.Struct):
    v: int = -1


_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()
_TYPES = (PriceUpdate, TradingSignal, TradeResult, MarketResolution, Heartbeat, PositionUpdate, ExitSignal)
_JSON_DECODERS = {t: msgspec.json.Decoder(t) for t in _TYPES}
_MSGPACK_DECODERS = {t: msgspec.msgpack.Decoder(t) for t in _TYPES}
_json_probe = msgspec.json.Decoder(_VersionProbe)
_msgpack_probe = msgspec.msgpack.Decoder(_VersionProbe)

WIRE_FORMATS: Final = S.ARBEES_WIRE.choices


def encode(msg: Message, wire: str = "json") -> bytes:
    """Serialise a message for the wire."""
    return _msgpack_encoder.encode(msg) if wire == "msgpack" else _json_encoder.encode(msg)


def encode_json(msg: Message) -> bytes:
    """JSON whatever the ZMQ wire is: Redis streams always hold JSON, so `XREVRANGE` stays readable."""
    return _json_encoder.encode(msg)


def to_builtins(msg: Message) -> dict:
    """A plain dict of the message (for reports and `--json`)."""
    return msgspec.to_builtins(msg)


def decode_as(payload: bytes, msg_type: type) -> Message:
    """Decode `payload` as `msg_type`, detecting JSON (`{`) or MessagePack by the first byte, and validate it."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError("oversized", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if not payload:
        raise DecodeError("malformed", "empty payload")
    is_json = payload[:1] in (b"{", b" ", b"\n")
    try:
        msg = (_JSON_DECODERS if is_json else _MSGPACK_DECODERS)[msg_type].decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        version = _probe_version(payload, is_json)
        if version not in (-1, SCHEMA_VERSION):
            raise DecodeError("unknown_version", f"schema version {version}, this build reads {SCHEMA_VERSION}") from e
        raise DecodeError("malformed", f"{msg_type.__name__}: {e}") from e
    if msg.v != SCHEMA_VERSION:
        raise DecodeError("unknown_version", f"schema version {msg.v}, this build reads {SCHEMA_VERSION}")
    problem = check(msg)
    if problem:
        raise DecodeError("bad_value", problem)
    return msg


def decode(topic: str, payload: bytes) -> Message:
    """Decode a frame by its topic family. Raises `DecodeError`."""
    fam = family_of(topic)
    if fam is None:
        raise DecodeError("unknown_topic", f"topic {topic[:80]!r} is outside the contract")
    return decode_as(payload, MESSAGE_TYPES[fam])


def _probe_version(payload: bytes, is_json: bool) -> int:
    try:
        return (_json_probe if is_json else _msgpack_probe).decode(payload).v
    except (msgspec.DecodeError, msgspec.ValidationError):
        return -1


def _bad_price(value: float | None) -> bool:
    return value is not None and (not math.isfinite(value) or value < 0.0 or value > 100.0)


def _bad_size(value: float) -> bool:
    return not math.isfinite(value) or value < 0.0


def check(msg: Message) -> str | None:
    """Semantic validation after decoding: absurd values are rejected, not traded on. None when fine."""
    if isinstance(msg, PriceUpdate):
        return _check_price(msg)
    if isinstance(msg, TradingSignal):
        return _check_signal(msg)
    if isinstance(msg, TradeResult):
        if _bad_size(msg.qty) or _bad_size(msg.filled_qty) or msg.filled_qty > msg.qty:
            return f"filled_qty {msg.filled_qty} of qty {msg.qty}"
    if isinstance(msg, MarketResolution) and not msg.ticker:
        return "empty ticker"
    if isinstance(msg, ExitSignal):
        return _check_exit(msg)
    return None


def _check_exit(msg: ExitSignal) -> str | None:
    if len(msg.legs) != 2 or {leg.leg for leg in msg.legs} != {0, 1}:
        return f"an exit sells both legs 0 and 1, this one names {[leg.leg for leg in msg.legs]}"
    for leg in msg.legs:
        if _bad_price(leg.limit_price):
            return f"exit limit_price {leg.limit_price} outside 0..100 cents"
        if _bad_size(leg.qty) or leg.qty == 0.0:
            return f"exit qty {leg.qty} is not a positive number of contracts"
    return None


def _check_price(msg: PriceUpdate) -> str | None:
    for side in ("yes_bid", "yes_ask", "no_bid", "no_ask"):
        price: float | None = getattr(msg, side)
        size: float = getattr(msg, side + "_size")
        if _bad_price(price):
            return f"{side} {price} outside 0..100 cents"
        if _bad_size(size):
            return f"{side}_size {size} is not a non-negative number"
        if price is not None and size == 0.0:
            return f"{side} {price} has size 0"
    if msg.yes_bid is not None and msg.yes_ask is not None and msg.yes_bid >= msg.yes_ask:
        return f"crossed book: yes_bid {msg.yes_bid} >= yes_ask {msg.yes_ask}"
    if not msg.ticker:
        return "empty ticker"
    return None


def _check_signal(msg: TradingSignal) -> str | None:
    if len(msg.legs) != 2:
        return f"an arbitrage has 2 legs, this signal has {len(msg.legs)}"
    for leg in msg.legs:
        if _bad_price(leg.limit_price) or leg.limit_price == 0.0:
            return f"leg limit_price {leg.limit_price} outside (0, 100] cents"
        if _bad_size(leg.qty) or leg.qty == 0.0:
            return f"leg qty {leg.qty} is not a positive number of contracts"
    if not all(math.isfinite(x) for x in (msg.edge_cents, msg.edge_pct, msg.cost_cents)):
        return "edge or cost is not a finite number"
    return None
