"""A memory store with `compact_settled=True` (a plugin's own log) packs final transfers.

Checked through the public TransferLog: the same answers as a full record for everything the
plugin asks (repeats, duplicates, repeated fulfil/cancel, roll-back, sums), a read-back with the
money fields only, pruning to the microsecond, and what stays a full record. A fulfilled
outgoing transfer is kept as a 12-byte digest (`FulfilledOutgoing`): the same answers, an id-only
read-back, pruning by expiry with long and short expiries mixed, and (hypothesis) against a
model with keys made to collide.
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
from hypothesis import given, settings
from hypothesis import strategies as st

from ilp_paychan.errors import (
    AlreadyFulfilledError,
    AlreadyRolledBackError,
    DuplicateIdError,
    TransferNotFoundError,
)
from ilp_paychan.ledger import Backend, MemoryStore, PrepareOutcome, TransferLog, settled
from ilp_paychan.ledger.records import StoredTransfer
from ilp_paychan.ledger.settled import (
    FulfilledOutgoing,
    SettledIndex,
    content_digest,
    pack,
    unpack,
)

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


async def test_a_fulfilled_transfer_is_packed_and_answers_as_before() -> None:
    incoming = True
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
        await log.prepare(body, True)
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


# ------------------------------------------------------- fulfilled outgoing transfers as digests


def paid_count(store: MemoryStore) -> int:
    paid = store._paid.get("")
    return 0 if paid is None else len(paid)


async def test_a_fulfilled_outgoing_transfer_is_kept_as_its_id_and_answers_every_repeat() -> None:
    store, log = store_and_log()
    body, fulfillment = transfer()
    assert await log.prepare(body, False) is PrepareOutcome.NEW
    assert await log.fulfill(body["id"], fulfillment) is True
    assert counts(store) == (0, 0)
    assert paid_count(store) == 1

    assert await log.get(body["id"]) == {
        "transfer": {"id": body["id"]},
        "isIncoming": False,
        "state": "fulfilled",
        "fulfillment": None,
    }
    before = await sums(log)
    assert before == ("0", "0", "5", "5")
    # Our own re-send: a repeat, never a second payment.
    assert await log.prepare(body, False) is PrepareOutcome.REPEAT_FULFILLED
    # The receiver's repeated Fulfill: already fulfilled, nothing changes.
    assert await log.fulfill(body["id"], fulfillment) is False
    with pytest.raises(AlreadyFulfilledError):
        await log.cancel(body["id"])
    with pytest.raises(DuplicateIdError, match="not the contents"):
        await log.prepare({**body, "amount": "6"}, False)
    with pytest.raises(DuplicateIdError):
        await log.prepare(dict(reversed(list(body.items()))), False)
    with pytest.raises(DuplicateIdError):  # the peer's Prepare with our id
        await log.prepare(body, True)
    assert await sums(log) == before
    assert paid_count(store) == 1
    assert counts(store) == (0, 0)


async def test_an_outgoing_transfer_is_whole_until_fulfilled_and_packed_when_cancelled() -> None:
    store, log = store_and_log()
    prepared, _ = transfer()
    cancelled, _ = transfer()
    for body in (prepared, cancelled):
        await log.prepare(body, False)
    await log.cancel(cancelled["id"])
    assert counts(store) == (1, 1)
    assert paid_count(store) == 0
    assert (await log.get(prepared["id"]))["transfer"] == prepared
    no_expiry, fulfillment = transfer(expires_at=None)  # cannot be pruned: kept whole
    await log.prepare(no_expiry, False)
    await log.fulfill(no_expiry["id"], fulfillment)
    assert (await log.get(no_expiry["id"]))["transfer"] == no_expiry
    assert paid_count(store) == 0


async def test_digests_go_after_their_expiry_with_long_and_short_expiries_mixed() -> None:
    store, log = store_and_log()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    short: list[str] = []
    long: list[str] = []
    for step in range(40):
        hours = 1 if step % 10 == 0 else 0
        body, fulfillment = transfer(
            amount=1, expires_at=start + timedelta(hours=hours, seconds=step / 10)
        )
        await log.prepare(body, False)
        await log.fulfill(body["id"], fulfillment)
        (long if hours else short).append(body["id"])
    assert paid_count(store) == 40
    before = await sums(log)

    # Not before the expiry (rounded up to the second: never earlier, at most 1 s later).
    assert await log.prune_settled(start) == 0
    assert paid_count(store) == 40
    # Past the short ones: the long ones are carried into a table of their own.
    assert await log.prune_settled(start + timedelta(seconds=10)) == 36
    assert paid_count(store) == 4
    for transfer_id in short:
        with pytest.raises(TransferNotFoundError):
            await log.get(transfer_id)
    for transfer_id in long:
        assert (await log.get(transfer_id))["state"] == "fulfilled"
    assert await log.prune_settled(start + timedelta(hours=1, seconds=5)) == 4
    assert paid_count(store) == 0
    assert await sums(log) == before

    # An expiry more than 9 hours from its table's first goes to a dict; it answers the same.
    soon, soon_fulfillment = transfer(expires_at=start + timedelta(hours=2))
    late, late_fulfillment = transfer(expires_at=start + timedelta(hours=20))
    for body, fulfillment in ((soon, soon_fulfillment), (late, late_fulfillment)):
        await log.prepare(body, False)
        await log.fulfill(body["id"], fulfillment)
    assert len(store._paid[""]._far) == 1
    assert await log.prepare(late, False) is PrepareOutcome.REPEAT_FULFILLED
    assert await log.prune_settled(start + timedelta(hours=10)) == 1
    assert (await log.get(late["id"]))["state"] == "fulfilled"
    assert await log.prune_settled(start + timedelta(hours=21)) == 1
    assert paid_count(store) == 0


def test_each_pass_starts_a_table_sized_for_the_last_one() -> None:
    paid = FulfilledOutgoing()
    start = datetime(2030, 1, 1, tzinfo=UTC)

    def add(count: int, expires: datetime) -> None:
        for _ in range(count):
            paid.add(StoredTransfer(str(uuid.uuid4()), "{}", False, 1, expires, state="fulfilled"))

    add(10_000, start)  # no pass yet: tables grow as they fill
    assert len(paid) == 10_000
    first = paid.memory()
    # Under 22 bytes a transfer with the free slots, against about 220 packed.
    assert first < 22 * 10_000
    # The pass merges the small tables of that growth into the next, sized for them and for
    # as many as the pass saw: the next 10,000 all go there.
    assert paid.prune(start - timedelta(seconds=1)) == 0
    add(10_000, start + timedelta(seconds=10))
    assert len(paid._tables) == 2
    assert paid.memory() < 20 * 20_000
    assert paid.prune(start + timedelta(seconds=2)) == 10_000
    assert paid.prune(start + timedelta(seconds=12)) == 10_000
    assert len(paid) == 0


def test_steady_traffic_keeps_a_few_tables_whatever_the_passes() -> None:
    """Transfers expiring 30 s after they are paid, a pass every 10/3 s forgetting what
    expired more than 10 s before: tables roll about every 10 s, so about five of them."""
    paid = FulfilledOutgoing()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    now, next_pass = 0.0, 10 / 3
    for _ in range(60_000):  # 60 s at 1,000 a second
        now += 0.001
        expires = start + timedelta(seconds=now + 30)
        paid.add(StoredTransfer(str(uuid.uuid4()), "{}", False, 1, expires, state="fulfilled"))
        if now >= next_pass:
            paid.prune(start + timedelta(seconds=now - 10))
            next_pass += 10 / 3
            assert len(paid._tables) <= 6
    # The window is 40 s of transfers; a table goes at most a quarter of it late.
    assert 40_000 <= len(paid) <= 51_000
    assert paid.memory() < 22 * len(paid)


# Each step: ("add", id number, expiry second) or ("prune", cutoff second); cutoffs only rise
# (a clock set back is the plugin's watermark's business).
_STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(0, 300),
            st.integers(0, 60) | st.sampled_from([40_000, 70_000]),  # a day and more: a dict
        ),
        st.tuples(st.just("prune"), st.integers(0, 8), st.just(0)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(steps=_STEPS, collide=st.booleans(), tiny=st.booleans())
def test_digests_match_a_model_whatever_the_order_and_collisions(
    steps: list[tuple[str, int, int]], collide: bool, tiny: bool
) -> None:
    """Never a kept id missed, never a forgotten one found; with `collide`, every key lands in
    a few slots, so lookups walk long probe chains and wrap around the table's end; with
    `tiny`, tables start at 4 slots and none is merged for being small, so tables fill, more
    are opened, and passes drop and copy them whole."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    original = settled._key, settled._MIN_SLOTS, settled._SMALL
    if collide:
        settled._key = lambda transfer_id: 64 * 64 * (int(transfer_id) % 7) + int(transfer_id) + 1
    if tiny:
        settled._MIN_SLOTS, settled._SMALL = 4, 0
    try:
        paid = FulfilledOutgoing()
        model: dict[str, int] = {}  # id -> expiry second
        cutoff = 0
        for kind, number, second in steps:
            if kind == "add":
                transfer_id = str(number)
                if transfer_id in model or paid.get(transfer_id) is not None:
                    continue  # the store only adds a prepared id, never a kept one
                expires = start + timedelta(seconds=second)
                body = json.dumps({"id": transfer_id, "n": number})
                paid.add(StoredTransfer(transfer_id, body, False, 1, expires, state="fulfilled"))
                model[transfer_id] = second
            else:
                cutoff += number
                paid.prune(start + timedelta(seconds=cutoff))
            for transfer_id, expiry in model.items():
                if expiry >= cutoff:  # still due: always found, a repeat of its content
                    body = json.dumps({"id": transfer_id, "n": int(transfer_id)})
                    again = StoredTransfer(transfer_id, body, False, 1, None)
                    assert paid.repeat(again) is PrepareOutcome.REPEAT_FULFILLED
        # Two passes at one instant leave exactly what is still due.
        paid.prune(start + timedelta(seconds=cutoff))
        paid.prune(start + timedelta(seconds=cutoff))
        due = {tid for tid, expiry in model.items() if expiry >= cutoff}
        assert len(paid) == len(due)
        for number in range(301):
            assert (paid.get(str(number)) is not None) == (str(number) in due)
    finally:
        settled._key, settled._MIN_SLOTS, settled._SMALL = original
