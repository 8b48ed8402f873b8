"""The in-process store of a v2 trustline on `memory:`: settled packets kept in flat arrays.

What this is for: a trustline records every ILPv4 packet it holds, and must remember a settled
one until a repeat of its Prepare can no longer be accepted (its expiry plus a margin) so that
the repeat is answered as before, with the same Fulfill, and never counted twice. At thousands
of packets a second that window holds hundreds of thousands of them, so what is kept of each
matters. `PacketMemoryStore` is `MemoryStore` with its settled transfers moved to
`SettledPackets`: 64 bytes a slot in arrays, no object per transfer, against about 600 for a
full record.

Why not `MemoryStore(compact_settled=True)`: its packed form needs the execution condition in
the transfer's JSON (the trustline's incoming records have none: the packet key names the
Prepare) and keeps a fulfilled outgoing transfer without its fulfillment, which the trustline
returns to a repeat of that Prepare.

Each slot holds: the id's 64-bit key (the interpreter's string hash, keyed at random per
process), the expiry in microseconds with three flags (incoming, fulfilled, no condition), the
amount, a 64-bit hash of the stored JSON text, and 32 bytes: the fulfillment of a fulfilled
transfer, else its execution condition. Read back, a settled transfer has `id`, `amount`,
`executionCondition` (when it had one; for a fulfilled one SHA-256 of the fulfillment) and
`expiresAt`; its state, amount, direction and fulfillment are exact. A re-prepare is a repeat
when its direction and JSON hash match (the trustline builds a packet's JSON the same way every
time), else DuplicateIdError. Digests decide only between a repeat and a refusal, never money:
two ids with one key (odds 2**-64 a pair) make the later one refused as a duplicate.

Slots live in tables by expiry, one per `bucket_seconds` (default 1 s): `prune_settled` drops a
table whole once its last instant is before the cutoff (so a transfer is kept up to a bucket
longer, never shorter), which costs nothing per transfer; a new table is sized for the one
before it with an eighth more, and grows by half when 70 % full. Anything that does not fit
(no expiry, an amount of 2**64 or more, a fulfillment that is not 32 bytes of canonical
base64url, a pending peer notice) stays a full record.
"""

from __future__ import annotations

import hashlib
from array import array
from datetime import datetime

from ilp_paychan.ledger import rules
from ilp_paychan.ledger.memory import MemoryStore
from ilp_paychan.ledger.records import (
    CANCELLED,
    FULFILLED,
    PREPARED,
    REPEAT_OUTCOME,
    PrepareOutcome,
    StoredTransfer,
)
from ilp_paychan.ledger.settled import (
    _PER_SECOND,
    _b64url,
    _condition_text,
    _hash32,
    _key,
    _micros,
    _read_back,
)

_INCOMING = 1
_FULFILLED = 2
_NO_CONDITION = 4
_FLAG_SHIFT = 58
_MICROS_MASK = (1 << _FLAG_SHIFT) - 1
_MASK64 = (1 << 64) - 1
#: Words a slot takes in `_Table.words`: key, expiry and flags, amount, JSON hash.
_WORDS = 4
_MAX_LOAD = 0.7
_MIN_SLOTS = 16
_CONDITION = '"executionCondition":"'


def _json_hash(transfer_json: str) -> int:
    return hash(transfer_json) & _MASK64


class _Table:
    """Open addressing with linear probing over flat arrays; no deletion (dropped whole)."""

    __slots__ = ("count", "proofs", "size", "words")

    def __init__(self, expected: int) -> None:
        size = max(_MIN_SLOTS, int(expected / _MAX_LOAD) + 1)
        self.size = size
        self.count = 0
        self.words = array("Q", bytes(8 * _WORDS * size))
        self.proofs = bytearray(32 * size)

    def find(self, key: int) -> int:
        """The slot holding `key`, or -1."""
        words = self.words
        size = self.size
        slot = key % size
        while True:
            found = words[slot * _WORDS]
            if found == key:
                return slot
            if not found:
                return -1
            slot += 1
            if slot == size:
                slot = 0

    def put(self, key: int, meta: int, amount: int, digest: int, proof: bytes) -> None:
        """Store (or overwrite) the slot of `key`, growing first when full."""
        if (self.count + 1) > self.size * _MAX_LOAD:
            self._grow()
        words = self.words
        size = self.size
        slot = key % size
        while True:
            found = words[slot * _WORDS]
            if not found:
                self.count += 1
                break
            if found == key:
                break
            slot += 1
            if slot == size:
                slot = 0
        base = slot * _WORDS
        words[base] = key
        words[base + 1] = meta
        words[base + 2] = amount
        words[base + 3] = digest
        self.proofs[32 * slot : 32 * slot + 32] = proof

    def _grow(self) -> None:
        bigger = _Table(self.count + self.count // 2)
        old_words, old_proofs = self.words, self.proofs
        for slot in range(self.size):
            base = slot * _WORDS
            key = old_words[base]
            if key:
                bigger.put(
                    key,
                    old_words[base + 1],
                    old_words[base + 2],
                    old_words[base + 3],
                    bytes(old_proofs[32 * slot : 32 * slot + 32]),
                )
        self.size, self.count = bigger.size, bigger.count
        self.words, self.proofs = bigger.words, bigger.proofs


class SettledPackets:
    """The settled transfers of one log in flat tables by expiry (see the module docstring)."""

    __slots__ = ("_bucket", "_tables")

    def __init__(self, bucket_seconds: int = 1) -> None:
        if bucket_seconds < 1:
            raise ValueError(f"bucket_seconds must be at least 1; got {bucket_seconds}")
        self._bucket = bucket_seconds * _PER_SECOND
        #: Tables by expiry bucket (expiry in microseconds // bucket width).
        self._tables: dict[int, _Table] = {}

    def __len__(self) -> int:
        return sum(table.count for table in self._tables.values())

    def __contains__(self, transfer_id: object) -> bool:
        return isinstance(transfer_id, str) and self._locate(_key(transfer_id)) is not None

    def memory(self) -> int:
        """Bytes held by the tables' arrays (64 a slot)."""
        return sum(table.size * (8 * _WORDS + 32) for table in self._tables.values())

    def tables(self) -> int:
        """How many expiry buckets are kept."""
        return len(self._tables)

    def _locate(self, key: int, hint: int | None = None) -> tuple[_Table, int] | None:
        tables = self._tables
        if hint is not None:
            first = tables.get(hint)
            if first is not None:
                slot = first.find(key)
                if slot >= 0:
                    return first, slot
        for bucket, table in tables.items():
            if bucket == hint:
                continue
            slot = table.find(key)
            if slot >= 0:
                return table, slot
        return None

    def add(self, transfer: StoredTransfer, *, new: bool = False) -> bool:
        """Keep a settled transfer (again, after a change of state); False if it cannot be.
        `new`: the caller knows it is not kept here yet (saves a lookup)."""
        if transfer.state == PREPARED or transfer.notify_peer or transfer.expires_at is None:
            return False
        amount = transfer.amount
        micros = _micros(transfer.expires_at)
        if not 0 <= amount <= _MASK64 or not 0 <= micros <= _MICROS_MASK:
            return False
        text = transfer.transfer_json
        flags = _INCOMING if transfer.is_incoming else 0
        if transfer.state == FULFILLED:
            proof = _hash32(transfer.fulfillment)
            if proof is None:
                return False
            flags |= _FULFILLED
            if _CONDITION not in text:
                flags |= _NO_CONDITION
            elif f"{_CONDITION}{_b64url(hashlib.sha256(proof).digest())}" not in text:
                return False
        else:
            if _CONDITION in text:
                proof = _hash32(_condition_text(text))
                if proof is None:
                    return False
            else:
                proof = bytes(32)
                flags |= _NO_CONDITION
        key = _key(transfer.id)
        bucket = micros // self._bucket
        found = None if new else self._locate(key, bucket)
        if found is not None:
            table, slot = found
            digest = table.words[slot * _WORDS + 3]  # a state change keeps the first hash
        else:
            current = self._tables.get(bucket)
            if current is None:
                before = self._tables.get(bucket - 1)
                expected = 0 if before is None else before.count + before.count // 8
                current = self._tables[bucket] = _Table(expected)
            table = current
            digest = _json_hash(text)
        table.put(key, micros | flags << _FLAG_SHIFT, amount, digest, proof)
        return True

    def get(self, transfer_id: str) -> StoredTransfer | None:
        """The transfer read back (a fresh object), or None if it is not kept here."""
        found = self._locate(_key(transfer_id))
        return None if found is None else _read(transfer_id, *found)

    def repeat(self, candidate: StoredTransfer) -> PrepareOutcome | None:
        """The outcome of re-preparing a kept transfer; None when the id is not kept here.

        Raises:
            DuplicateIdError: the id is kept with another direction or JSON text.
        """
        hint = None
        if candidate.expires_at is not None:
            hint = _micros(candidate.expires_at) // self._bucket
        found = self._locate(_key(candidate.id), hint)
        if found is None:
            return None
        table, slot = found
        base = slot * _WORDS
        flags = table.words[base + 1] >> _FLAG_SHIFT
        if bool(flags & _INCOMING) == candidate.is_incoming and table.words[base + 3] == _json_hash(
            candidate.transfer_json
        ):
            return REPEAT_OUTCOME[FULFILLED if flags & _FULFILLED else CANCELLED]
        raise rules.duplicate(_read(candidate.id, table, slot), candidate)

    def prune(self, expired_before: datetime) -> int:
        """Drop the tables whose every expiry is before `expired_before`; how many went."""
        cutoff = _micros(expired_before)
        width = self._bucket
        gone = 0
        for bucket in [b for b in self._tables if (b + 1) * width <= cutoff]:
            gone += self._tables.pop(bucket).count
        return gone


def _read(transfer_id: str, table: _Table, slot: int) -> StoredTransfer:
    base = slot * _WORDS
    meta = table.words[base + 1]
    flags = meta >> _FLAG_SHIFT
    return _read_back(
        transfer_id,
        table.words[base + 2],
        meta & _MICROS_MASK,
        bytes(table.proofs[32 * slot : 32 * slot + 32]),
        incoming=bool(flags & _INCOMING),
        fulfilled=bool(flags & _FULFILLED),
        with_condition=not flags & _NO_CONDITION,
    )


class PacketMemoryStore(MemoryStore):
    """`MemoryStore` whose settled transfers move to `SettledPackets` (see the module)."""

    def __init__(self, *, bucket_seconds: int = 1) -> None:
        super().__init__()
        self._bucket_seconds = bucket_seconds
        #: Per log key, the settled transfers in flat tables.
        self._packed: dict[str, SettledPackets] = {}

    def packed(self, key: str) -> SettledPackets | None:
        """The settled transfers kept compactly for a log (None before its first)."""
        return self._packed.get(key)

    def _find(self, key: str, transfer_id: str) -> StoredTransfer | None:
        found = self._transfers.get(key, {}).get(transfer_id)
        if found is None:
            packed = self._packed.get(key)
            if packed is not None:
                return packed.get(transfer_id)
        return found

    def _settled_now(self, key: str, transfer: StoredTransfer) -> None:
        packed = self._packed.get(key)
        if packed is None:
            packed = self._packed[key] = SettledPackets(self._bucket_seconds)
        full = self._transfers[key]
        if packed.add(transfer, new=transfer.id in full):
            full.pop(transfer.id, None)
        else:
            # Kept whole; a stale packed copy is shadowed, as full records are looked up first.
            full.setdefault(transfer.id, transfer)

    async def prepare(
        self,
        key: str,
        candidate: StoredTransfer,
        maximum: int | None,
        minimum: int | None,
    ) -> PrepareOutcome:
        packed = self._packed.get(key)
        if packed is not None and candidate.id not in self._transfers.get(key, {}):
            repeat = packed.repeat(candidate)
            if repeat is not None:
                return repeat
        return await super().prepare(key, candidate, maximum, minimum)

    async def prune_settled(self, key: str, expired_before: datetime) -> int:
        packed = self._packed.get(key)
        gone = 0 if packed is None else packed.prune(expired_before)
        return gone + await super().prune_settled(key, expired_before)
