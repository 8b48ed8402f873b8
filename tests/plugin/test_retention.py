"""Settled transfers are forgotten `settledRetention` seconds after their expiry (bounded memory).

In-memory logs (`memory:`, stateless) prune by default, a short margin after the expiry;
durable stores only when the option is given. A re-sent Prepare of a forgotten transfer is
refused as expired before the ledger sees it, also with the clock set back (the pruning
watermark), so forgetting never counts a transfer twice; a late Fulfill of a forgotten outgoing
transfer we cancelled still gets F05, so the receiver rolls back rather than keeps the money.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.condition import b64url_decode
from ilp_paychan.errors import (
    AlreadyRolledBackError,
    InvalidFieldsError,
    NotAcceptedError,
    TransferNotFoundError,
)
from ilp_paychan.ledger import Backend, MemoryStore, PrepareOutcome
from ilp_paychan.plugin import forgotten, retention
from ilp_paychan.plugin.forgotten import ForgottenTransfers
from ilp_paychan.plugin.options import DEFAULT_SETTLED_RETENTION
from ilp_paychan.plugin.transfers import Entry, TransferBook

from .conftest import (
    WAIT,
    RawPeer,
    Recorder,
    b64url,
    client_options,
    make_transfer,
    prepare_packet,
    server_options,
    wait_until,
)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, DEFAULT_SETTLED_RETENTION),
        ({"store": "memory"}, DEFAULT_SETTLED_RETENTION),
        ({"store": "sqlite:///unused.db"}, None),
        ({"store": "sqlite:///unused.db", "settledRetention": 30}, 30.0),
        ({"settledRetention": 0}, 0.0),
    ],
)
def test_retention_applies_to_in_memory_logs_unless_given(
    overrides: dict[str, Any], expected: float | None
) -> None:
    assert Plugin(server_options(**overrides)).settings.settled_retention == expected


def test_a_stateless_client_prunes_and_the_keyword_spelling_works() -> None:
    assert Plugin(client_options(1)).settings.settled_retention == DEFAULT_SETTLED_RETENTION
    plugin = Plugin(client_options(1), settled_retention=5)
    assert plugin.settings.settled_retention == 5.0


@pytest.mark.parametrize("bad", [-1, "600", True, float("nan"), float("inf")])
def test_bad_retention_is_refused_naming_the_option(bad: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="settledRetention"):
        Plugin(server_options(settledRetention=bad))


async def _forgotten(plugin: Plugin, transfer_id: str) -> bool:
    try:
        await plugin.transfer_log.get(transfer_id)
    except TransferNotFoundError:
        return True
    return False


@pytest.mark.parametrize("store", ["memory:", "sqlite"])
async def test_expired_settled_transfers_are_forgotten_and_a_resend_is_refused(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_INTERVAL", 0.05)
    url = store if store == "memory:" else f"sqlite:///{tmp_path}/plugin.db"
    plugin = Plugin(server_options(store=url, settledRetention=0))
    events = Recorder(plugin, "incoming_prepare")
    await plugin.connect()
    try:
        assert plugin.listener_port is not None
        peer = await RawPeer.open(plugin.listener_port)
        paid, preimage = prepare_packet(amount=6, expires_in=0.5)
        refused, _ = prepare_packet(amount=4, expires_in=0.5)
        pending, _ = prepare_packet(amount=1, expires_in=30)
        for packet in (paid, refused, pending):
            assert isinstance(await peer.request(packet), btp.Response)
        fulfilling = asyncio.ensure_future(
            plugin.fulfill_condition(paid.transfer_id, b64url(preimage))
        )
        await peer.answer(await peer.next_request())
        await fulfilling
        rejecting = asyncio.ensure_future(plugin.reject_incoming_transfer(refused.transfer_id))
        await peer.answer(await peer.next_request())
        await rejecting
        log = plugin.transfer_log

        async def sums() -> tuple[str, str]:
            return (
                await log.get_incoming_fulfilled(),
                await log.get_incoming_fulfilled_and_prepared(),
            )

        assert await sums() == ("6", "7")

        await wait_until(lambda: _forgotten(plugin, paid.transfer_id), "the fulfilled one pruned")
        await wait_until(lambda: _forgotten(plugin, refused.transfer_id), "the rejected one")
        assert (await log.get(pending.transfer_id))["state"] == "prepared"
        assert await sums() == ("6", "7")

        for packet in (paid, refused):  # the peer re-sends: refused before the ledger
            answer = await peer.request(packet)
            assert isinstance(answer, btp.Error)
            assert answer.code == "F01"
            assert "expiresAt" in answer.data
            assert await _forgotten(plugin, packet.transfer_id)
        assert await sums() == ("6", "7")
        assert len(events["incoming_prepare"]) == 3
        await peer.close()
    finally:
        await plugin.disconnect()


# ---------------------------------------------------------------------- the rule, on a fake clock

#: A fixed expiry far from the wall clock: the tests pass instants explicitly.
EXPIRES = 2_000_000_000.0
MARGIN = DEFAULT_SETTLED_RETENTION


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def memory_book() -> TransferBook:
    log = Backend(MemoryStore(compact_settled=True)).get_transfer_log("", 1000, None)
    return TransferBook(log, prunes=True)


def entry(incoming: bool, amount: int = 5, expires: float = EXPIRES) -> tuple[Entry, bytes]:
    preimage = os.urandom(32)
    condition = hashlib.sha256(preimage).digest()
    record = {
        "id": str(uuid.uuid4()),
        "amount": str(amount),
        "executionCondition": b64url(condition),
        "expiresAt": at(expires).isoformat().replace("+00:00", "Z"),
        "ledger": "example.",
    }
    return Entry(record["id"], record, incoming, amount, condition, expires), preimage


def test_a_pass_runs_every_third_of_the_retention_within_bounds() -> None:
    assert retention.prune_interval(0) == retention.MIN_PRUNE_INTERVAL
    assert retention.prune_interval(DEFAULT_SETTLED_RETENTION) == DEFAULT_SETTLED_RETENTION / 3
    assert retention.prune_interval(1e9) == retention.PRUNE_INTERVAL


async def test_a_settled_transfer_is_kept_until_its_expiry_plus_the_margin() -> None:
    book = memory_book()
    paid, preimage = entry(incoming=True)
    assert await book.prepare(paid) is PrepareOutcome.NEW
    await book.fulfill_incoming(paid.id, preimage, EXPIRES - 10)
    await book.log.clear_peer_notice(paid.id)  # the sender acknowledged

    assert await retention.prune_pass(book, MARGIN, now=at(EXPIRES + MARGIN - 0.001)) == 0
    assert (await book.log.get(paid.id))["state"] == "fulfilled"
    resent = Entry(paid.id, paid.record, True, 5, paid.condition, EXPIRES)
    assert await book.prepare(resent) is PrepareOutcome.REPEAT_FULFILLED
    assert await book.log.get_incoming_fulfilled_and_prepared() == "5"

    assert await retention.prune_pass(book, MARGIN, now=at(EXPIRES + MARGIN + 0.001)) == 1
    with pytest.raises(TransferNotFoundError):
        await book.log.get(paid.id)
    # The real clock is years before EXPIRES, as if it had been set back: the watermark
    # refuses the re-sent Prepare all the same, before the ledger.
    with pytest.raises(InvalidFieldsError, match=r"expiresAt.*already forgotten"):
        await book.prepare(resent)
    assert await book.log.get_incoming_fulfilled_and_prepared() == "5"
    # A new transfer expiring after the watermark is taken as usual.
    later, _ = entry(incoming=True, expires=EXPIRES + MARGIN + 1)
    assert await book.prepare(later) is PrepareOutcome.NEW


async def test_a_forgotten_cancelled_outgoing_transfer_is_still_answered_cancelled() -> None:
    book = memory_book()
    cancelled, preimage = entry(incoming=False)
    paid, paid_preimage = entry(incoming=False)
    for one in (cancelled, paid):
        await book.prepare(one)
    assert (await book.expire(cancelled.id))[1] is True
    await book.fulfill_outgoing(paid.id, paid_preimage, EXPIRES - 1)
    assert await retention.prune_pass(book, MARGIN, now=at(EXPIRES + MARGIN + 1)) == 2

    with pytest.raises(AlreadyRolledBackError, match="already been cancelled"):
        await book.fulfill_outgoing(cancelled.id, preimage, EXPIRES + MARGIN + 2)
    # A fulfilled one, forgotten: "not found" makes the receiver keep the money, as it should.
    with pytest.raises(TransferNotFoundError):
        await book.fulfill_outgoing(paid.id, paid_preimage, EXPIRES + MARGIN + 2)
    assert await book.log.get_outgoing_fulfilled() == "5"


def test_cancelled_ids_are_kept_a_day_after_expiry_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(forgotten, "CANCELLED_KEPT_MAX", 3)
    kept = ForgottenTransfers(keep_cancelled=True)
    for number in range(5):
        kept.cancelled_outgoing(f"id-{number}", EXPIRES + number)
    assert len(kept) == 3
    assert not kept.was_cancelled("id-1")
    assert kept.was_cancelled("id-2")
    kept.pruning(EXPIRES + 3 + forgotten.CANCELLED_KEPT_FOR)  # id-2 expired before the horizon
    assert (kept.was_cancelled("id-2"), kept.was_cancelled("id-3")) == (False, True)
    assert kept.watermark == EXPIRES + 3 + forgotten.CANCELLED_KEPT_FOR
    kept.pruning(EXPIRES)  # a pass with an earlier instant never lowers the watermark
    assert kept.watermark == EXPIRES + 3 + forgotten.CANCELLED_KEPT_FOR

    not_pruning = ForgottenTransfers(keep_cancelled=False)
    not_pruning.cancelled_outgoing("id", EXPIRES)
    assert len(not_pruning) == 0


# ---------------------------------------------------------------------- the rule, on the wire


async def test_a_resent_prepare_is_a_repeat_until_pruned_then_refused(
    listener: Plugin, raw: RawPeer
) -> None:
    """The listener's pruning runs as if its clock were past expiry + margin while the real
    clock says the transfer has not even expired: the watermark refuses the re-send."""
    events = Recorder(listener, "incoming_prepare")
    packet, preimage = prepare_packet(amount=6, expires_in=30)
    assert isinstance(await raw.request(packet), btp.Response)
    fulfilling = asyncio.ensure_future(
        listener.fulfill_condition(packet.transfer_id, b64url(preimage))
    )
    await raw.answer(await raw.next_request())
    async with asyncio.timeout(WAIT):
        await fulfilling

    assert isinstance(await raw.request(packet), btp.Response)  # a repeat, counted once
    assert len(events["incoming_prepare"]) == 1
    assert await listener.get_balance() == "6"

    expiry = packet.expires_at
    assert expiry is not None
    book = listener._book
    assert book is not None
    later = expiry + timedelta(seconds=MARGIN + 1)
    assert await retention.prune_pass(book, MARGIN, now=later) == 1
    answer = await raw.request(packet)
    assert isinstance(answer, btp.Error)
    assert answer.code == "F01"
    assert "expiresAt" in answer.data
    assert "already forgotten" in answer.data
    assert len(events["incoming_prepare"]) == 1
    assert await listener.get_balance() == "6"
    assert await listener.transfer_log.get_incoming_fulfilled_and_prepared() == "6"


async def test_a_late_fulfill_after_pruning_gets_f05_for_a_cancelled_transfer() -> None:
    """The agreement case: we sent a transfer, cancelled it at its expiry, and forgot it; the
    receiver's Fulfill (sent again until we answer) must still get F05, not F02."""
    sender = Plugin(server_options())
    events = Recorder(sender, "outgoing_cancel")
    await sender.connect()
    try:
        assert sender.listener_port is not None
        receiver = await RawPeer.open(sender.listener_port)
        try:
            transfer, fulfillment = make_transfer(sender.get_peer_account(), "9", expires_in=0.5)
            sending = asyncio.ensure_future(sender.send_transfer(transfer))
            prepare = await receiver.next_request()
            await receiver.answer(prepare)
            async with asyncio.timeout(WAIT):
                await sending
            await events.wait("outgoing_cancel")
            book = sender._book
            assert book is not None
            expiry = datetime.fromisoformat(transfer["expiresAt"])
            now = expiry + timedelta(seconds=MARGIN + 1)
            assert await retention.prune_pass(book, MARGIN, now=now) == 1
            with pytest.raises(TransferNotFoundError):
                await sender.transfer_log.get(transfer["id"])

            late = btp.Fulfill(0, transfer["id"], b64url_decode(fulfillment))
            answer = await receiver.request(late)
            assert isinstance(answer, btp.Error)
            assert (answer.code, answer.name) == ("F05", "AlreadyRolledBackError")
            assert await sender.get_balance() == "0"
        finally:
            await receiver.close()
    finally:
        await sender.disconnect()


async def test_a_paid_transfer_is_kept_as_its_id_until_forgotten() -> None:
    book = memory_book()
    paid, preimage = entry(incoming=False)
    await book.prepare(paid)
    assert (await book.fulfill_outgoing(paid.id, preimage, EXPIRES - 1))[1] is True
    # Within its window: a repeated Fulfill is acknowledged, our own re-send is a repeat.
    again, changed = await book.fulfill_outgoing(paid.id, preimage, EXPIRES + 1)
    assert (again.id, again.state, changed) == (paid.id, "fulfilled", False)
    assert await book.prepare(paid) is PrepareOutcome.REPEAT_FULFILLED
    with pytest.raises(NotAcceptedError, match="outgoing"):
        await book.fulfill_incoming(paid.id, preimage, EXPIRES - 1)
    assert await book.log.get_outgoing_fulfilled_and_prepared() == "5"
    assert await retention.prune_pass(book, MARGIN, now=at(EXPIRES + MARGIN - 1.001)) == 0
    assert await retention.prune_pass(book, MARGIN, now=at(EXPIRES + MARGIN + 1.001)) == 1
    with pytest.raises(TransferNotFoundError):
        await book.fulfill_outgoing(paid.id, preimage, EXPIRES + MARGIN + 2)
    assert await book.log.get_outgoing_fulfilled() == "5"


async def test_a_repeated_fulfill_after_our_answer_was_lost_is_acknowledged_then_f02() -> None:
    """We paid; the receiver's first Fulfill was taken but our answer did not reach it (the
    link dropped), so it sends the Fulfill again: acknowledged while the transfer is within its
    expiry plus the margin, F02 (not found) once forgotten, which leaves the receiver with the
    money as well. Our own re-send of the transfer meanwhile is refused, never sent again."""
    sender = Plugin(server_options())
    events = Recorder(sender, "outgoing_fulfill")
    await sender.connect()
    try:
        assert sender.listener_port is not None
        receiver = await RawPeer.open(sender.listener_port)
        try:
            transfer, fulfillment = make_transfer(sender.get_peer_account(), "9", expires_in=30)
            sending = asyncio.ensure_future(sender.send_transfer(transfer))
            await receiver.answer(await receiver.next_request())
            async with asyncio.timeout(WAIT):
                await sending
            fulfill = btp.Fulfill(0, transfer["id"], b64url_decode(fulfillment))
            assert isinstance(await receiver.request(fulfill), btp.Response)
            await events.wait("outgoing_fulfill")

            for _ in range(2):  # the answers lost: it asks again
                assert isinstance(await receiver.request(fulfill), btp.Response)
            assert len(events["outgoing_fulfill"]) == 1
            record = await sender.transfer_log.get(transfer["id"])
            assert (record["isIncoming"], record["state"]) == (False, "fulfilled")
            with pytest.raises(AlreadyRolledBackError, match="already fulfilled"):
                await sender.send_transfer(transfer)
            assert await sender.transfer_log.get_outgoing_fulfilled_and_prepared() == "9"
            assert await sender.get_balance() == "-9"

            book = sender._book
            assert book is not None
            expiry = datetime.fromisoformat(transfer["expiresAt"])
            now = expiry + timedelta(seconds=MARGIN + 2)
            assert await retention.prune_pass(book, MARGIN, now=now) == 1
            answer = await receiver.request(fulfill)
            assert isinstance(answer, btp.Error)
            assert (answer.code, answer.name) == ("F02", "TransferNotFoundError")
            assert len(events["outgoing_fulfill"]) == 1
            assert await sender.get_balance() == "-9"
        finally:
            await receiver.close()
    finally:
        await sender.disconnect()
