"""The venue registry: one place names a venue, and every venue package has the same shape."""

from __future__ import annotations

from pathlib import Path

import pytest

import arbees_core.venues as venues_pkg
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.venues import NAMES, UnknownVenue, adapter, taker_fee_cents, venue
from arbees_core.venues.sim import SimConfig, SimVenue

ROLES = {"__init__", "adapter", "auth", "feed", "parsing", "rest", "sim", "wire", "ws"}


def test_every_venue_package_has_the_same_modules_in_the_same_roles() -> None:
    root = Path(venues_pkg.__file__).parent
    for name in NAMES:
        assert {p.stem for p in (root / name).glob("*.py")} == ROLES, name


@pytest.mark.parametrize("name", NAMES)
def test_each_venue_s_adapter_gives_its_parts(name: str) -> None:
    parts = adapter(name)
    assert parts.name == name and adapter(name) is parts
    feed = parts.make_feed()
    sim = SimVenue(name, SimConfig(seed=3, games=2))
    assert sim.listings() and all(x.venue == name for x in sim.listings())
    changes = feed.handle_many(sim.snapshots(), 1)
    assert {c.ticker for c in changes} == {m.ticker for m in sim.markets} and feed.stats()["errors"] == {}


def test_an_unknown_venue_is_one_clear_error_naming_the_venues() -> None:
    with pytest.raises(UnknownVenue, match="kalshi, polymarket"):
        venue("betfair")
    with pytest.raises(ValueError, match="unknown venue"):
        SimVenue("betfair", SimConfig())
    assert taker_fee_cents("kalshi", 1, 50, FeeSchedule()) == 2.0
