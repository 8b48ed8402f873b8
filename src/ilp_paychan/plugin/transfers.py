"""The transfer state machine: who may move a transfer from `prepared` to fulfilled/cancelled.

Everything that decides a transfer's fate lives here; the plugin only turns packets and calls into
these operations and reports what they did. Rules, per side (the reference's, defects fixed):

    (none) --prepare--> prepared --fulfill--> fulfilled      (both final)
                            \\------cancel--> cancelled

1. The TransferLog commits every transition in one store transaction and is the only judge of a
   race: a fulfill and a cancel of the same transfer can never both succeed. Whatever loses gets
   AlreadyRolledBackError / AlreadyFulfilledError from the ledger.
2. Incoming transfers (the peer pays us): only we fulfil them (`fulfill_incoming`, preimage
   checked as bytes against the condition, before `expiresAt` by our clock) or reject them
   (`reject_incoming`). Both record a peer notice in the same transaction, so the peer is told even
   after a crash. The peer may cancel one only once its `expiresAt` has passed (its expiry Reject,
   RFC 23, Prepare > Expiry).
3. Outgoing transfers (we pay the peer): only the peer fulfils them (`fulfill_outgoing`, same
   checks) or rejects them (`reject_outgoing`). We never reject our own outgoing transfer; it is
   cancelled locally at expiry without telling the peer (RFC 23: a Reject comes from the
   receiver), or at once when the peer refused the Prepare (so no reservation outlives it).
4. Expiry (`expire`) cancels whatever is still prepared at `expiresAt`, in every mode (so none
   waits forever); for an incoming transfer it records a peer notice (the receiver's R00 Reject
   is what a JS sender needs). Losing to a fulfill is a no-op.
5. Repeats are idempotent (RFC 23, Fulfill and Reject): fulfilling a fulfilled transfer with its
   preimage succeeds with `changed=False`; rejecting or cancelling a cancelled one likewise.

The book caches the prepared transfers this plugin knows (parsed once: amount, condition bytes,
expiry), so the hot path does no store read before the transition itself; settled or foreign ids
fall back to `TransferLog.get`. It also forgets settled transfers for the retention task
(`forget_settled`), keeping in `forgotten` what the answers above still need (see
`forgotten.py`): a prepare expiring at or before the pruning watermark is refused, and a Fulfill
of a forgotten outgoing transfer we cancelled is still AlreadyRolledBackError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ilp_paychan.codec.condition import b64url_decode, fulfillment_matches
from ilp_paychan.errors import (
    AlreadyFulfilledError,
    AlreadyRolledBackError,
    InvalidFieldsError,
    InvalidFulfillmentError,
    NotAcceptedError,
    StoreUnavailableError,
    TransferNotFoundError,
)
from ilp_paychan.ledger import CANCELLED, FULFILLED, PREPARED, PrepareOutcome, TransferLog
from ilp_paychan.plugin.forgotten import ForgottenTransfers
from ilp_paychan.plugin.validate import b64url


class FulfillmentMismatchError(NotAcceptedError, InvalidFulfillmentError):
    """The preimage does not hash to the condition.

    The reference answers this with NotAcceptedError (F00); being also an InvalidFulfillmentError
    lets Python callers catch it by meaning.
    """

    ilp_code = "F00"

    @property
    def error_name(self) -> str:
        return "NotAcceptedError"


@dataclass(slots=True)
class Entry:
    """One transfer as the state machine sees it."""

    id: str
    record: dict[str, Any]
    is_incoming: bool
    amount: int
    condition: bytes
    expires_at: float
    state: str = PREPARED
    fulfillment: str | None = None
    #: What a peer notice sends: the Reject's encoded ILP error or the Fulfill's `ilp` data.
    notice: bytes | None = None

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Entry:
        """From a transfer-with-info record of the ledger.

        A memory log keeps a fulfilled outgoing transfer as its id only (`ledger.settled`):
        such an entry has no condition, amount or expiry (all empty).
        """
        record = stored["transfer"]
        if "expiresAt" not in record:
            return cls(record["id"], record, stored["isIncoming"], 0, b"", 0.0, stored["state"])
        condition_text = record.get("executionCondition", "")
        return cls(
            id=record["id"],
            record=record,
            is_incoming=stored["isIncoming"],
            amount=int(record["amount"]),
            condition=b64url_decode(condition_text, field="executionCondition"),
            expires_at=datetime.fromisoformat(record["expiresAt"]).timestamp(),
            state=stored["state"],
            fulfillment=stored.get("fulfillment"),
            notice=stored.get("notice"),
        )


class TransferBook:
    """The transitions of rules 1–5 over one TransferLog, with a cache of prepared transfers."""

    __slots__ = ("forgotten", "log", "prepared")

    def __init__(self, log: TransferLog, *, prunes: bool = False) -> None:
        """`prunes`: the retention task will make the log forget settled transfers."""
        self.log = log
        self.prepared: dict[str, Entry] = {}
        self.forgotten = ForgottenTransfers(keep_cancelled=prunes)

    async def find(self, transfer_id: str) -> Entry:
        """The entry for an id, from the cache or the store. Raises TransferNotFoundError."""
        entry = self.prepared.get(transfer_id)
        if entry is not None:
            return entry
        return Entry.from_stored(await self.log.get(transfer_id))

    def remember(self, entry: Entry) -> None:
        """Cache a transfer reloaded from the store, if it is still prepared."""
        if entry.state == PREPARED:
            self.prepared[entry.id] = entry

    async def prepare(self, entry: Entry) -> PrepareOutcome:
        """Store a new prepared transfer (limits checked by the ledger); repeats are reported.

        When the store fails with StoreUnavailableError the prepare may have been committed
        all the same (the connection dropped during the commit), so the entry is kept: the
        caller arms its expiry, which cancels it if it was stored and forgets it if not.

        Raises InvalidFieldsError (before the store) when the expiry is at or before the
        pruning watermark: it could be a transfer the log has forgotten.
        """
        if entry.expires_at <= self.forgotten.watermark:
            raise InvalidFieldsError(
                f"invalid expiresAt: {entry.record.get('expiresAt')} is not after the expiry of "
                "transfers this plugin has already forgotten (was the clock set back?)"
            )
        try:
            outcome = await self.log.prepare(entry.record, entry.is_incoming)
        except StoreUnavailableError:
            self.prepared.setdefault(entry.id, entry)
            raise
        if outcome is PrepareOutcome.NEW or outcome is PrepareOutcome.REPEAT_PREPARED:
            self.prepared.setdefault(entry.id, entry)
        return outcome

    async def fulfill_incoming(
        self, transfer_id: str, fulfillment: bytes, now: float, ilp: bytes | None = None
    ) -> tuple[Entry, bool]:
        """We fulfil a transfer the peer sent us (rule 2); records the peer notice (with `ilp`)."""
        entry = await self.find(transfer_id)
        if not entry.is_incoming:
            raise NotAcceptedError(f"transfer {transfer_id} is outgoing; cannot fulfill.")
        return entry, await self._fulfill(entry, fulfillment, now, notify_peer=True, notice=ilp)

    async def fulfill_outgoing(
        self, transfer_id: str, fulfillment: bytes, now: float
    ) -> tuple[Entry, bool]:
        """The peer fulfils a transfer we sent (rule 3)."""
        try:
            entry = await self.find(transfer_id)
        except TransferNotFoundError:
            if self.forgotten.was_cancelled(transfer_id):
                raise AlreadyRolledBackError(
                    f"transfer {transfer_id} has already been cancelled."
                ) from None
            raise
        if entry.is_incoming:
            raise NotAcceptedError(f"transfer {transfer_id} is incoming; refusing to fulfill.")
        return entry, await self._fulfill(entry, fulfillment, now, notify_peer=False)

    async def _fulfill(
        self,
        entry: Entry,
        fulfillment: bytes,
        now: float,
        *,
        notify_peer: bool,
        notice: bytes | None = None,
    ) -> bool:
        if entry.state == CANCELLED:
            raise AlreadyRolledBackError(f"transfer {entry.id} has already been cancelled.")
        if entry.state == FULFILLED and not entry.condition:
            return False  # kept as its id only: paid, so acknowledged (the preimage moves nothing)
        if not fulfillment_matches(fulfillment, entry.condition):
            raise FulfillmentMismatchError("Fulfillment does not match the condition")
        if entry.state == FULFILLED:
            return False
        if now >= entry.expires_at:
            raise AlreadyRolledBackError(f"transfer {entry.id} has already expired.")
        text = b64url(fulfillment)
        try:
            changed = await self.log.fulfill(entry.id, text, notify_peer=notify_peer, notice=notice)
        except (AlreadyRolledBackError, TransferNotFoundError):
            self.prepared.pop(entry.id, None)
            raise
        self.prepared.pop(entry.id, None)
        entry.state = FULFILLED
        entry.fulfillment = text
        if changed:
            entry.notice = notice
        return changed

    async def reject_incoming(
        self, transfer_id: str, ilp_error: bytes | None = None
    ) -> tuple[Entry, bool]:
        """We reject a transfer the peer sent us (rule 2); records the peer notice (with the
        encoded ILP error to send)."""
        entry = await self.find(transfer_id)
        if not entry.is_incoming:
            raise NotAcceptedError(f"transfer {transfer_id} is outgoing; cannot reject.")
        return entry, await self._cancel(entry, notify_peer=True, notice=ilp_error)

    async def reject_by_peer(self, transfer_id: str, now: float) -> tuple[Entry, bool]:
        """The peer rejects: our outgoing transfer (rule 3), or its expiry of our incoming one."""
        entry = await self.find(transfer_id)
        if entry.is_incoming and now < entry.expires_at:
            raise NotAcceptedError(f"transfer {transfer_id} is incoming; peer cannot reject.")
        return entry, await self._cancel(entry, notify_peer=False)

    async def cancel_refused(self, transfer_id: str) -> bool:
        """Release an outgoing reservation the peer refused."""
        entry = self.prepared.get(transfer_id)
        if entry is None:
            return False
        try:
            return await self._cancel(entry, notify_peer=False)
        except AlreadyFulfilledError:
            return False

    async def expire(self, transfer_id: str) -> tuple[Entry | None, bool]:
        """Cancel a transfer still prepared at its expiry (rule 4); (entry, False) if it lost."""
        entry = self.prepared.get(transfer_id)
        if entry is None:
            return None, False
        try:
            return entry, await self._cancel(entry, notify_peer=entry.is_incoming)
        except (AlreadyFulfilledError, TransferNotFoundError):
            self.prepared.pop(transfer_id, None)
            return entry, False

    async def _cancel(
        self, entry: Entry, *, notify_peer: bool, notice: bytes | None = None
    ) -> bool:
        if entry.state == FULFILLED:
            raise AlreadyFulfilledError(f"transfer {entry.id} has already been fulfilled.")
        if entry.state == CANCELLED:
            return False
        try:
            changed = await self.log.cancel(entry.id, notify_peer=notify_peer, notice=notice)
        except AlreadyFulfilledError:
            self.prepared.pop(entry.id, None)
            entry.state = FULFILLED
            raise
        self.prepared.pop(entry.id, None)
        entry.state = CANCELLED
        if changed:
            entry.notice = notice
            if not entry.is_incoming:
                self.forgotten.cancelled_outgoing(entry.id, entry.expires_at)
        return changed

    async def forget_settled(self, expired_before: datetime) -> int:
        """Have the log forget settled transfers that expired before the instant; how many.

        The watermark rises first, so no re-sent Prepare of a forgotten transfer can slip in
        between.
        """
        self.forgotten.pruning(expired_before.timestamp())
        return await self.log.prune_settled(expired_before)
