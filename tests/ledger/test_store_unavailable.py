"""A store that cannot do its work right now raises StoreUnavailableError (T00), not its own error.

The plugin treats that class as temporary (a peer is told to try again, an expiry is retried),
so each store maps the failures that say "not now" rather than "never" to it: PostgreSQL's lost
connections (tested with a halted server elsewhere), SQLite's refused writes, and the `OSError`s
of a user's key/value object. The message names the cause and no path, host or credential, as
it may reach the peer.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from ilp_paychan.errors import StoreUnavailableError
from ilp_paychan.ledger import PrepareOutcome, open_backend
from ilp_paychan.ledger import sqlite as sqlite_store

TRANSFER = {
    "id": "5857d460-2a46-4545-8311-5539d99e78c0",
    "amount": "10",
    "executionCondition": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
    "expiresAt": "2030-01-01T00:00:00.000Z",
    "ledger": "g.eur.test.",
    "to": "g.eur.test.bob",
    "from": "g.eur.test.alice",
}


async def test_a_write_the_sqlite_file_refuses_is_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the write lock past the busy timeout (shortened here)."""
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "ledger.db"
    backend = await open_backend(f"sqlite:///{path}")
    try:
        log = backend.get_transfer_log("k", maximum="100")
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailableError) as caught:
                await log.prepare(TRANSFER, True)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        error = caught.value
        assert isinstance(error, ConnectionError)
        assert error.ilp_code == "T00"
        assert "database is locked" in str(error)
        assert str(tmp_path) not in str(error)
        assert isinstance(error.__cause__, sqlite3.OperationalError)
        # Nothing was stored; the same write succeeds once the lock is free, counted once.
        assert await log.get_incoming_fulfilled_and_prepared() == "0"
        await log.prepare(TRANSFER, True)
        assert (await log.get(TRANSFER["id"]))["state"] == "prepared"
        assert await log.get_incoming_fulfilled_and_prepared() == "10"
    finally:
        await backend.close()


class FlakyObjectStore:
    """A user's key/value object (the reference's `_store` shape) that fails on demand."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.failure: Exception | None = None

    def get(self, key: str) -> str | None:
        if self.failure is not None:
            raise self.failure
        return self.data.get(key)

    def put(self, key: str, value: str) -> None:
        if self.failure is not None:
            raise self.failure
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


@pytest.mark.parametrize(
    "failure", [ConnectionRefusedError(111, "refused by db.internal:6379"), TimeoutError()]
)
async def test_an_os_error_of_a_key_value_object_is_temporary(failure: Exception) -> None:
    target = FlakyObjectStore()
    backend = await open_backend(target)
    log = backend.get_transfer_log("k", maximum="100")
    target.failure = failure
    with pytest.raises(StoreUnavailableError) as caught:
        await log.prepare(TRANSFER, True)
    assert type(failure).__name__ in str(caught.value)
    assert "db.internal" not in str(caught.value)  # the object's own text stays local
    assert caught.value.__cause__ is failure
    target.failure = None
    await log.prepare(TRANSFER, True)
    assert await log.get_incoming_fulfilled_and_prepared() == "10"


async def test_other_errors_of_a_key_value_object_pass_through_unchanged() -> None:
    """Only "cannot reach the data" is temporary by its class; anything else stays itself."""
    target = FlakyObjectStore()
    backend = await open_backend(target)
    log = backend.get_transfer_log("k", maximum="100")
    target.failure = failure = ValueError("value too long")
    with pytest.raises(ValueError, match="value too long") as caught:
        await log.prepare(TRANSFER, True)
    assert caught.value is failure
    target.failure = None
    assert await log.get_incoming_fulfilled_and_prepared() == "0"


async def test_a_write_waits_for_another_writers_lock_without_blocking_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another process holds SQLite's write lock, the write waits on the store's thread:
    the event loop goes on (a peer is still answered), and the write completes once the lock
    is free. Were the loop blocked, the sleeps below could not return before the busy timeout
    ran out and failed the write."""
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", 20_000)
    path = tmp_path / "ledger.db"
    backend = await open_backend(f"sqlite:///{path}")
    try:
        log = backend.get_transfer_log("k")
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            write = asyncio.ensure_future(log.prepare(TRANSFER, True))
            for _ in range(10):
                await asyncio.sleep(0.01)
            assert not write.done()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await write is PrepareOutcome.NEW
        assert await log.get_incoming_fulfilled_and_prepared() == "10"
    finally:
        await backend.close()
