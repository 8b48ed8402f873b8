"""Issue item 3: a transfer can never be both fulfilled and cancelled, whatever the interleaving
of a late fulfill and its expiry."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import time
import uuid

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.errors import AlreadyFulfilledError, AlreadyRolledBackError
from ilp_paychan.ledger import open_backend
from ilp_paychan.plugin.transfers import Entry, TransferBook

from .conftest import RawPeer, Recorder, prepare_packet, wait_until


async def test_fulfill_and_expire_of_the_same_transfer_never_both_win() -> None:
    backend = await open_backend("memory:")
    book = TransferBook(backend.get_transfer_log())
    for round_ in range(200):
        preimage = os.urandom(32)
        entry = Entry(
            str(uuid.uuid4()),
            {
                "id": "",
                "amount": "1",
                "executionCondition": "",
                "expiresAt": "2030-01-01T00:00:00.000Z",
            },
            True,
            1,
            hashlib.sha256(preimage).digest(),
            time.time() + 60,
        )
        entry.record["id"] = entry.id
        await book.prepare(entry)
        fulfil = book.fulfill_incoming(entry.id, preimage, time.time())
        expire = book.expire(entry.id)
        first, second = (fulfil, expire) if round_ % 2 else (expire, fulfil)
        results = await asyncio.gather(first, second, return_exceptions=True)
        outcomes = [r for r in results if not isinstance(r, BaseException)]
        fulfilled = any(
            isinstance(r, tuple) and r[1] and r[0] is not None and r[0].state == "fulfilled"
            for r in outcomes
        )
        cancelled = any(
            isinstance(r, tuple) and r[1] and r[0] is not None and r[0].state == "cancelled"
            for r in outcomes
        )
        assert fulfilled != cancelled, results
        for failure in (r for r in results if isinstance(r, BaseException)):
            assert isinstance(failure, AlreadyRolledBackError | AlreadyFulfilledError)
        state = (await book.log.get(entry.id))["state"]
        assert state == ("fulfilled" if fulfilled else "cancelled")
    log = book.log
    assert int(await log.get_incoming_fulfilled()) == int(
        await log.get_incoming_fulfilled_and_prepared()
    )


async def test_late_fulfills_racing_expiry_settle_each_transfer_once(
    listener: Plugin, raw: RawPeer
) -> None:
    """Many transfers expire at the same instant while fulfill_condition calls land around it:
    each ends fulfilled xor cancelled, with exactly one matching event, and the sums agree."""
    events = Recorder(listener, "incoming_fulfill", "incoming_cancel")

    async def answer_everything() -> None:
        while True:
            request = await raw.requests.get()
            await raw.answer(request)

    answering = asyncio.ensure_future(answer_everything())
    packets = []
    for _ in range(30):
        packet, preimage = prepare_packet(amount=1, expires_in=1.0)
        assert isinstance(await raw.request(packet), btp.Response)
        packets.append((packet, preimage))

    async def late_fulfil(index: int, packet: btp.Prepare, preimage: bytes) -> None:
        assert packet.expires_at is not None
        delay = packet.expires_at.timestamp() - time.time() + (index - 15) * 0.002
        await asyncio.sleep(max(delay, 0))
        with contextlib.suppress(AlreadyRolledBackError):
            await listener.fulfill_condition(
                packet.transfer_id, base64.urlsafe_b64encode(preimage).decode().rstrip("=")
            )

    try:
        await asyncio.gather(*(late_fulfil(i, p, f) for i, (p, f) in enumerate(packets)))
        await wait_until(
            lambda: len(events["incoming_fulfill"]) + len(events["incoming_cancel"]) == 30
        )
        fulfilled = {args[0]["id"] for args in events["incoming_fulfill"]}
        cancelled = {args[0]["id"] for args in events["incoming_cancel"]}
        assert not fulfilled & cancelled
        assert len(fulfilled) + len(cancelled) == 30
        for packet, _ in packets:
            state = (await listener.transfer_log.get(packet.transfer_id))["state"]
            assert state == ("fulfilled" if packet.transfer_id in fulfilled else "cancelled")
        assert await listener.get_balance() == str(len(fulfilled))
        assert await listener.transfer_log.get_incoming_fulfilled_and_prepared() == str(
            len(fulfilled)
        )
    finally:
        answering.cancel()
