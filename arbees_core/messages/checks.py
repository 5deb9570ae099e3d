"""Semantic validation after decoding: a frame that parses but says something absurd (a price outside 0..100
cents, a crossed book, a one-legged arbitrage) is rejected, never traded on."""

from __future__ import annotations

import math

import msgspec

from arbees_core.messages.market import MarketResolution, PriceUpdate
from arbees_core.messages.positions import ExitSignal
from arbees_core.messages.trading import TradeResult, TradingSignal


def _bad_price(value: float | None) -> bool:
    return value is not None and (not math.isfinite(value) or value < 0.0 or value > 100.0)


def _bad_size(value: float) -> bool:
    return not math.isfinite(value) or value < 0.0


def check(msg: msgspec.Struct) -> str | None:
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
