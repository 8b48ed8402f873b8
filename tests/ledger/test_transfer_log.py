"""Conformance of TransferLog on every store (memory, key/value adapter, SQLite, PostgreSQL).

The rules are the reference's (its README and its TransferLog), with its ledger defects fixed: a
refused prepare leaves no trace; settled ids are remembered; fulfil/cancel are idempotent and
records read back as records; sums never switch to exponential notation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from ilp_paychan.errors import (
    AlreadyFulfilledError,
    AlreadyRolledBackError,
    DuplicateIdError,
    InvalidFieldsError,
    NotAcceptedError,
    TransferNotFoundError,
)
from ilp_paychan.ledger import Backend, PrepareOutcome, TransferLog

Reopen = Callable[[], Awaitable[Backend]]

ID1 = "5857d460-2a46-4545-8311-5539d99e78c0"
ID2 = "6857d460-2a46-4545-8311-5539d99e78c0"
ID3 = "7857d460-2a46-4545-8311-5539d99e78c0"


def transfer(tid: str = ID1, amount: Any = "10", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": tid,
        "amount": amount,
        "executionCondition": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
        "expiresAt": "2030-01-01T00:00:00.000Z",
        "ledger": "g.eur.test.",
        "to": "g.eur.test.bob",
        "from": "g.eur.test.alice",
    }
    body.update(extra)
    return body


async def sums(log: TransferLog) -> tuple[str, str, str, str, str]:
    return (
        await log.get_incoming_fulfilled(),
        await log.get_incoming_fulfilled_and_prepared(),
        await log.get_outgoing_fulfilled(),
        await log.get_outgoing_fulfilled_and_prepared(),
        await log.get_balance(),
    )


@pytest.fixture
def log(backend: Backend) -> TransferLog:
    return backend.get_transfer_log("foo", maximum="100", minimum="-10")


async def test_limits_start_at_the_arguments(log: TransferLog) -> None:
    assert await log.get_maximum() == "100"
    assert await log.get_minimum() == "-10"


async def test_limits_default_to_infinities(backend: Backend) -> None:
    log = backend.get_transfer_log("bar")
    assert await log.get_maximum() == "Infinity"
    assert await log.get_minimum() == "-Infinity"


async def test_set_maximum_and_minimum_persist_and_win_over_arguments(
    log: TransferLog, reopen: Reopen
) -> None:
    await log.set_maximum("120")
    await log.set_minimum(-5)
    other = (await reopen()).get_transfer_log("foo", maximum="7", minimum="-7")
    assert await other.get_maximum() == "120"
    assert await other.get_minimum() == "-5"


async def test_stored_unlimited_maximum_wins_too(log: TransferLog) -> None:
    await log.set_maximum(None)
    await log.set_minimum("-Infinity")
    assert await log.get_maximum() == "Infinity"
    assert await log.get_minimum() == "-Infinity"
    await log.prepare(transfer(amount=10**30), True)


@pytest.mark.parametrize("bad", ["1.5", "abc", "", 1.5, True])
async def test_set_maximum_refuses_non_integers(log: TransferLog, bad: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="maximum"):
        await log.set_maximum(bad)
    assert await log.get_maximum() == "100"


async def test_identical_prepare_counts_once(log: TransferLog) -> None:
    assert await log.prepare(transfer(), True) is PrepareOutcome.NEW
    assert await log.prepare(transfer(), True) is PrepareOutcome.REPEAT_PREPARED
    assert await sums(log) == ("0", "10", "0", "0", "0")


async def test_int_and_string_amounts_are_the_same_content(log: TransferLog) -> None:
    await log.prepare(transfer(amount=10), True)
    assert await log.prepare(transfer(amount="10"), True) is PrepareOutcome.REPEAT_PREPARED
    assert (await log.get(ID1))["transfer"]["amount"] == "10"


async def test_key_order_does_not_matter_for_content(log: TransferLog) -> None:
    body = transfer()
    await log.prepare(body, True)
    reordered = dict(reversed(list(body.items())))
    assert await log.prepare(reordered, True) is PrepareOutcome.REPEAT_PREPARED


async def test_same_id_other_contents_is_duplicate(log: TransferLog) -> None:
    await log.prepare(transfer(), True)
    other = transfer(executionCondition="uzoYx3K6u-Nt6kZjbN6KmH0yARfhkj9e17eQfpSeB7U")
    with pytest.raises(DuplicateIdError, match=r"matches the id of .* but not the contents"):
        await log.prepare(other, True)
    assert await sums(log) == ("0", "10", "0", "0", "0")


async def test_same_id_other_direction_is_duplicate(log: TransferLog) -> None:
    await log.prepare(transfer(), True)
    with pytest.raises(DuplicateIdError):
        await log.prepare(transfer(), False)


async def test_fulfilled_payments_move_the_four_sums(log: TransferLog) -> None:
    await log.prepare(transfer(ID1), True)
    assert await sums(log) == ("0", "10", "0", "0", "0")
    assert await log.fulfill(ID1, "f1") is True
    assert await sums(log) == ("10", "10", "0", "0", "10")
    await log.prepare(transfer(ID2), False)
    assert await sums(log) == ("10", "10", "0", "10", "10")
    assert await log.fulfill(ID2, "f2") is True
    assert await sums(log) == ("10", "10", "10", "10", "0")
    record = await log.get(ID1)
    assert record == {
        "transfer": transfer(ID1),
        "isIncoming": True,
        "state": "fulfilled",
        "fulfillment": "f1",
    }


async def test_cancel_releases_the_reservation(log: TransferLog) -> None:
    await log.prepare(transfer(), True)
    assert (await log.get(ID1))["state"] == "prepared"
    assert (await log.get(ID1))["fulfillment"] is None
    assert await log.cancel(ID1) is True
    assert await sums(log) == ("0", "0", "0", "0", "0")
    assert (await log.get(ID1))["state"] == "cancelled"


async def test_outgoing_cancel_releases_outgoing_reservation(log: TransferLog) -> None:
    await log.prepare(transfer(amount="5"), False)
    await log.cancel(ID1)
    assert await sums(log) == ("0", "0", "0", "0", "0")


async def test_fulfill_twice_is_a_no_op(log: TransferLog) -> None:
    await log.prepare(transfer(), True)
    await log.fulfill(ID1, "f1")
    assert await log.fulfill(ID1, "f1") is False
    assert await sums(log) == ("10", "10", "0", "0", "10")


async def test_cancel_twice_is_a_no_op(log: TransferLog) -> None:
    await log.prepare(transfer(), True)
    await log.cancel(ID1)
    assert await log.cancel(ID1) is False
    assert await sums(log) == ("0", "0", "0", "0", "0")


async def test_fulfill_of_cancelled_is_already_rolled_back(log: TransferLog) -> None:
    await log.prepare(transfer(), True)
    await log.cancel(ID1)
    with pytest.raises(AlreadyRolledBackError):
        await log.fulfill(ID1, "f1")
    assert (await log.get(ID1))["state"] == "cancelled"


async def test_cancel_of_fulfilled_is_already_fulfilled(log: TransferLog) -> None:
    await log.prepare(transfer(), True)
    await log.fulfill(ID1, "f1")
    with pytest.raises(AlreadyFulfilledError):
        await log.cancel(ID1)
    assert await sums(log) == ("10", "10", "0", "0", "10")


async def test_unknown_ids_are_not_found(log: TransferLog) -> None:
    with pytest.raises(TransferNotFoundError, match=f"No transfer found with ID {ID3}"):
        await log.get(ID3)
    with pytest.raises(TransferNotFoundError):
        await log.fulfill(ID3, "f")
    with pytest.raises(TransferNotFoundError):
        await log.cancel(ID3)


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("fulfilled", PrepareOutcome.REPEAT_FULFILLED),
        ("cancelled", PrepareOutcome.REPEAT_CANCELLED),
    ],
)
async def test_identical_reprepare_of_settled_is_not_counted(
    log: TransferLog, state: str, outcome: PrepareOutcome
) -> None:
    await log.prepare(transfer(), True)
    if state == "fulfilled":
        await log.fulfill(ID1, "f1")
    else:
        await log.cancel(ID1)
    before = await sums(log)
    assert await log.prepare(transfer(), True) is outcome
    assert await sums(log) == before
    assert (await log.get(ID1))["state"] == state


async def test_different_reprepare_of_settled_is_duplicate(log: TransferLog) -> None:
    await log.prepare(transfer(), True)
    await log.fulfill(ID1, "f1")
    with pytest.raises(DuplicateIdError):
        await log.prepare(transfer(amount="11"), True)


async def test_incoming_limit_counts_prepared_minus_outgoing_fulfilled(log: TransferLog) -> None:
    await log.prepare(transfer(ID1, "100"), True)
    with pytest.raises(
        NotAcceptedError,
        match=r"^balanceIncomingFulfilledAndPrepared exceeds greatest allowed value after: ",
    ):
        await log.prepare(transfer(ID2, "1"), True)
    await log.prepare(transfer(ID3, "5"), False)
    await log.fulfill(ID3, "f")
    assert await log.prepare(transfer(ID2, "1"), True) is PrepareOutcome.NEW


async def test_outgoing_limit_counts_prepared_minus_incoming_fulfilled(log: TransferLog) -> None:
    await log.prepare(transfer(ID1, "10"), False)
    with pytest.raises(NotAcceptedError, match=r"^balanceOutgoingFulfilledAndPrepared exceeds"):
        await log.prepare(transfer(ID2, "1"), False)
    await log.prepare(transfer(ID3, "5"), True)
    await log.fulfill(ID3, "f")
    assert await log.prepare(transfer(ID2, "5"), False) is PrepareOutcome.NEW
    assert await sums(log) == ("5", "5", "0", "15", "5")


async def test_refused_prepare_leaves_no_trace(log: TransferLog) -> None:
    """The identical retry of a refused transfer is refused again, never counted."""
    with pytest.raises(NotAcceptedError):
        await log.prepare(transfer(amount="101"), True)
    with pytest.raises(TransferNotFoundError):
        await log.get(ID1)
    with pytest.raises(NotAcceptedError):
        await log.prepare(transfer(amount="101"), True)
    assert await sums(log) == ("0", "0", "0", "0", "0")
    assert await log.list_prepared() == []


async def test_zero_amount_is_accepted(log: TransferLog) -> None:
    assert await log.prepare(transfer(amount=0), True) is PrepareOutcome.NEW
    assert await log.fulfill(ID1, "f") is True
    assert await sums(log) == ("0", "0", "0", "0", "0")


@pytest.mark.parametrize("bad", ["1.5", "-1", -1, "1e3", "", None, True, 2.0, " 1", "١"])
async def test_bad_amounts_are_invalid_fields_naming_amount(log: TransferLog, bad: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="amount"):
        await log.prepare(transfer(amount=bad), True)
    with pytest.raises(TransferNotFoundError):
        await log.get(ID1)


@pytest.mark.parametrize("bad", [None, "", 5])
async def test_bad_ids_are_invalid_fields(log: TransferLog, bad: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="id"):
        await log.prepare(transfer(tid=bad), True)


async def test_bad_expiry_is_invalid_fields(log: TransferLog) -> None:
    with pytest.raises(InvalidFieldsError, match="expiresAt"):
        await log.prepare(transfer(expiresAt="not a date"), True)


async def test_unserialisable_transfer_is_invalid_fields(log: TransferLog) -> None:
    with pytest.raises(InvalidFieldsError, match="transfer"):
        await log.prepare(transfer(custom={"x": object()}), True)


async def test_huge_sums_stay_plain_decimal(backend: Backend) -> None:
    """Sums stay plain decimal: no exponential notation, no 64-bit overflow."""
    log = backend.get_transfer_log("big")
    big = 10**30
    await log.prepare(transfer(ID1, big), True)
    await log.prepare(transfer(ID2, str(big)), True)
    await log.fulfill(ID1, "f")
    assert await log.get_incoming_fulfilled() == str(big)
    assert await log.get_incoming_fulfilled_and_prepared() == str(2 * big)
    assert await log.get_balance() == "1" + "0" * 30


async def test_get_returns_fresh_records(log: TransferLog) -> None:
    await log.prepare(transfer(custom={"a": [1, 2]}), True)
    record = await log.get(ID1)
    record["transfer"]["custom"]["a"].append(3)
    record["state"] = "fulfilled"
    again = await log.get(ID1)
    assert again["transfer"]["custom"] == {"a": [1, 2]}
    assert again["state"] == "prepared"


async def test_transfer_keeps_extra_fields(log: TransferLog) -> None:
    body = transfer(noteToSelf={"x": "y"}, ilp="AQID", custom={"k": None})
    await log.prepare(body, False)
    assert (await log.get(ID1))["transfer"] == body


async def test_keys_are_separate(backend: Backend) -> None:
    foo = backend.get_transfer_log("foo")
    bar = backend.get_transfer_log("bar")
    await foo.prepare(transfer(), True)
    assert await bar.get_incoming_fulfilled_and_prepared() == "0"
    with pytest.raises(TransferNotFoundError):
        await bar.get(ID1)
    assert await bar.prepare(transfer(amount="3"), True) is PrepareOutcome.NEW


async def test_another_log_object_sees_the_same_data(backend: Backend) -> None:
    await backend.get_transfer_log("foo").prepare(transfer(), True)
    other = backend.get_transfer_log("foo")
    assert await other.get_incoming_fulfilled_and_prepared() == "10"
    assert await other.prepare(transfer(), True) is PrepareOutcome.REPEAT_PREPARED


async def test_reopened_store_keeps_everything_including_prepared(
    log: TransferLog, reopen: Reopen
) -> None:
    """Prepared transfers survive a restart and can be settled afterwards."""
    await log.prepare(transfer(ID1), True)
    await log.prepare(transfer(ID2, "3"), False)
    await log.fulfill(ID1, "f1", notify_peer=True)
    await log.prepare(transfer(ID3, "4"), True)
    again = (await reopen()).get_transfer_log("foo")
    assert await sums(again) == ("10", "14", "0", "3", "10")
    assert await again.cancel(ID2) is True
    assert await again.fulfill(ID3, "f3") is True
    assert await again.fulfill(ID1, "f1") is False
    assert [n["transfer"]["id"] for n in await again.list_peer_notices()] == [ID1]
    assert await sums(again) == ("14", "14", "0", "0", "14")


async def test_list_prepared_orders_by_expiry_and_filters_expired(log: TransferLog) -> None:
    await log.prepare(transfer(ID1, "1", expiresAt="2030-01-01T00:00:02.000Z"), True)
    await log.prepare(transfer(ID2, "1", expiresAt="2030-01-01T01:00:01+01:00"), False)
    body = transfer(ID3, "1")
    del body["expiresAt"]
    await log.prepare(body, True)
    listed = await log.list_prepared()
    assert [r["transfer"]["id"] for r in listed] == [ID2, ID1, ID3]
    assert all(r["state"] == "prepared" for r in listed)
    expired = await log.list_prepared(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert [r["transfer"]["id"] for r in expired] == [ID2]
    await log.cancel(ID2)
    await log.fulfill(ID1, "f")
    assert [r["transfer"]["id"] for r in await log.list_prepared()] == [ID3]


async def test_peer_notices_are_recorded_with_the_transition(log: TransferLog) -> None:
    await log.prepare(transfer(ID1, "1"), True)
    await log.prepare(transfer(ID2, "1"), True)
    await log.prepare(transfer(ID3, "1"), True)
    await log.fulfill(ID1, "f", notify_peer=True)
    await log.cancel(ID2, notify_peer=True)
    await log.fulfill(ID3, "f")
    notices = {n["transfer"]["id"]: n["state"] for n in await log.list_peer_notices()}
    assert notices == {ID1: "fulfilled", ID2: "cancelled"}
    await log.clear_peer_notice(ID1)
    await log.clear_peer_notice(ID3)
    await log.clear_peer_notice("unknown")
    assert [n["transfer"]["id"] for n in await log.list_peer_notices()] == [ID2]
    assert await log.fulfill(ID1, "f", notify_peer=True) is False
    assert [n["transfer"]["id"] for n in await log.list_peer_notices()] == [ID2]


async def test_concurrent_prepares_never_pass_the_limit(log: TransferLog) -> None:
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(30)]
    results = await asyncio.gather(
        *(log.prepare(transfer(tid, "7"), True) for tid in ids), return_exceptions=True
    )
    accepted = [r for r in results if r is PrepareOutcome.NEW]
    refused = [r for r in results if isinstance(r, NotAcceptedError)]
    assert len(accepted) == 14
    assert len(refused) == 16
    assert await log.get_incoming_fulfilled_and_prepared() == "98"


async def test_concurrent_fulfills_count_once(log: TransferLog) -> None:
    await log.prepare(transfer(), True)
    results = await asyncio.gather(*(log.fulfill(ID1, "f") for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]
    assert await log.get_incoming_fulfilled() == "10"


async def test_peer_notices_carry_their_payload(log: TransferLog, reopen: Reopen) -> None:
    """The bytes given with a notice come back from list_peer_notices, also after a reopen."""
    await log.prepare(transfer(ID1, "1"), True)
    await log.prepare(transfer(ID2, "1"), True)
    await log.prepare(transfer(ID3, "1"), True)
    await log.fulfill(ID1, "f", notify_peer=True, notice=b"\x00ilp\xff")
    await log.cancel(ID2, notify_peer=True, notice=b"\x08reason")
    await log.cancel(ID3, notify_peer=True)
    expected = {ID1: b"\x00ilp\xff", ID2: b"\x08reason", ID3: None}
    for opened in (log, (await reopen()).get_transfer_log("foo")):
        listed = await opened.list_peer_notices()
        assert {n["transfer"]["id"]: n["notice"] for n in listed} == expected
    assert await log.fulfill(ID1, "f", notify_peer=True, notice=b"other") is False
    assert await log.cancel(ID2, notify_peer=True, notice=b"other") is False
    listed = await log.list_peer_notices()
    assert {n["transfer"]["id"]: n["notice"] for n in listed} == expected
    await log.clear_peer_notice(ID1)
    assert [n["transfer"]["id"] for n in await log.list_peer_notices()] == [ID2, ID3]
    assert "notice" not in await log.get(ID1)


async def test_notice_payload_without_notify_peer_is_not_kept(log: TransferLog) -> None:
    await log.prepare(transfer(ID1, "1"), True)
    await log.fulfill(ID1, "f", notice=b"ignored")
    assert await log.list_peer_notices() == []


async def test_notice_payload_must_be_bytes(log: TransferLog) -> None:
    await log.prepare(transfer(ID1, "1"), True)
    with pytest.raises(InvalidFieldsError, match="notice"):
        await log.cancel(ID1, notify_peer=True, notice="text")  # type: ignore[arg-type]
    assert (await log.get(ID1))["state"] == "prepared"


async def test_prune_settled_forgets_old_settled_transfers_only(
    log: TransferLog, reopen: Reopen
) -> None:
    early = "2030-01-01T00:00:00.000Z"
    late = "2030-01-01T00:10:00.000Z"
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(8)]
    await log.prepare(transfer(ids[0], "1", expiresAt=early), True)  # fulfilled: pruned
    await log.prepare(transfer(ids[1], "2", expiresAt=early), False)  # cancelled: pruned
    await log.prepare(transfer(ids[2], "3", expiresAt=early), True)  # prepared: kept
    await log.prepare(transfer(ids[3], "4", expiresAt=early), True)  # notice pending: kept
    await log.prepare(transfer(ids[4], "5", expiresAt=late), True)  # expires later: kept
    await log.prepare(transfer(ids[5], "6", expiresAt=early), False)  # outgoing fulfilled: pruned
    no_expiry = transfer(ids[6], "7")
    del no_expiry["expiresAt"]
    await log.prepare(no_expiry, True)  # no expiry: kept
    await log.prepare(transfer(ids[7], "8", expiresAt=early), True)  # notice cleared: pruned
    await log.fulfill(ids[0], "f")
    await log.cancel(ids[1])
    await log.fulfill(ids[3], "f", notify_peer=True, notice=b"x")
    await log.fulfill(ids[4], "f")
    await log.fulfill(ids[5], "f")
    await log.fulfill(ids[6], "f")
    await log.cancel(ids[7], notify_peer=True)
    await log.clear_peer_notice(ids[7])
    before = await sums(log)
    cutoff = datetime(2030, 1, 1, 0, 5, tzinfo=UTC)
    assert await log.prune_settled(cutoff) == 4
    assert await sums(log) == before
    for gone in (ids[0], ids[1], ids[5], ids[7]):
        with pytest.raises(TransferNotFoundError):
            await log.get(gone)
    for kept in (ids[2], ids[3], ids[4], ids[6]):
        assert (await log.get(kept))["transfer"]["id"] == kept
    assert await log.prune_settled(cutoff) == 0
    again = (await reopen()).get_transfer_log("foo")
    assert await sums(again) == before
    with pytest.raises(TransferNotFoundError):
        await again.get(ids[0])
    await again.clear_peer_notice(ids[3])
    await again.cancel(ids[2])
    assert await again.prune_settled(datetime(2030, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == 2
    assert await again.prune_settled(datetime(2031, 1, 1, tzinfo=UTC)) == 1
    assert (await again.get(ids[6]))["state"] == "fulfilled"


async def test_prune_settled_keeps_other_logs_and_checks_its_argument(backend: Backend) -> None:
    one = backend.get_transfer_log("one")
    two = backend.get_transfer_log("two")
    for log in (one, two):
        await log.prepare(transfer(ID1, "1"), True)
        await log.fulfill(ID1, "f")
    assert await one.prune_settled(datetime(2031, 1, 1, tzinfo=UTC)) == 1
    assert (await two.get(ID1))["state"] == "fulfilled"
    with pytest.raises(InvalidFieldsError, match="expired_before"):
        await one.prune_settled(datetime(2031, 1, 1))
