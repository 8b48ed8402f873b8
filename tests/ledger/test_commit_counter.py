"""The durable stores count their write transactions: bench/transfers.py reports commits per
transfer from these counters, so they must count each commit once and group-committed
operations together."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.ledger import open_backend


def _transfer(n: int) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=n + 1, version=4)),
        "amount": "1",
        "executionCondition": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
        "expiresAt": "2030-01-01T00:00:00.000Z",
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    base: str = request.getfixturevalue("postgres_url")
    return f"{base}{'&' if '?' in base else '?'}schema=c_{uuid.uuid4().hex[:16]}"


async def test_each_awaited_write_is_one_commit(durable_url: str) -> None:
    backend = await open_backend(durable_url)
    try:
        store: Any = backend.store
        log = backend.get_transfer_log("counted")
        before = (store.commits, store.operations)
        await log.prepare(_transfer(0), True)
        await log.fulfill(_transfer(0)["id"], "f")
        assert (store.commits - before[0], store.operations - before[1]) == (2, 2)
        await log.get_balance()  # reads commit nothing
        assert store.commits - before[0] == 2
    finally:
        await backend.close()


async def test_writes_pending_together_share_commits(durable_url: str) -> None:
    backend = await open_backend(durable_url)
    try:
        store: Any = backend.store
        log = backend.get_transfer_log("counted")
        before = (store.commits, store.operations)
        await asyncio.gather(*(log.prepare(_transfer(n), True) for n in range(20)))
        commits, operations = store.commits - before[0], store.operations - before[1]
        assert operations == 20
        assert 1 <= commits < 20
    finally:
        await backend.close()


async def test_a_clear_rides_along_with_the_next_write(durable_url: str) -> None:
    """Clearing an acknowledged peer notice takes no commit of its own: nobody waits for it, and
    losing it only makes the plugin tell the peer again. It is invisible to this process at once
    and committed with the next write."""
    backend = await open_backend(durable_url)
    try:
        store: Any = backend.store
        log = backend.get_transfer_log("counted")
        paid = _transfer(0)["id"]
        await log.prepare(_transfer(0), True)
        await log.fulfill(paid, "f", notify_peer=True, notice=b"ilp")
        assert [n["transfer"]["id"] for n in await log.list_peer_notices()] == [paid]
        before = (store.commits, store.operations)
        await log.clear_peer_notice(paid)
        assert store.commits == before[0]
        assert await log.list_peer_notices() == []
        await log.prepare(_transfer(1), True)
        assert (store.commits - before[0], store.operations - before[1]) == (1, 2)
        again = await open_backend(durable_url)
        try:
            assert await again.get_transfer_log("counted").list_peer_notices() == []
        finally:
            await again.close()
    finally:
        await backend.close()


async def test_a_lone_clear_is_committed_by_itself_soon(durable_url: str) -> None:
    backend = await open_backend(durable_url)
    try:
        store: Any = backend.store
        log = backend.get_transfer_log("counted")
        paid = _transfer(0)["id"]
        await log.prepare(_transfer(0), True)
        await log.fulfill(paid, "f", notify_peer=True)
        before = store.commits
        await log.clear_peer_notice(paid)
        for _ in range(500):  # bounded: the clear's own commit follows within CLEAR_DELAY
            if store.commits > before:
                break
            await asyncio.sleep(0.01)
        assert store.commits == before + 1
        again = await open_backend(durable_url)
        try:
            assert await again.get_transfer_log("counted").list_peer_notices() == []
        finally:
            await again.close()
    finally:
        await backend.close()


async def test_close_commits_the_clears_still_queued(durable_url: str) -> None:
    backend = await open_backend(durable_url)
    log = backend.get_transfer_log("counted")
    ids = [_transfer(n)["id"] for n in range(3)]
    for n, tid in enumerate(ids):
        await log.prepare(_transfer(n), True)
        await log.fulfill(tid, "f", notify_peer=True)
    await log.clear_peer_notice(ids[0])
    await log.clear_peer_notice(ids[2])
    await backend.close()
    again = await open_backend(durable_url)
    try:
        listed = await again.get_transfer_log("counted").list_peer_notices()
        assert [n["transfer"]["id"] for n in listed] == [ids[1]]
    finally:
        await again.close()
