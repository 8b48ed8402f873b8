"""sqlite store: not written yet (next commit)."""

from __future__ import annotations

from ilp_paychan.ledger.store import LedgerStore


async def open_sqlite_store(url: str) -> LedgerStore:
    raise NotImplementedError("the sqlite store lands in the next commit")
