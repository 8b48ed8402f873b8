"""Settled transfers in compact form, for a memory store that must stay small.

What this module is for: a plugin on `memory:` or without a store has to remember a settled
transfer until its expiry has passed, so that a re-sent Prepare is not counted twice and a
repeated Fulfill or Reject gets the same answer. It does not need the transfer's JSON for that.
`SettledIndex` keeps one 57-byte value per transfer id:

    flags (incoming, fulfilled) | amount (uint64) | expiresAt (microseconds since 1970) |
    digest of the stored JSON text (8 bytes of BLAKE2b) |
    the fulfillment (fulfilled) or the execution condition (cancelled), 32 bytes

That is about 230 bytes per transfer with its key and the dict's share, against about 640 for
the full record (JSON text, parsed fields, dataclass).

Rules:
- Only a final transfer without a pending peer notice is packed, and only if it fits: an expiry,
  an amount below 2**64, and a 32-byte fulfillment that hashes to the stored condition (the plugin
  checks that before it fulfils). Anything else stays a full record with the store.
- A re-prepare of a packed id is a repeat when the direction and the digest of its JSON text
  match: the plugin builds a transfer's JSON the same way every time, so an identical re-send
  matches. Anything else, the same fields in another key order included, is DuplicateIdError:
  refused either way, never counted twice.
- Read back, a packed transfer has `id`, `amount`, `executionCondition` and `expiresAt` only;
  its state and fulfillment are exact. Its digest never changes (a reverted fulfilment is packed
  again with the first digest).
- `prune(expired_before)` forgets those whose expiry is before the instant, bucket by bucket
  (one bucket per second of expiry), so a pass costs what it removes, not what is kept.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import struct
from datetime import UTC, datetime, timedelta

from ilp_paychan.ledger import rules
from ilp_paychan.ledger.records import (
    CANCELLED,
    FULFILLED,
    PREPARED,
    REPEAT_OUTCOME,
    PrepareOutcome,
    StoredTransfer,
)

_LAYOUT = struct.Struct("<BQq8s32s")
_INCOMING = 1
_FULFILLED = 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PER_SECOND = 1_000_000
_UINT64 = 1 << 64
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
#: base64url to base64; "+" and "/" (not base64url) become "!", which strict decoding refuses.
_FROM_URLSAFE = str.maketrans("-_+/", "+/!!")
#: The possible last characters of 32 bytes in unpadded base64 (the 4 spare bits are zero).
_LAST_OF_32 = frozenset("AEIMQUYcgkosw048")


def content_digest(transfer_json: str) -> bytes:
    """The 8-byte digest a packed transfer keeps of its stored JSON text."""
    return hashlib.blake2b(transfer_json.encode(), digest_size=8).digest()


def pack(transfer: StoredTransfer, digest: bytes | None = None) -> bytes | None:
    """The compact value of a settled transfer, or None when it must stay a full record.

    `digest` is kept instead of a new one when given (a transfer packed before).
    """
    if transfer.state == PREPARED or transfer.notify_peer or transfer.expires_at is None:
        return None
    if not 0 <= transfer.amount < _UINT64:
        return None
    if transfer.state == FULFILLED:
        proof = _hash32(transfer.fulfillment)
        if proof is None:
            return None
        condition = _b64url(hashlib.sha256(proof).digest())
        if f'"executionCondition":"{condition}"' not in transfer.transfer_json:
            return None
        flags = _FULFILLED
    else:
        proof = _hash32(_condition_text(transfer.transfer_json))
        if proof is None:
            return None
        flags = 0
    if transfer.is_incoming:
        flags |= _INCOMING
    return _LAYOUT.pack(
        flags,
        transfer.amount,
        _micros(transfer.expires_at),
        content_digest(transfer.transfer_json) if digest is None else digest,
        proof,
    )


def unpack(transfer_id: str, packed: bytes) -> StoredTransfer:
    """A fresh full record of a packed transfer (its transfer has the four fields kept)."""
    flags, amount, expiry, _, proof = _LAYOUT.unpack(packed)
    fulfilled = bool(flags & _FULFILLED)
    condition = hashlib.sha256(proof).digest() if fulfilled else proof
    expires_at = _EPOCH + expiry * _MICROSECOND
    body = {
        "id": transfer_id,
        "amount": str(amount),
        "executionCondition": _b64url(condition),
        "expiresAt": _iso(expires_at),
    }
    return StoredTransfer(
        id=transfer_id,
        transfer_json=json.dumps(body, separators=(",", ":")),
        is_incoming=bool(flags & _INCOMING),
        amount=amount,
        expires_at=expires_at,
        state=FULFILLED if fulfilled else CANCELLED,
        fulfillment=_b64url(proof) if fulfilled else None,
    )


class SettledIndex:
    """The packed settled transfers of one log, by id, with their ids bucketed by expiry."""

    __slots__ = ("_by_second", "_records")

    def __init__(self) -> None:
        self._records: dict[str, bytes] = {}
        self._by_second: dict[int, list[str]] = {}

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, transfer_id: object) -> bool:
        return transfer_id in self._records

    def get(self, transfer_id: str) -> StoredTransfer | None:
        """The transfer read back (a fresh object), or None if it is not packed here."""
        packed = self._records.get(transfer_id)
        return None if packed is None else unpack(transfer_id, packed)

    def add(self, transfer: StoredTransfer) -> bool:
        """Pack a settled transfer (again, after a change of state); False if it cannot be."""
        transfer_id = transfer.id
        before = self._records.get(transfer_id)
        packed = pack(transfer, None if before is None else _LAYOUT.unpack(before)[3])
        if packed is None:
            return False
        self._records[transfer_id] = packed
        if before is None:
            second = _LAYOUT.unpack(packed)[2] // _PER_SECOND
            self._by_second.setdefault(second, []).append(transfer_id)
        return True

    def repeat(self, candidate: StoredTransfer) -> PrepareOutcome | None:
        """The outcome of re-preparing a packed transfer; None when the id is not packed here.

        Raises:
            DuplicateIdError: the id is packed with another direction or JSON text.
        """
        packed = self._records.get(candidate.id)
        if packed is None:
            return None
        flags, _, _, digest, _ = _LAYOUT.unpack(packed)
        if bool(flags & _INCOMING) == candidate.is_incoming and digest == content_digest(
            candidate.transfer_json
        ):
            return REPEAT_OUTCOME[FULFILLED if flags & _FULFILLED else CANCELLED]
        raise rules.duplicate(unpack(candidate.id, packed), candidate)

    def prune(self, expired_before: datetime) -> int:
        """Forget the transfers whose expiry is before `expired_before`; how many went."""
        cutoff = _micros(expired_before)
        records = self._records
        gone = 0
        for second in [s for s in self._by_second if s * _PER_SECOND < cutoff]:
            ids = self._by_second.pop(second)
            whole = (second + 1) * _PER_SECOND <= cutoff
            kept: list[str] = []
            for transfer_id in ids:
                packed = records.get(transfer_id)
                if packed is None:
                    continue
                if whole or _LAYOUT.unpack(packed)[2] < cutoff:
                    del records[transfer_id]
                    gone += 1
                else:
                    kept.append(transfer_id)
            if kept:
                self._by_second[second] = kept
        return gone


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _iso(moment: datetime) -> str:
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _b64url(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def _hash32(text: object) -> bytes | None:
    """The 32 bytes of a canonical unpadded base64url text, else None."""
    if not isinstance(text, str) or len(text) != 43 or text[-1] not in _LAST_OF_32:
        return None
    try:
        return binascii.a2b_base64(text.translate(_FROM_URLSAFE) + "=", strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def _condition_text(transfer_json: str) -> object:
    try:
        transfer = json.loads(transfer_json)
    except ValueError:
        return None
    return transfer.get("executionCondition") if isinstance(transfer, dict) else None
