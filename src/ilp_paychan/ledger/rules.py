"""The TransferLog's transitions as pure functions: every store runs exactly these.

Rules (the reference's, except that a refused prepare leaves no placeholder, settled ids are
remembered and compared, and a repeated fulfil or cancel succeeds as RFC 23 asks):
- prepare of a new id: refused with NotAcceptedError if a limit would be passed, and then nothing
  changes (no placeholder); else the amount is added to IFAP (incoming) or OFAP (outgoing).
- prepare of a known id (in any state): identical content is a repeat, counted nothing;
  different content is DuplicateIdError. Settled ids are remembered until
  pruned.
- fulfill: prepared -> fulfilled adds the amount to IF or OF; fulfilled again is a no-op;
  cancelled is AlreadyRolledBackError.
- cancel: prepared -> cancelled takes the amount off IFAP or OFAP; cancelled again is a no-op;
  fulfilled is AlreadyFulfilledError.
- a settling move may record a peer notice (`notify_peer`) with its payload (`notice`); a no-op
  repeat leaves the stored notice alone.
- revert_fulfillment: an incoming fulfilled -> cancelled (the sender refused our late Fulfill)
  takes the amount off IF and IFAP and drops the peer notice; cancelled again is a no-op;
  a prepared or an outgoing transfer is NotAcceptedError.
- prune_settled forgets settled transfers without a pending notice whose expiry is before a given
  instant; the sums do not change (they already count those transfers).
Each function checks everything before it mutates its arguments, so a raised error leaves them
as they were; the caller writes them back only on success.
"""

from __future__ import annotations

from datetime import datetime

from ilp_paychan.errors import (
    AlreadyFulfilledError,
    AlreadyRolledBackError,
    DuplicateIdError,
    NotAcceptedError,
    TransferNotFoundError,
)
from ilp_paychan.ledger.inputs import INFINITY, NEG_INFINITY, canonical_json
from ilp_paychan.ledger.records import (
    CANCELLED,
    FULFILLED,
    PREPARED,
    REPEAT_OUTCOME,
    LogTotals,
    PrepareOutcome,
    StoredTransfer,
)


def effective_limit(stored: str | None, default: int | None) -> int | None:
    """The limit in force: the stored setting wins over the `get_transfer_log` argument."""
    if stored is None:
        return default
    if stored in (INFINITY, NEG_INFINITY):
        return None
    return int(stored)


def same_content(existing: StoredTransfer, candidate: StoredTransfer) -> bool:
    """Whether a re-prepare carries the transfer already stored under its id."""
    if existing.is_incoming != candidate.is_incoming:
        return False
    if existing.transfer_json == candidate.transfer_json:
        return True
    return canonical_json(existing.transfer_json) == canonical_json(candidate.transfer_json)


def prepare(
    totals: LogTotals,
    existing: StoredTransfer | None,
    candidate: StoredTransfer,
    maximum: int | None,
    minimum: int | None,
) -> PrepareOutcome:
    """Apply a prepare to `totals`; the caller stores `candidate` when the outcome is NEW."""
    if existing is not None:
        if same_content(existing, candidate):
            return REPEAT_OUTCOME[existing.state]
        raise duplicate(existing, candidate)
    amount = candidate.amount
    if candidate.is_incoming:
        after = totals.incoming_fulfilled_and_prepared + amount
        if maximum is not None and after - totals.outgoing_fulfilled > maximum:
            raise over_limit(candidate)
        totals.incoming_fulfilled_and_prepared = after
    else:
        after = totals.outgoing_fulfilled_and_prepared + amount
        if minimum is not None and after - totals.incoming_fulfilled > -minimum:
            raise over_limit(candidate)
        totals.outgoing_fulfilled_and_prepared = after
    return PrepareOutcome.NEW


def duplicate(existing: StoredTransfer, candidate: StoredTransfer) -> DuplicateIdError:
    """The refusal of a known id with other contents, describing both transfers."""
    return DuplicateIdError(
        f"transfer {candidate.describe()} matches the id of {existing.describe()}"
        " but not the contents."
    )


def over_limit(candidate: StoredTransfer) -> NotAcceptedError:
    """The reference's refusal, naming the sum that would pass its limit."""
    name = (
        "balanceIncomingFulfilledAndPrepared"
        if candidate.is_incoming
        else "balanceOutgoingFulfilledAndPrepared"
    )
    return NotAcceptedError(f"{name} exceeds greatest allowed value after: {candidate.describe()}")


def not_found(transfer_id: str) -> TransferNotFoundError:
    """The reference's message for an id the log does not hold."""
    return TransferNotFoundError(f"No transfer found with ID {transfer_id}")


def rolled_back(transfer_id: str) -> AlreadyRolledBackError:
    """The reference's message for fulfilling a cancelled transfer."""
    return AlreadyRolledBackError(f"{transfer_id} has already been cancelled.")


def already_fulfilled(transfer_id: str) -> AlreadyFulfilledError:
    """The reference's message for cancelling a fulfilled transfer."""
    return AlreadyFulfilledError(f"{transfer_id} has already been fulfilled.")


def fulfill(
    totals: LogTotals,
    transfer: StoredTransfer | None,
    transfer_id: str,
    fulfillment: str,
    notify_peer: bool,
    notice: bytes | None = None,
) -> bool:
    """Move a prepared transfer to fulfilled; False when it already was (nothing changes)."""
    if transfer is None:
        raise not_found(transfer_id)
    if transfer.state == FULFILLED:
        return False
    if transfer.state == CANCELLED:
        raise rolled_back(transfer_id)
    if transfer.is_incoming:
        totals.incoming_fulfilled += transfer.amount
    else:
        totals.outgoing_fulfilled += transfer.amount
    transfer.state = FULFILLED
    transfer.fulfillment = fulfillment
    transfer.notify_peer = notify_peer
    transfer.notice = notice if notify_peer else None
    return True


def prunable(transfer: StoredTransfer, expired_before: datetime) -> bool:
    """Whether `prune_settled(expired_before)` forgets this transfer."""
    return (
        transfer.state != PREPARED
        and not transfer.notify_peer
        and transfer.expires_at is not None
        and transfer.expires_at < expired_before
    )


def cancel(
    totals: LogTotals,
    transfer: StoredTransfer | None,
    transfer_id: str,
    notify_peer: bool,
    notice: bytes | None = None,
) -> bool:
    """Move a prepared transfer to cancelled; False when it already was (nothing changes)."""
    if transfer is None:
        raise not_found(transfer_id)
    if transfer.state == CANCELLED:
        return False
    if transfer.state == FULFILLED:
        raise already_fulfilled(transfer_id)
    assert transfer.state == PREPARED
    if transfer.is_incoming:
        totals.incoming_fulfilled_and_prepared -= transfer.amount
    else:
        totals.outgoing_fulfilled_and_prepared -= transfer.amount
    transfer.state = CANCELLED
    transfer.notify_peer = notify_peer
    transfer.notice = notice if notify_peer else None
    return True


def revert_fulfillment(
    totals: LogTotals, transfer: StoredTransfer | None, transfer_id: str
) -> bool:
    """Move an incoming fulfilled transfer to cancelled; False when it already was cancelled.

    For when the sender answers our Fulfill with "already cancelled": its verdict is final, so
    the money did not arrive. The fulfillment and the peer notice go with the state.
    """
    if transfer is None:
        raise not_found(transfer_id)
    if not transfer.is_incoming:
        raise NotAcceptedError(
            f"{transfer_id} is outgoing; only an incoming fulfillment can be reverted."
        )
    if transfer.state == CANCELLED:
        return False
    if transfer.state != FULFILLED:
        raise NotAcceptedError(
            f"{transfer_id} is {transfer.state}, not fulfilled; nothing to revert."
        )
    totals.incoming_fulfilled -= transfer.amount
    totals.incoming_fulfilled_and_prepared -= transfer.amount
    transfer.state = CANCELLED
    transfer.fulfillment = None
    transfer.notify_peer = False
    transfer.notice = None
    return True
