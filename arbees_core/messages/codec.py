"""Encoding and decoding of the contract's messages: JSON by default, MessagePack as an option, and the one
error (`DecodeError`) a subscriber counts by reason."""

from __future__ import annotations

from typing import Final, Union

import msgspec

from arbees_core import settings as S
from arbees_core.messages.base import MAX_PAYLOAD_BYTES, SCHEMA_VERSION
from arbees_core.messages.checks import check
from arbees_core.messages.heartbeat import Heartbeat
from arbees_core.messages.market import MarketResolution, PriceUpdate
from arbees_core.messages.positions import ExitSignal, PositionUpdate
from arbees_core.messages.trading import TradeResult, TradingSignal
from arbees_core.topics import Family, family_of

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
