"""The one polling loop (`arbees_core.polling`): what a wait returns, and what a miss says."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from arbees_core.errors import ArbeesError
from arbees_core.polling import NotReached, eventually, eventually_async


def test_eventually_returns_the_first_truthy_value() -> None:
    values = iter([0, None, "", 7, 8])
    assert eventually(lambda: next(values), 5, interval=0) == 7


def test_a_miss_is_an_operator_facing_error_naming_what_was_awaited_its_last_value_and_the_details() -> None:
    calls = itertools.count()
    with pytest.raises(NotReached) as caught:
        eventually(lambda: next(calls) < 0, 0.05, "a negative count", interval=0.01, details=lambda: "log tail")
    assert isinstance(caught.value, ArbeesError) and not isinstance(caught.value, AssertionError)
    assert caught.value.exit_code == 3 and caught.value.last is False
    assert str(caught.value) == "not reached within 0.05s: a negative count (last value: False)\nlog tail"
    assert next(calls) >= 2  # checked more than once within the time


def test_without_raising_a_miss_returns_the_last_value() -> None:
    assert eventually(lambda: 0, 0.02, interval=0.01, raises=False) == 0
    assert eventually(lambda: [], 0, raises=False) == []  # checked once even with no time at all


class _NoRows:
    """A falsy value with a long repr, like a result set a failure message should not print whole."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "row " * 1000


def test_a_miss_without_a_description_names_the_condition_and_cuts_a_long_value() -> None:
    def empty_inbox() -> str:
        return ""

    with pytest.raises(NotReached, match=r"within 0s: .*empty_inbox \(last value: ''\)"):
        eventually(empty_inbox, 0)
    with pytest.raises(NotReached) as caught:
        eventually(_NoRows, 0, "rows")
    assert len(str(caught.value)) < 400 and str(caught.value).endswith("row ...)")


def test_the_async_twin_lets_the_loop_run_between_checks() -> None:
    async def scenario() -> object:
        done = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, done.set)
        return await eventually_async(done.is_set, 5, "the timer fired")

    assert asyncio.run(scenario()) is True
    with pytest.raises(NotReached, match="never"):
        asyncio.run(eventually_async(lambda: None, 0.02, "never"))
