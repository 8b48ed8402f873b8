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
