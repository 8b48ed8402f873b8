"""OnDemandStore: a store opened by its first call, once for concurrent first calls, and closed
and opened again on demand."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.ledger import Backend, open_backend
from ilp_paychan.ledger import on_demand as on_demand_module
from ilp_paychan.ledger.on_demand import OnDemandStore


class CountingOpener:
    """Stands in for `open_backend` in the on_demand module: counts the opens and holds each
    one until `release` is set, so that calls arriving meanwhile really overlap with it."""

    def __init__(self, failures: int = 0) -> None:
        self.opened = 0
        self.failures = failures
        self.release = asyncio.Event()

    async def __call__(self, source: object) -> Backend:
        self.opened += 1
        await self.release.wait()
        if self.failures:
            self.failures -= 1
            raise OSError("the store is not reachable")
        return await open_backend(source)


@pytest.fixture
def opener(monkeypatch: pytest.MonkeyPatch) -> CountingOpener:
    counting = CountingOpener()
    monkeypatch.setattr(on_demand_module, "open_backend", counting)
    return counting


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


async def test_nothing_opens_before_the_first_call(tmp_path: Path, opener: CountingOpener) -> None:
    store = OnDemandStore(sqlite_url(tmp_path))
    log = Backend(store).get_transfer_log("k", 100)
    assert (store.is_open, opener.opened) == (False, 0)
    opener.release.set()
    assert await log.get_maximum() == "100"
    assert (store.is_open, opener.opened) == (True, 1)
    await store.close()


async def test_concurrent_first_calls_share_one_open(
    tmp_path: Path, opener: CountingOpener
) -> None:
    store = OnDemandStore(sqlite_url(tmp_path))
    backend = Backend(store)
    log = backend.get_transfer_log("k")
    tracker = backend.get_max_value_tracker("t")
    calls: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(call)
        for call in (
            log.get_balance(),
            log.get_maximum(),
            log.prepare({"id": "a", "amount": "5"}, True),
            tracker.get_max(),
            store.open(),
        )
    ]
    for _ in range(5):
        await asyncio.sleep(0)  # every call is now waiting on the open in progress
    assert opener.opened == 1
    opener.release.set()
    results = await asyncio.gather(*calls)
    assert results[:2] == ["0", "Infinity"]
    assert opener.opened == 1
    assert await log.get_incoming_fulfilled_and_prepared() == "5"
    await store.close()


async def test_a_failed_open_raises_to_every_waiter_and_the_next_call_retries(
    tmp_path: Path, opener: CountingOpener
) -> None:
    opener.failures = 1
    store = OnDemandStore(sqlite_url(tmp_path))
    log = Backend(store).get_transfer_log()
    first = asyncio.ensure_future(log.get_balance())
    second = asyncio.ensure_future(log.get_maximum())
    await asyncio.sleep(0)
    opener.release.set()
    for call in (first, second):
        with pytest.raises(OSError, match="not reachable"):
            await call
    assert not store.is_open
    assert await log.get_balance() == "0"
    assert (store.is_open, opener.opened) == (True, 2)
    await store.close()


async def test_a_cancelled_caller_does_not_cancel_the_open(
    tmp_path: Path, opener: CountingOpener
) -> None:
    store = OnDemandStore(sqlite_url(tmp_path))
    log = Backend(store).get_transfer_log()
    impatient = asyncio.ensure_future(log.get_balance())
    patient = asyncio.ensure_future(log.get_balance())
    await asyncio.sleep(0)
    impatient.cancel()
    opener.release.set()
    assert await patient == "0"
    assert impatient.cancelled()
    assert opener.opened == 1
    await store.close()


async def test_close_releases_the_store_and_the_next_call_reopens_it_with_the_data(
    tmp_path: Path, opener: CountingOpener
) -> None:
    opener.release.set()
    store = OnDemandStore(sqlite_url(tmp_path))
    log = Backend(store).get_transfer_log()
    await log.prepare({"id": "a", "amount": "7"}, True)
    await log.fulfill("a", "x")
    first = await store.open()
    await store.close()
    assert not store.is_open
    await store.close()  # idempotent
    assert await log.get_balance() == "7"
    assert await store.open() is not first
    assert opener.opened == 2
    await store.close()


async def test_close_during_the_open_closes_what_it_opened(
    tmp_path: Path, opener: CountingOpener
) -> None:
    store = OnDemandStore(sqlite_url(tmp_path))
    opening = asyncio.ensure_future(store.open())
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(store.close())
    await asyncio.sleep(0)
    opener.release.set()
    await opening
    await closing
    assert not store.is_open


def test_only_store_operations_are_forwarded() -> None:
    store = OnDemandStore("memory:")
    assert callable(store.read_totals)
    with pytest.raises(AttributeError):
        store.no_such_operation  # noqa: B018
