"""Fixtures of the ledger tests: one `backend` per store kind, and a way to reopen it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ilp_paychan.ledger import Backend, MemoryStore, open_backend
from pgserver import postgres_url  # noqa: F401  (the session fixture, shared with other layers)

STORE_KINDS = [
    "memory",
    "kv",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
]


class DictKeyValue:
    """A user key/value object as the reference's tests use (async get/put/delete on a dict)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def put(self, key: str, value: str) -> None:
        self.data[key] = value

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def store_spec(store_kind: str, tmp_path: Any, request: pytest.FixtureRequest) -> object:
    """What `open_backend` gets: a URL or an object; reopening it reaches the same data."""
    if store_kind == "memory":
        return MemoryStore()
    if store_kind == "kv":
        return DictKeyValue()
    if store_kind == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    base: str = request.getfixturevalue("postgres_url")
    return f"{base}{'&' if '?' in base else '?'}schema=t_{uuid.uuid4().hex[:16]}"


Reopen = Callable[[], Awaitable[Backend]]


@pytest.fixture
async def reopen(store_spec: object) -> AsyncIterator[Reopen]:
    """Opens another Backend over the same store (as a restarted process would)."""
    opened: list[Backend] = []

    async def open_again() -> Backend:
        backend = await open_backend(store_spec)
        opened.append(backend)
        return backend

    yield open_again
    for backend in reversed(opened):
        await backend.close()


@pytest.fixture
async def backend(reopen: Reopen) -> Backend:
    return await reopen()
