"""In-process store (`memory:`): plain dicts, for tests and stateless plugins.

Each method runs the rules without awaiting anything, so on one event loop every call is atomic.
Transfers are kept as JSON text, so callers never share mutable objects with the store.

With `compact_settled=True` (a plugin's own memory log) a transfer that is final and has no
pending peer notice moves to a `SettledIndex`, which keeps it in about a third of the memory and
reads it back with only its id, amount, condition, expiry, state and fulfillment, and an
outgoing one that is fulfilled to a `FulfilledOutgoing`, 12 bytes that read back as its id,
direction and state only (see `ledger.settled`); `prune_settled` then costs what it removes.
Without it every transfer stays whole, as a `memory:` backend opened by URL keeps it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ilp_paychan.ledger import rules
from ilp_paychan.ledger.records import (
    FULFILLED,
    PREPARED,
    LogTotals,
    PrepareOutcome,
    StoredTransfer,
)
from ilp_paychan.ledger.settled import FulfilledOutgoing, SettledIndex
from ilp_paychan.ledger.store import DEFAULT_MAX_ENTRY, LedgerStore


class MemoryStore(LedgerStore):
    """Dict-backed `LedgerStore`; nothing survives the process."""

    def __init__(self, *, compact_settled: bool = False) -> None:
        self._totals: dict[str, LogTotals] = {}
        self._transfers: dict[str, dict[str, StoredTransfer]] = {}
        self._maxima: dict[str, tuple[int, str]] = {}
        self._compact = compact_settled
        #: Per log key, the packed settled transfers (only with `compact_settled`).
        self._settled: dict[str, SettledIndex] = {}
        #: Per log key, the fulfilled outgoing transfers kept as digests (likewise).
        self._paid: dict[str, FulfilledOutgoing] = {}

    def _log(self, key: str) -> tuple[LogTotals, dict[str, StoredTransfer]]:
        totals = self._totals.get(key)
        if totals is None:
            totals = self._totals[key] = LogTotals()
            self._transfers[key] = {}
        return totals, self._transfers[key]

    def _index(self, key: str) -> SettledIndex | None:
        if not self._compact:
            return None
        index = self._settled.get(key)
        if index is None:
            index = self._settled[key] = SettledIndex()
        return index

    def _find(self, key: str, transfer_id: str) -> StoredTransfer | None:
        """The full record kept, else the packed one read back (changing it changes nothing
        until `_settled_now` packs it again)."""
        found = self._transfers.get(key, {}).get(transfer_id)
        if found is None and self._compact:
            index = self._settled.get(key)
            if index is not None:
                found = index.get(transfer_id)
            if found is None:
                paid = self._paid.get(key)
                if paid is not None:
                    return paid.get(transfer_id)
        return found

    def _settled_now(self, key: str, transfer: StoredTransfer) -> None:
        """Pack a transfer that may have become final (kept whole if it cannot be packed)."""
        if not self._compact:
            return
        if transfer.state == FULFILLED and not transfer.is_incoming and not transfer.notify_peer:
            paid = self._paid.get(key)
            if paid is None:
                paid = self._paid[key] = FulfilledOutgoing()
            if paid.add(transfer):
                self._transfers[key].pop(transfer.id, None)
                return
        index = self._index(key)
        if index is not None and index.add(transfer):
            self._transfers[key].pop(transfer.id, None)

    async def read_totals(self, key: str) -> LogTotals:
        totals = self._totals.get(key)
        return LogTotals() if totals is None else totals.copy()

    async def read_transfer(self, key: str, transfer_id: str) -> StoredTransfer | None:
        found = self._transfers.get(key, {}).get(transfer_id)
        if found is None:
            return self._find(key, transfer_id)  # packed ones read back as a fresh object
        return replace(found)

    async def prepare(
        self,
        key: str,
        candidate: StoredTransfer,
        maximum: int | None,
        minimum: int | None,
    ) -> PrepareOutcome:
        totals, transfers = self._log(key)
        existing = transfers.get(candidate.id)
        if existing is None and self._compact:
            index = self._index(key)
            assert index is not None
            repeat = index.repeat(candidate)
            if repeat is not None:
                return repeat
            paid = self._paid.get(key)
            if paid is not None:
                repeat = paid.repeat(candidate)
                if repeat is not None:
                    return repeat
        outcome = rules.prepare(
            totals,
            existing,
            candidate,
            rules.effective_limit(totals.maximum, maximum),
            rules.effective_limit(totals.minimum, minimum),
        )
        if outcome is PrepareOutcome.NEW:
            # Kept as is, not copied: TransferLog builds a fresh candidate for every call.
            transfers[candidate.id] = candidate
        return outcome

    async def fulfill(
        self,
        key: str,
        transfer_id: str,
        fulfillment: str,
        notify_peer: bool,
        notice: bytes | None = None,
    ) -> bool:
        totals, _ = self._log(key)
        transfer = self._find(key, transfer_id)
        changed = rules.fulfill(totals, transfer, transfer_id, fulfillment, notify_peer, notice)
        if changed and transfer is not None:
            self._settled_now(key, transfer)
        return changed

    async def cancel(
        self, key: str, transfer_id: str, notify_peer: bool, notice: bytes | None = None
    ) -> bool:
        totals, _ = self._log(key)
        transfer = self._find(key, transfer_id)
        changed = rules.cancel(totals, transfer, transfer_id, notify_peer, notice)
        if changed and transfer is not None:
            self._settled_now(key, transfer)
        return changed

    async def revert_fulfillment(self, key: str, transfer_id: str) -> bool:
        totals, _ = self._log(key)
        transfer = self._find(key, transfer_id)
        changed = rules.revert_fulfillment(totals, transfer, transfer_id)
        if changed and transfer is not None:
            self._settled_now(key, transfer)
        return changed

    async def set_limit(self, key: str, field: str, value: str) -> None:
        totals, _ = self._log(key)
        if field == "maximum":
            totals.maximum = value
        else:
            totals.minimum = value

    async def list_prepared(self, key: str, expired_at: datetime | None) -> list[StoredTransfer]:
        found = [
            replace(t)
            for t in self._transfers.get(key, {}).values()
            if t.state == PREPARED
            and (expired_at is None or (t.expires_at is not None and t.expires_at <= expired_at))
        ]
        found.sort(key=_expiry_order)
        return found

    async def list_peer_notices(self, key: str) -> list[StoredTransfer]:
        found = [replace(t) for t in self._transfers.get(key, {}).values() if t.notify_peer]
        found.sort(key=lambda t: t.id)
        return found

    async def clear_peer_notice(self, key: str, transfer_id: str) -> None:
        found = self._transfers.get(key, {}).get(transfer_id)
        if found is not None:
            found.notify_peer = False
            found.notice = None
            self._settled_now(key, found)

    async def prune_settled(self, key: str, expired_before: datetime) -> int:
        index = self._settled.get(key)
        packed = 0 if index is None else index.prune(expired_before)
        paid = self._paid.get(key)
        if paid is not None:
            packed += paid.prune(expired_before)
        transfers = self._transfers.get(key)
        if not transfers:
            return packed
        gone = [tid for tid, t in transfers.items() if rules.prunable(t, expired_before)]
        for tid in gone:
            del transfers[tid]
        return packed + len(gone)

    async def read_max(self, key: str) -> str:
        found = self._maxima.get(key)
        return DEFAULT_MAX_ENTRY if found is None else found[1]

    async def set_if_max(self, key: str, value: int, entry_json: str) -> str | None:
        current = self._maxima.get(key)
        current_value = 0 if current is None else current[0]
        if value <= current_value:
            return None
        self._maxima[key] = (value, entry_json)
        return DEFAULT_MAX_ENTRY if current is None else current[1]

    async def close(self) -> None:
        return None


def _expiry_order(transfer: StoredTransfer) -> tuple[bool, float, str]:
    expiry = transfer.expires_at
    return (expiry is None, 0.0 if expiry is None else expiry.timestamp(), transfer.id)
