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

An outgoing transfer, once fulfilled and final, needs even less, and a stateless client holds
little else: `FulfilledOutgoing` keeps 12 bytes of it in flat arrays, no object per transfer
(see the class). What it must still answer, until its expiry has passed:
- our own re-send of it (`send_transfer` again with the same transfer): a repeat, never a
  second payment; the same id with other content or from the peer: DuplicateIdError;
- the receiver's repeated Fulfill (our acknowledgement was lost): acknowledged again;
- a cancel of it (the expiry timer, a late Reject): AlreadyFulfilledError.
None of these needs its amount, condition or fulfillment, so read back it is only an id, a
direction and a state.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import struct
from array import array
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
    return _read_back(
        transfer_id,
        amount,
        expiry,
        proof,
        incoming=bool(flags & _INCOMING),
        fulfilled=bool(flags & _FULFILLED),
    )


def _read_back(
    transfer_id: str,
    amount: int,
    expiry: int,
    proof: bytes,
    *,
    incoming: bool,
    fulfilled: bool,
    with_condition: bool = True,
) -> StoredTransfer:
    """The full record of a settled transfer kept as its amount, expiry (microseconds since
    1970) and 32-byte proof (the fulfillment of a fulfilled one, else its condition); without
    `with_condition` its JSON has no executionCondition (it had none)."""
    expires_at = _EPOCH + expiry * _MICROSECOND
    body = {"id": transfer_id, "amount": str(amount)}
    if with_condition:
        condition = hashlib.sha256(proof).digest() if fulfilled else proof
        body["executionCondition"] = _b64url(condition)
    body["expiresAt"] = _iso(expires_at)
    return StoredTransfer(
        id=transfer_id,
        transfer_json=json.dumps(body, separators=(",", ":")),
        is_incoming=incoming,
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


_KEY_MASK = (1 << 64) - 1
_CHECK_MASK = (1 << 16) - 1
_SPAN = 1 << 16
#: The share of a table's slots filled when it is made for a known count, and at most.
_LOAD = 0.7
_FULL = 0.8
_MIN_SLOTS = 64
#: Tables with fewer slots are merged into the next one at each pass (few probes per lookup).
_SMALL = 4096


def _key(transfer_id: str) -> int:
    """The 64-bit table key of an id: the interpreter's keyed string hash (random per process
    and cached on the string), never 0 (the empty slot)."""
    return hash(transfer_id) & _KEY_MASK or 1


def _slots(expected: int) -> int:
    return max(_MIN_SLOTS, int(expected / _LOAD) + 1)


def _check(transfer_json: str) -> int:
    """The 16 bits kept of a transfer's JSON text, to tell a repeat from another content."""
    return hash(transfer_json) & _CHECK_MASK


class _Table:
    """An open-addressing hash table (linear probing, no deletion: it is dropped whole) of
    64-bit keys and 32-bit values in two flat arrays, 12 bytes a slot. A value is the entry's
    expiry second, as an offset (16 bits) from 9 hours before the table's first one, and its
    check (16)."""

    __slots__ = ("base", "count", "high", "keys", "limit", "low", "opened", "size", "values")

    def __init__(self, expected: int) -> None:
        size = _slots(expected)
        self.size = size
        self.keys = array("Q", (0,)) * size
        self.values = array("I", (0,)) * size
        self.count = 0
        self.limit = int(size * _FULL)
        #: The expiry second offsets count from (set by the first entry).
        self.base = -1
        #: The earliest and latest expiry second kept.
        self.low = 1 << 62
        self.high = 0
        #: The pruning instant when it became the newest (None: before the first pass).
        self.opened: float | None = None

    def find(self, key: int) -> int | None:
        """The check kept for a key, or None."""
        keys = self.keys
        size = self.size
        slot = key % size
        while True:
            found = keys[slot]
            if found == key:
                return self.values[slot] & _CHECK_MASK
            if not found:
                return None
            slot += 1
            if slot == size:
                slot = 0

    def put(self, key: int, second: int, check: int) -> bool:
        """Add an entry (a key already here is overwritten); False when the expiry is too far
        from the table's first one to be written as an offset (nothing added then)."""
        if self.base < 0:
            self.base = second - _SPAN // 2  # about 9 hours either side of the first
        offset = second - self.base
        if not 0 <= offset < _SPAN:
            return False
        keys = self.keys
        size = self.size
        slot = key % size
        while True:
            found = keys[slot]
            if not found:
                keys[slot] = key
                self.count += 1
                break
            if found == key:
                break
            slot += 1
            if slot == size:
                slot = 0
        self.values[slot] = offset << 16 | check
        kept = self.base + offset
        if kept < self.low:
            self.low = kept
        if kept > self.high:
            self.high = kept
        return True

    def carry(self, into: FulfilledOutgoing, cutoff: float) -> int:
        """Put the entries still due at `cutoff` into `into`; how many were not."""
        keys = self.keys
        values = self.values
        base = self.base
        put = into._put
        gone = 0
        for slot in range(self.size):
            key = keys[slot]
            if key:
                value = values[slot]
                second = base + (value >> 16)
                if second >= cutoff:
                    put(key, second, value & _CHECK_MASK)
                else:
                    gone += 1
        return gone


class FulfilledOutgoing:
    """Fulfilled outgoing transfers by a 64-bit digest of their id: 12 bytes each, in flat arrays.

    Each entry is its id's key (`_key`), its expiry rounded up to the second (so it is kept
    up to a second longer, never shorter) and 16 bits of its JSON text (`_check`). The
    entries are in tables: a transfer goes into the newest, and a pruning pass starts a new
    one, sized for what the last one took (about 17 bytes a transfer with the free slots),
    once the newest has been open a quarter of the time its transfers still have to go, so
    there are about five whatever the expiries and the retention, and a transfer is kept at
    most a quarter of its window longer. Each pass drops whole every table whose latest
    expiry is before its instant, and copies into the newest what is still due of a table
    that is partly past and would outlive the next pass (long and short expiries mixed), so
    memory follows the transfers still within their window; a table that is small, or mostly
    empty, is copied likewise. A lookup probes the tables newest first, about one slot each.
    An expiry more than 9 hours from its table's first is kept in a dict.

    Digests decide only between refusals and acknowledgements, never money: two ids with one
    key (odds 2**-64 a pair) make a new transfer refused as a duplicate or a stray Fulfill
    acknowledged instead of F02, which leaves the receiver with the money as F02 does; our
    re-send with other content and the same 16 bits (odds 2**-16) is refused as already
    fulfilled instead of as a duplicate. Keys come from the interpreter's string hash, keyed
    at random per process, so a peer cannot aim its ids at ours.
    """

    __slots__ = ("_added", "_cutoff", "_far", "_tables")

    def __init__(self) -> None:
        #: Oldest first; the last one takes new entries.
        self._tables: list[_Table] = [_Table(0)]
        #: Key -> (expiry second, check) of the entries no table could hold (rare).
        self._far: dict[int, tuple[int, int]] = {}
        #: Entries added since the last pass (sizes the next table).
        self._added = 0
        #: The last pass's instant in seconds (None: no pass yet).
        self._cutoff: float | None = None

    def __len__(self) -> int:
        return sum(table.count for table in self._tables) + len(self._far)

    def memory(self) -> int:
        """Bytes held by the tables' arrays (12 a slot)."""
        return sum(12 * table.size for table in self._tables)

    def _find(self, key: int) -> int | None:
        for table in reversed(self._tables):
            check = table.find(key)
            if check is not None:
                return check
        far = self._far
        if far:
            found = far.get(key)
            if found is not None:
                return found[1]
        return None

    def add(self, transfer: StoredTransfer) -> bool:
        """Keep a fulfilled outgoing transfer as a digest; False if it has no expiry."""
        if transfer.expires_at is None:
            return False
        second = -(-_micros(transfer.expires_at) // _PER_SECOND)
        self._put(_key(transfer.id), second, _check(transfer.transfer_json))
        self._added += 1
        return True

    def _put(self, key: int, second: int, check: int) -> None:
        table = self._tables[-1]
        if table.count >= table.limit:  # more than the last ones saw: a larger one
            opened = table.opened
            table = _Table(2 * table.count)
            table.opened = opened
            self._tables.append(table)
        if not table.put(key, second, check):
            self._far[key] = (second, check)

    def get(self, transfer_id: str) -> StoredTransfer | None:
        """What is kept of it (id, outgoing, fulfilled), or None if it is not kept here."""
        if self._find(_key(transfer_id)) is None:
            return None
        return StoredTransfer(
            id=transfer_id,
            transfer_json=json.dumps({"id": transfer_id}, separators=(",", ":")),
            is_incoming=False,
            amount=0,
            expires_at=None,
            state=FULFILLED,
        )

    def repeat(self, candidate: StoredTransfer) -> PrepareOutcome | None:
        """The outcome of preparing a kept id again; None when the id is not kept here.

        Raises:
            DuplicateIdError: an incoming transfer with its id, or another content.
        """
        check = self._find(_key(candidate.id))
        if check is None:
            return None
        if not candidate.is_incoming and check == _check(candidate.transfer_json):
            return PrepareOutcome.REPEAT_FULFILLED
        existing = self.get(candidate.id)
        assert existing is not None
        raise rules.duplicate(existing, candidate)

    def prune(self, expired_before: datetime) -> int:
        """Forget the transfers whose expiry is before `expired_before`, a table at a time;
        how many went. Starts the next table once the newest has been open a quarter of the
        time its transfers still have to go (or holds some already past)."""
        cutoff = _micros(expired_before) / _PER_SECOND
        interval = None if self._cutoff is None else max(0.0, cutoff - self._cutoff)
        self._cutoff = cutoff
        tables = self._tables
        newest = tables[-1]
        roll = (
            not newest.count
            or newest.opened is None
            or newest.low < cutoff
            or 4 * (cutoff - newest.opened) >= newest.high - cutoff
        )
        gone = 0
        kept: list[_Table] = []
        carried: list[_Table] = []
        for table in tables if roll else tables[:-1]:
            if table.high < cutoff:
                gone += table.count
            elif (
                (interval is not None and table.low < cutoff <= table.high - interval)
                or 4 * table.count < table.size
                or table.size < _SMALL
            ):
                # Partly past and outliving the next pass (long and short expiries mixed),
                # mostly free slots, or small: what is still due moves to the newest table.
                carried.append(table)
            else:
                kept.append(table)
        if roll:
            newest = _Table(self._added + sum(table.count for table in carried))
            newest.opened = cutoff
            self._added = 0
        kept.append(newest)
        self._tables = kept
        for table in carried:
            gone += table.carry(self, cutoff)
        far = self._far
        if far:
            for key in [key for key, (second, _) in far.items() if second < cutoff]:
                del far[key]
                gone += 1
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
