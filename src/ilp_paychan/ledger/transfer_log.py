"""TransferLog: the public face of one log's transfers and sums (see docs/api.md).

It validates arguments, hands one atomic transition to the store per call and formats the answer
(amounts as decimal text). It never reads, modifies and writes back in separate steps: that is
what made the reference unsafe across processes (its sums lived in one process's memory).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger import rules
from ilp_paychan.ledger.inputs import (
    format_limit,
    normalise_transfer,
    parse_expiry,
    parse_limit,
    to_json,
)
from ilp_paychan.ledger.records import PrepareOutcome, StoredTransfer
from ilp_paychan.ledger.store import LedgerStore


class TransferLog:
    """Transfers and balances under one key of a store; every method is one store transaction.

    Obtain one with `Backend.get_transfer_log`. `maximum`/`minimum` given there apply until a
    limit is stored with `set_maximum`/`set_minimum`, which then wins in every process.
    """

    __slots__ = ("_default_maximum", "_default_minimum", "_store", "key")

    def __init__(
        self,
        store: LedgerStore,
        key: str,
        maximum: int | None,
        minimum: int | None,
    ) -> None:
        self._store = store
        self.key = key
        self._default_maximum = maximum
        self._default_minimum = minimum

    async def set_maximum(self, maximum: int | str | None) -> None:
        """Store the highest allowed balance (`None` or "Infinity": unlimited)."""
        value = parse_limit(maximum, "maximum")
        await self._store.set_limit(self.key, "maximum", format_limit(value, "maximum"))

    async def set_minimum(self, minimum: int | str | None) -> None:
        """Store the lowest allowed balance (`None` or "-Infinity": unlimited)."""
        value = parse_limit(minimum, "minimum")
        await self._store.set_limit(self.key, "minimum", format_limit(value, "minimum"))

    async def get_maximum(self) -> str:
        """The most IFAP - OF may reach (incoming prepares count): decimal text or "Infinity"."""
        totals = await self._store.read_totals(self.key)
        limit = rules.effective_limit(totals.maximum, self._default_maximum)
        return format_limit(limit, "maximum")

    async def get_minimum(self) -> str:
        """The least IF - OFAP may reach (outgoing prepares count): decimal text or "-Infinity"."""
        totals = await self._store.read_totals(self.key)
        limit = rules.effective_limit(totals.minimum, self._default_minimum)
        return format_limit(limit, "minimum")

    async def get_balance(self) -> str:
        """Incoming fulfilled minus outgoing fulfilled: for display; limits use the sums."""
        totals = await self._store.read_totals(self.key)
        return str(totals.incoming_fulfilled - totals.outgoing_fulfilled)

    async def get_incoming_fulfilled(self) -> str:
        """The sum of incoming transfers fulfilled (IF), as decimal text."""
        return str((await self._store.read_totals(self.key)).incoming_fulfilled)

    async def get_outgoing_fulfilled(self) -> str:
        """The sum of outgoing transfers fulfilled (OF), as decimal text."""
        return str((await self._store.read_totals(self.key)).outgoing_fulfilled)

    async def get_incoming_fulfilled_and_prepared(self) -> str:
        """IF plus the incoming transfers still prepared (IFAP), as decimal text."""
        return str((await self._store.read_totals(self.key)).incoming_fulfilled_and_prepared)

    async def get_outgoing_fulfilled_and_prepared(self) -> str:
        """OF plus the outgoing transfers still prepared (OFAP), as decimal text."""
        return str((await self._store.read_totals(self.key)).outgoing_fulfilled_and_prepared)

    async def get(self, transfer_id: str) -> dict[str, Any]:
        """The transfer-with-info record (`transfer`, `isIncoming`, `state`, `fulfillment`).

        Raises:
            TransferNotFoundError: no transfer with that id was ever prepared in this log.
        """
        found = await self._store.read_transfer(self.key, _check_id(transfer_id))
        if found is None:
            raise rules.not_found(transfer_id)
        return found.record()

    async def prepare(self, transfer: Mapping[str, Any], is_incoming: bool) -> PrepareOutcome:
        """Record a prepared transfer and reserve its amount within the limits.

        Raises:
            InvalidFieldsError: `id`, `amount` or `expiresAt` is malformed.
            DuplicateIdError: the id is stored with other contents (in any state).
            NotAcceptedError: a limit would be passed; nothing is stored then.
        """
        if not isinstance(is_incoming, bool):
            raise InvalidFieldsError(f"isIncoming must be a boolean, got {is_incoming!r}")
        transfer_id, normal, amount = normalise_transfer(transfer)
        candidate = StoredTransfer(
            id=transfer_id,
            transfer_json=to_json(normal, "transfer"),
            is_incoming=is_incoming,
            amount=amount,
            expires_at=parse_expiry(normal.get("expiresAt")),
        )
        return await self._store.prepare(
            self.key, candidate, self._default_maximum, self._default_minimum
        )

    async def fulfill(
        self,
        transfer_id: str,
        fulfillment: str,
        *,
        notify_peer: bool = False,
        notice: bytes | None = None,
    ) -> bool:
        """Mark a prepared transfer fulfilled and count it; False if it already was fulfilled.

        The fulfillment is stored as given: the caller checks it against the condition.
        `notify_peer=True` records in the same transaction that the peer must still be told,
        with `notice` (the plugin's Fulfill `ilp` data, if any) to send then.

        Raises:
            TransferNotFoundError: unknown id.
            AlreadyRolledBackError: the transfer was cancelled.
        """
        if not isinstance(fulfillment, str):
            raise InvalidFieldsError(f"fulfillment must be a string, got {fulfillment!r}")
        if notice is None:
            return await self._store.fulfill(
                self.key, _check_id(transfer_id), fulfillment, bool(notify_peer)
            )
        return await self._store.fulfill(
            self.key, _check_id(transfer_id), fulfillment, bool(notify_peer), _notice(notice)
        )

    async def cancel(
        self, transfer_id: str, *, notify_peer: bool = False, notice: bytes | None = None
    ) -> bool:
        """Cancel a prepared transfer, releasing its reservation; False if already cancelled.

        `notify_peer=True` records the peer notice, with `notice` (the plugin's encoded ILP
        error of the Reject) to send then.

        Raises:
            TransferNotFoundError: unknown id.
            AlreadyFulfilledError: the transfer was fulfilled.
        """
        if notice is None:
            return await self._store.cancel(self.key, _check_id(transfer_id), bool(notify_peer))
        return await self._store.cancel(
            self.key, _check_id(transfer_id), bool(notify_peer), _notice(notice)
        )

    async def revert_fulfillment(self, transfer_id: str) -> bool:
        """Undo our fulfillment of an incoming transfer the sender has cancelled.

        For when the sender answers our Fulfill with "already cancelled" (it cancelled at its
        expiry before the Fulfill reached it): its decision is final, so the money did not
        arrive. In one transaction the transfer goes fulfilled -> cancelled, its amount comes off
        the incoming sums (the balance drops back) and its peer notice is dropped. Returns True
        when it changed, False when the transfer was already cancelled.

        Raises:
            TransferNotFoundError: unknown id.
            NotAcceptedError: the transfer is outgoing, or still prepared.
        """
        return await self._store.revert_fulfillment(self.key, _check_id(transfer_id))

    async def list_prepared(self, expired_at: datetime | None = None) -> list[dict[str, Any]]:
        """Every prepared transfer, soonest expiry first (a restarted plugin re-arms these).

        With `expired_at`, only those whose `expiresAt` is at or before that instant.
        """
        if expired_at is not None and expired_at.tzinfo is None:
            raise InvalidFieldsError("expired_at must be timezone-aware")
        return [t.record() for t in await self._store.list_prepared(self.key, expired_at)]

    async def list_peer_notices(self) -> list[dict[str, Any]]:
        """Settled transfers (fulfilled or cancelled with `notify_peer`) not yet acknowledged.

        Each is a transfer-with-info record plus `notice`: the bytes given to `fulfill`/`cancel`
        with the notice, or None.
        """
        found = []
        for t in await self._store.list_peer_notices(self.key):
            record = t.record()
            record["notice"] = t.notice
            found.append(record)
        return found

    async def clear_peer_notice(self, transfer_id: str) -> None:
        """The peer acknowledged the Fulfill or Reject; unknown ids are ignored."""
        await self._store.clear_peer_notice(self.key, _check_id(transfer_id))

    async def prune_settled(self, expired_before: datetime) -> int:
        """Forget settled transfers whose `expiresAt` is before `expired_before`; how many.

        Only fulfilled or cancelled transfers without a pending peer notice go (and never one
        without an expiry); the sums stay as they are. A forgotten id can be prepared again as
        new, so call this only with an instant safely in the past for a caller that refuses
        prepares already past their expiry, as the plugin does (an identical re-send of a
        forgotten transfer carries its old, past expiry and is refused before the ledger).
        """
        if not isinstance(expired_before, datetime) or expired_before.tzinfo is None:
            raise InvalidFieldsError("expired_before must be a timezone-aware datetime")
        return await self._store.prune_settled(self.key, expired_before)


def _notice(notice: object) -> bytes:
    if not isinstance(notice, bytes | bytearray | memoryview):
        raise InvalidFieldsError(f"notice must be bytes, got {type(notice).__name__}")
    return bytes(notice)


def _check_id(transfer_id: object) -> str:
    if not isinstance(transfer_id, str):
        raise InvalidFieldsError(f"id must be a string, got {transfer_id!r}")
    return transfer_id
