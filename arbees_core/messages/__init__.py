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
One package that both sides import, plus contract tests, keeps publishers and subscribers from drifting apart. The
structs live by family (`market`, `trading`, `positions`, `heartbeat`), the codec and the semantic checks beside
them; import them from here.
"""

from __future__ import annotations

from arbees_core.messages.base import (MAX_PAYLOAD_BYTES, SCHEMA_VERSION, Action, FillStatus, MarketResult, Side,
                                      Venue)
from arbees_core.messages.checks import check
from arbees_core.messages.codec import (MESSAGE_TYPES, WIRE_FORMATS, DecodeError, Message, decode, decode_as, encode,
                                       encode_json, to_builtins)
from arbees_core.messages.heartbeat import Heartbeat
from arbees_core.messages.market import MarketResolution, PriceUpdate
from arbees_core.messages.positions import ExitLeg, ExitSignal, PositionUpdate
from arbees_core.messages.trading import Leg, PriceRef, TradeResult, TradingSignal

__all__ = ["MAX_PAYLOAD_BYTES", "MESSAGE_TYPES", "SCHEMA_VERSION", "WIRE_FORMATS", "Action", "DecodeError", "ExitLeg",
           "ExitSignal", "FillStatus", "Heartbeat", "Leg", "MarketResolution", "MarketResult", "Message",
           "PositionUpdate", "PriceRef", "PriceUpdate", "Side", "TradeResult", "TradingSignal", "Venue", "check",
           "decode", "decode_as", "encode", "encode_json", "to_builtins"]
