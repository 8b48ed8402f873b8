"""`OnDemandStore`: a store that opens on its first use and may be closed and opened again.

What it is for: a plugin's TransferLog (and a module's `ctx.backend`) must answer reads before
the plugin connects, but opening a durable store is asynchronous and a constructor is not. So the
plugin hands out TransferLogs over this stand-in: the first call opens the real store (once, even
when many calls arrive together), later calls go straight to it, and `close()` releases it until
the next call opens it again. Data always lives in the real store; nothing is cached here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ilp_paychan.ledger.backend import open_backend
from ilp_paychan.ledger.store import LedgerStore

#: The store operations forwarded (every method of the LedgerStore interface but `close`).
_OPERATIONS = frozenset(
    name
    for name, value in vars(LedgerStore).items()
    if callable(value) and not name.startswith("_") and name != "close"
)


class OnDemandStore:
    """A LedgerStore over `source` (anything `open_backend` accepts), opened on first use."""

    __slots__ = ("_opening", "_source", "_store")

    def __init__(self, source: object) -> None:
        self._source = source
        self._store: LedgerStore | None = None
        self._opening: asyncio.Future[LedgerStore] | None = None

    @property
    def is_open(self) -> bool:
        """Whether the real store is open now."""
        return self._store is not None

    async def open(self) -> LedgerStore:
        """The open store, opening it if needed; concurrent callers share one attempt.

        A failed attempt raises to every caller waiting on it and leaves the store closed, so a
        later call tries again.
        """
        store = self._store
        if store is not None:
            return store
        opening = self._opening
        if opening is None:
            opening = asyncio.ensure_future(self._open())
            self._opening = opening
            opening.add_done_callback(self._opened)
        # Shielded: a caller given up on (cancelled) must not cancel the others' attempt.
        return await asyncio.shield(opening)

    async def _open(self) -> LedgerStore:
        store = (await open_backend(self._source)).store
        self._store = store
        return store

    def _opened(self, opening: asyncio.Future[LedgerStore]) -> None:
        if self._opening is opening:
            self._opening = None
        if not opening.cancelled():
            opening.exception()  # retrieved here; the waiting callers raise it

    async def close(self) -> None:
        """Close the real store if it is open (after an attempt in progress); idempotent."""
        opening = self._opening
        if opening is not None:
            try:
                await asyncio.shield(opening)
            except Exception:
                return
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    def __getattr__(self, name: str) -> Any:
        if name not in _OPERATIONS:
            raise AttributeError(name)

        async def operation(*args: Any, **kwargs: Any) -> Any:
            store = self._store
            if store is None:
                store = await self.open()
            return await getattr(store, name)(*args, **kwargs)

        operation.__name__ = name
        return operation

    def __repr__(self) -> str:
        state = "open" if self._store is not None else "closed"
        return f"<OnDemandStore {state}>"
