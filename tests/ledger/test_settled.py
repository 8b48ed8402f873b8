"""A memory store with `compact_settled=True` (a plugin's own log) packs final transfers.

Checked through the public TransferLog: the same answers as a full record for everything the
plugin asks (repeats, duplicates, repeated fulfil/cancel, roll-back, sums), a read-back with the
money fields only, pruning to the microsecond, and what stays a full record.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ilp_paychan.errors import (
    AlreadyFulfilledError,
    AlreadyRolledBackError,
    DuplicateIdError,
    TransferNotFoundError,
)
from ilp_paychan.ledger import Backend, MemoryStore, PrepareOutcome, TransferLog
from ilp_paychan.ledger.records import StoredTransfer
from ilp_paychan.ledger.settled import SettledIndex, content_digest, pack, unpack

EXPIRY = datetime(2030, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def transfer(
    amount: int = 5, expires_at: datetime | None = EXPIRY, **extra: Any
) -> tuple[dict[str, Any], str]:
    """(transfer mapping, fulfillment text)."""
    preimage = os.urandom(32)
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "amount": str(amount),
        "executionCondition": b64url(hashlib.sha256(preimage).digest()),
    }
    if expires_at is not None:
        body["expiresAt"] = expires_at.isoformat().replace("+00:00", "Z")
    body.update({"to": "example.server", "from": "example.client", "ledger": "example."})
    body.update(extra)
    return body, b64url(preimage)


def store_and_log() -> tuple[MemoryStore, TransferLog]:
    store = MemoryStore(compact_settled=True)
    return store, Backend(store).get_transfer_log("", 1000, -1000)


def counts(store: MemoryStore) -> tuple[int, int]:
    """(full records, packed records) of the default log."""
    index = store._settled.get("")
    return len(store._transfers.get("", {})), 0 if index is None else len(index)


async def sums(log: TransferLog) -> tuple[str, str, str, str]:
    return (
        await log.get_incoming_fulfilled(),
        await log.get_incoming_fulfilled_and_prepared(),
        await log.get_outgoing_fulfilled(),
        await log.get_outgoing_fulfilled_and_prepared(),
    )


@pytest.mark.parametrize("incoming", [True, False])
async def test_a_fulfilled_transfer_is_packed_and_answers_as_before(incoming: bool) -> None:
    store, log = store_and_log()
    body, fulfillment = transfer()
    assert await log.prepare(body, incoming) is PrepareOutcome.NEW
    assert counts(store) == (1, 0)
    assert await log.fulfill(body["id"], fulfillment) is True
    assert counts(store) == (0, 1)

    record = await log.get(body["id"])
    assert record == {
        "transfer": {
            "id": body["id"],
            "amount": "5",
            "executionCondition": body["executionCondition"],
            "expiresAt": "2030-01-01T12:00:00.250Z",
        },
        "isIncoming": incoming,
        "state": "fulfilled",
        "fulfillment": fulfillment,
    }
    before = await sums(log)
    assert await log.prepare(body, incoming) is PrepareOutcome.REPEAT_FULFILLED
    assert await log.fulfill(body["id"], fulfillment) is False
    with pytest.raises(AlreadyFulfilledError):
        await log.cancel(body["id"])
    with pytest.raises(DuplicateIdError, match="not the contents"):
        await log.prepare({**body, "amount": "6"}, incoming)
    with pytest.raises(DuplicateIdError):
        await log.prepare(body, not incoming)
    assert await sums(log) == before
    assert counts(store) == (0, 1)


async def test_a_cancelled_transfer_is_packed_and_answers_as_before() -> None:
    store, log = store_and_log()
    body, fulfillment = transfer(amount=7)
    await log.prepare(body, False)
    assert await log.cancel(body["id"]) is True
    assert counts(store) == (0, 1)
    record = await log.get(body["id"])
    assert (record["state"], record["fulfillment"]) == ("cancelled", None)
    assert record["transfer"]["executionCondition"] == body["executionCondition"]
    assert await log.prepare(body, False) is PrepareOutcome.REPEAT_CANCELLED
    assert await log.cancel(body["id"]) is False
    with pytest.raises(AlreadyRolledBackError):
        await log.fulfill(body["id"], fulfillment)
    assert await sums(log) == ("0", "0", "0", "0")


async def test_the_same_fields_in_another_order_are_a_duplicate_never_a_second_count() -> None:
    _, log = store_and_log()
    body, fulfillment = transfer()
    await log.prepare(body, True)
    await log.fulfill(body["id"], fulfillment)
    reordered = dict(reversed(list(body.items())))
    with pytest.raises(DuplicateIdError):
        await log.prepare(reordered, True)
    assert await sums(log) == ("5", "5", "0", "0")


async def test_a_pending_notice_keeps_the_full_record_until_it_is_cleared() -> None:
    store, log = store_and_log()
    body, fulfillment = transfer()
    await log.prepare(body, True)
    await log.fulfill(body["id"], fulfillment, notify_peer=True, notice=b"ilp")
    assert counts(store) == (1, 0)
    (notice,) = await log.list_peer_notices()
    assert notice["transfer"] == body  # whole, with to/from/ledger, while it is sent
    assert notice["notice"] == b"ilp"
    await log.clear_peer_notice(body["id"])
    assert counts(store) == (0, 1)
    assert await log.list_peer_notices() == []
    assert await log.list_prepared() == []


async def test_a_packed_fulfilment_can_still_be_reverted() -> None:
    store, log = store_and_log()
    body, fulfillment = transfer(amount=4)
    await log.prepare(body, True)
    await log.fulfill(body["id"], fulfillment)
    assert await log.revert_fulfillment(body["id"]) is True
    assert counts(store) == (0, 1)
    record = await log.get(body["id"])
    assert (record["state"], record["fulfillment"]) == ("cancelled", None)
    assert record["transfer"]["executionCondition"] == body["executionCondition"]
    assert await sums(log) == ("0", "0", "0", "0")
    # Its identity is the first one: the original re-sent is a repeat (of a cancelled one).
    assert await log.prepare(body, True) is PrepareOutcome.REPEAT_CANCELLED
    assert await log.revert_fulfillment(body["id"]) is False


@pytest.mark.parametrize(
    ("shape", "fulfil_with"),
    [
        ("no expiry", None),
        ("amount of 2**64", None),
        ("fulfillment of other bytes", b64url(b"\x01" * 31)),
        ("fulfillment not hashing to the condition", b64url(b"\x02" * 32)),
    ],
)
async def test_what_cannot_be_packed_stays_a_full_record(
    shape: str, fulfil_with: str | None
) -> None:
    store, log = store_and_log()
    if shape == "no expiry":
        body, fulfillment = transfer(expires_at=None)
    elif shape == "amount of 2**64":
        body, fulfillment = transfer(amount=2**64)
        log = Backend(store).get_transfer_log("", None, None)
    else:
        body, fulfillment = transfer()
    await log.prepare(body, True)
    await log.fulfill(body["id"], fulfil_with or fulfillment)
    assert counts(store) == (1, 0)
    assert (await log.get(body["id"]))["transfer"] == body


async def test_pruning_goes_to_the_microsecond_and_keeps_the_sums() -> None:
    store, log = store_and_log()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    ids = []
    for step in range(30):  # expiries 0.1 s apart: three per second bucket, a few buckets
        body, fulfillment = transfer(amount=1, expires_at=start + timedelta(seconds=step / 10))
        await log.prepare(body, step % 2 == 0)
        await log.fulfill(body["id"], fulfillment)
        ids.append(body["id"])
    pending, _ = transfer(amount=1, expires_at=start)
    await log.prepare(pending, True)
    before = await sums(log)

    cutoff = start + timedelta(seconds=1.25)  # expiries 0.0 ... 1.2 are before it
    assert await log.prune_settled(cutoff) == 13
    assert counts(store) == (1, 17)
    for position, transfer_id in enumerate(ids):
        if position < 13:
            with pytest.raises(TransferNotFoundError):
                await log.get(transfer_id)
        else:
            assert (await log.get(transfer_id))["state"] == "fulfilled"
    assert await log.prune_settled(cutoff) == 0
    assert await log.prune_settled(start + timedelta(seconds=1.3)) == 0  # 1.3 is not before
    assert await log.prune_settled(start + timedelta(seconds=1.3, microseconds=1)) == 1
    assert await log.prune_settled(start + timedelta(days=1)) == 16
    assert counts(store) == (1, 0)
    assert (await log.get(pending["id"]))["state"] == "prepared"
    assert await sums(log) == before


async def test_a_store_without_the_option_keeps_every_record_whole() -> None:
    store = MemoryStore()
    log = Backend(store).get_transfer_log("", 1000, None)
    body, fulfillment = transfer()
    await log.prepare(body, True)
    await log.fulfill(body["id"], fulfillment)
    assert (await log.get(body["id"]))["transfer"] == body
    assert store._settled == {}


def test_pack_round_trips_and_keeps_a_first_digest() -> None:
    body, fulfillment = transfer(amount=2**64 - 1)
    expires = EXPIRY + timedelta(microseconds=7)
    text = json.dumps({**body, "expiresAt": expires.isoformat()}, separators=(",", ":"))
    stored = StoredTransfer(
        body["id"], text, True, 2**64 - 1, expires, state="fulfilled", fulfillment=fulfillment
    )
    packed = pack(stored)
    assert packed is not None
    assert len(packed) == 57
    back = unpack(body["id"], packed)
    assert (back.amount, back.expires_at, back.fulfillment, back.is_incoming) == (
        2**64 - 1,
        expires,
        fulfillment,
        True,
    )
    assert json.loads(back.transfer_json)["expiresAt"] == "2030-01-01T12:00:00.250007Z"
    index = SettledIndex()
    assert index.add(stored)
    back.state, back.fulfillment = "cancelled", None
    assert index.add(back)  # a reduced record, packed again under the first digest
    assert len(index) == 1
    candidate = StoredTransfer(body["id"], text, True, 1, expires)
    assert content_digest(text) != content_digest(back.transfer_json)
    assert index.repeat(candidate) is PrepareOutcome.REPEAT_CANCELLED
