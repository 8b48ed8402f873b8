"""Conformance of MaxValueTracker on every store (the reference's backend tests, plus atomicity)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger import Backend


async def test_default_value(backend: Backend) -> None:
    assert await backend.get_max_value_tracker("foo").get_max() == {"value": "0", "data": None}


async def test_higher_value_returns_previous_max(backend: Backend) -> None:
    tracker = backend.get_max_value_tracker("foo")
    previous = await tracker.set_if_max({"value": "3", "data": {"foo": "bar"}})
    assert previous == {"value": "0", "data": None}
    assert await tracker.get_max() == {"value": "3", "data": {"foo": "bar"}}
    previous = await tracker.set_if_max({"value": 5, "data": [1]})
    assert previous == {"value": "3", "data": {"foo": "bar"}}
    assert await tracker.get_max() == {"value": "5", "data": [1]}


async def test_lower_or_equal_value_returns_the_entry(backend: Backend) -> None:
    tracker = backend.get_max_value_tracker("foo")
    entry = {"value": "-1", "data": "x"}
    assert await tracker.set_if_max(entry) == entry
    assert await tracker.set_if_max({"value": "0", "data": "y"}) == {"value": "0", "data": "y"}
    assert await tracker.get_max() == {"value": "0", "data": None}


async def test_same_key_shares_value_and_keys_are_separate(backend: Backend) -> None:
    a = backend.get_max_value_tracker("foo")
    b = backend.get_max_value_tracker({"key": "foo"})
    await a.set_if_max({"value": "2", "data": "a"})
    assert await b.get_max() == {"value": "2", "data": "a"}
    assert await b.set_if_max({"value": "1", "data": "b"}) == {"value": "1", "data": "b"}
    assert await a.get_max() == {"value": "2", "data": "a"}
    assert await backend.get_max_value_tracker("bar").get_max() == {"value": "0", "data": None}


async def test_value_survives_reopening(backend: Backend, reopen: Any) -> None:
    await backend.get_max_value_tracker("foo").set_if_max({"value": "9", "data": None})
    again = await reopen()
    assert await again.get_max_value_tracker("foo").get_max() == {"value": "9", "data": None}


async def test_values_compare_as_big_integers(backend: Backend) -> None:
    tracker = backend.get_max_value_tracker("foo")
    await tracker.set_if_max({"value": "9", "data": None})
    big = str(10**40)
    assert (await tracker.set_if_max({"value": big, "data": None}))["value"] == "9"
    assert (await tracker.get_max())["value"] == big
    assert await tracker.set_if_max({"value": "99", "data": None}) == {"value": "99", "data": None}


@pytest.mark.parametrize("entry", [{}, {"value": None}, {"value": ""}, {"data": 1}])
async def test_entry_without_value_is_refused(backend: Backend, entry: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="must have a value"):
        await backend.get_max_value_tracker("foo").set_if_max(entry)


@pytest.mark.parametrize("value", ["1.5", "abc", 1.5, True])
async def test_non_integer_value_is_refused(backend: Backend, value: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="value"):
        await backend.get_max_value_tracker("foo").set_if_max({"value": value})
    assert await backend.get_max_value_tracker("foo").get_max() == {"value": "0", "data": None}


async def test_concurrent_set_if_max_is_serialised(backend: Backend) -> None:
    tracker = backend.get_max_value_tracker("foo")
    values = [7, 3, 11, 2, 11, 5, 13, 1]
    results = await asyncio.gather(
        *(tracker.set_if_max({"value": str(v), "data": i}) for i, v in enumerate(values))
    )
    assert (await tracker.get_max())["value"] == "13"
    replaced = [r for r, v in zip(results, values, strict=True) if r["value"] != str(v)]
    previous = sorted(int(r["value"]) for r in replaced)
    assert previous[0] == 0
    assert len(set(previous)) == len(previous)
