"""The store fails while the plugin runs: nothing may stay stuck once it works again.

A write that fails with StoreUnavailableError may have been committed all the same (the
connection dropped during the commit). These tests make the ledger commit and then raise, once,
as that looks to the plugin (TransferLog patched for the test: a unit test of the plugin layer),
and check that the plugin still settles the transfer: a prepare stored behind its back is
cancelled at its expiry, an expiry that fails is tried again, and a fulfilment stored behind the
caller's back still has its Fulfill sent (the sender decides whether it counts).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import Error, Fulfill, Reject, Response
from ilp_paychan.errors import StoreUnavailableError
from ilp_paychan.ledger import TransferLog

from .conftest import (
    RawPeer,
    Recorder,
    b64url,
    make_transfer,
    prepare_packet,
    wait_until,
)


def fail_once_after(monkeypatch: pytest.MonkeyPatch, method: str) -> list[int]:
    """Make TransferLog.<method> commit, then raise StoreUnavailableError, the next time only.

    Returns a list that gets one element when the failure happened.
    """
    real: Callable[..., Awaitable[Any]] = getattr(TransferLog, method)
    struck: list[int] = []

    async def commit_then_fail(self: TransferLog, *args: Any, **kwargs: Any) -> Any:
        result = await real(self, *args, **kwargs)
        if not struck:
            struck.append(1)
            raise StoreUnavailableError("the store connection closed during the commit")
        return result

    monkeypatch.setattr(TransferLog, method, commit_then_fail)
    return struck


def fail_before(monkeypatch: pytest.MonkeyPatch, method: str, times: int) -> list[int]:
    """Make TransferLog.<method> raise StoreUnavailableError (nothing done) `times` times."""
    real: Callable[..., Awaitable[Any]] = getattr(TransferLog, method)
    struck: list[int] = []

    async def fail(self: TransferLog, *args: Any, **kwargs: Any) -> Any:
        if len(struck) < times:
            struck.append(1)
            raise StoreUnavailableError("the store is down")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(TransferLog, method, fail)
    return struck


async def state(plugin: Plugin, tid: str) -> str:
    return str((await plugin.transfer_log.get(tid))["state"])


async def test_an_outgoing_prepare_stored_despite_the_error_is_cancelled_at_expiry(
    listener: Plugin, raw: RawPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = Recorder(listener, "outgoing_cancel")
    struck = fail_once_after(monkeypatch, "prepare")
    transfer, _ = make_transfer(listener.get_peer_account(), "5", expires_in=1.0)
    with pytest.raises(StoreUnavailableError):
        await listener.send_transfer(transfer)
    assert struck
    assert await state(listener, transfer["id"]) == "prepared"  # committed all the same
    await events.wait("outgoing_cancel")
    assert await state(listener, transfer["id"]) == "cancelled"
    assert await listener.transfer_log.get_outgoing_fulfilled_and_prepared() == "0"


async def test_an_incoming_prepare_stored_despite_the_error_is_cancelled_at_expiry(
    listener: Plugin, raw: RawPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    struck = fail_once_after(monkeypatch, "prepare")
    packet, _ = prepare_packet(amount=4, expires_in=1.0)
    answer = await raw.request(packet)
    assert isinstance(answer, Error)
    assert (answer.code, answer.name) == ("T00", "StoreUnavailableError")
    assert struck
    # The sender took the T00 as a refusal; here the transfer is stored. Its expiry cancels
    # it and tells the sender (which had cancelled it too).
    reject = await raw.next_request()
    assert isinstance(reject, Reject)
    assert reject.transfer_id == packet.transfer_id
    await raw.answer(reject)
    assert await state(listener, packet.transfer_id) == "cancelled"
    assert await listener.transfer_log.get_incoming_fulfilled_and_prepared() == "0"


async def test_an_expiry_that_meets_a_store_outage_is_tried_again(
    listener: Plugin, raw: RawPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = Recorder(listener, "outgoing_cancel")
    transfer, _ = make_transfer(listener.get_peer_account(), "5", expires_in=0.5)
    sending = asyncio.ensure_future(listener.send_transfer(transfer))
    await raw.answer(await raw.next_request())
    await sending
    struck = fail_before(monkeypatch, "cancel", 2)
    await events.wait("outgoing_cancel")
    assert len(struck) == 2
    assert await state(listener, transfer["id"]) == "cancelled"


async def test_a_fulfilment_stored_despite_the_error_still_reaches_the_sender(
    listener: Plugin, raw: RawPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fulfill_condition raised, but the fulfilment was committed with its notice: the Fulfill
    goes out (at the latest at the expiry) and the sender's answer settles it; here the sender
    had cancelled, so the fulfilment is reverted and both sides hold it cancelled."""
    events = Recorder(listener, "incoming_fulfill_reverted")
    packet, preimage = prepare_packet(amount=3, expires_in=1.0)
    assert isinstance(await raw.request(packet), Response)
    struck = fail_once_after(monkeypatch, "fulfill")
    with pytest.raises(StoreUnavailableError):
        await listener.fulfill_condition(packet.transfer_id, b64url(preimage))
    assert struck
    assert await state(listener, packet.transfer_id) == "fulfilled"  # committed all the same
    fulfill = await raw.next_request()
    assert isinstance(fulfill, Fulfill)
    assert fulfill.transfer_id == packet.transfer_id
    data = json.dumps({"message": "already expired"})
    await raw.send_frame(
        btp.encode(
            Error(fulfill.request_id, "F05", "AlreadyRolledBackError", datetime.now(UTC), data)
        )
    )
    await events.wait("incoming_fulfill_reverted")
    await wait_until(
        lambda: _no_notices(listener), "the notice to be settled by the sender's answer"
    )
    assert await state(listener, packet.transfer_id) == "cancelled"
    assert await listener.get_balance() == "0"


async def _no_notices(plugin: Plugin) -> bool:
    return not await plugin.transfer_log.list_peer_notices()
