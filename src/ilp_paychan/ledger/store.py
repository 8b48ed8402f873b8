"""The interface every store implements: one method per ledger transition, each atomic.

The TransferLog and MaxValueTracker fronts validate input and format output; a store only keeps
data and runs the pure rules of `ledger.rules` inside one transaction per call. Nothing here knows
about sockets or the plugin.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ilp_paychan.ledger.records import LogTotals, PrepareOutcome, StoredTransfer

DEFAULT_MAX_ENTRY = '{"value":"0","data":null}'


class LedgerStore(Protocol):
    """Storage engine behind a Backend. `key` is a validated TransferLog or tracker key."""

    async def read_totals(self, key: str) -> LogTotals:
        """The log's sums and stored limits (zeros and `None` for a log never written)."""
        ...

    async def read_transfer(self, key: str, transfer_id: str) -> StoredTransfer | None:
        """The stored transfer with this id, or `None` if the log has none (or pruned it)."""
        ...

    async def prepare(
        self,
        key: str,
        candidate: StoredTransfer,
        maximum: int | None,
        minimum: int | None,
    ) -> PrepareOutcome:
        """`rules.prepare` in one transaction; `maximum`/`minimum` are the argument defaults."""
        ...

    async def fulfill(
        self,
        key: str,
        transfer_id: str,
        fulfillment: str,
        notify_peer: bool,
        notice: bytes | None = None,
    ) -> bool:
        """`rules.fulfill`; `notice` is stored with the peer notice (only if `notify_peer`)."""
        ...

    async def cancel(
        self, key: str, transfer_id: str, notify_peer: bool, notice: bytes | None = None
    ) -> bool:
        """`rules.cancel`; `notice` is stored with the peer notice (only if `notify_peer`)."""
        ...

    async def revert_fulfillment(self, key: str, transfer_id: str) -> bool:
        """`rules.revert_fulfillment` in one transaction (state, sums and notice together)."""
        ...

    async def set_limit(self, key: str, field: str, value: str) -> None:
        """Store `maximum` or `minimum` (`field`) as text: a decimal or the matching infinity."""
        ...

    async def list_prepared(self, key: str, expired_at: datetime | None) -> list[StoredTransfer]:
        """Prepared transfers by expiry (those without one last); with `expired_at`, only those
        whose expiry is at or before it."""
        ...

    async def list_peer_notices(self, key: str) -> list[StoredTransfer]:
        """Transfers whose peer notice is still pending (with its payload), by id."""
        ...

    async def clear_peer_notice(self, key: str, transfer_id: str) -> None:
        """Drop the notice flag and its payload."""
        ...

    async def prune_settled(self, key: str, expired_before: datetime) -> int:
        """Delete the transfers `rules.prunable` picks, in one transaction; how many went."""
        ...

    async def read_max(self, key: str) -> str:
        """The tracker's entry as JSON text (`DEFAULT_MAX_ENTRY` when never set)."""
        ...

    async def set_if_max(self, key: str, value: int, entry_json: str) -> str | None:
        """Replace the entry if `value` is strictly larger: return the previous entry's JSON, or
        `None` (nothing written) when it is not larger."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""
        ...
