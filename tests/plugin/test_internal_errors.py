"""A request that fails inside our plugin for no reason of its own gets a temporary answer.

An unexpected exception while handling the peer's request (a bug, or a store failing in a way it
does not name) is answered T00 UnreachableError "internal error; try again", and a store that
cannot reach its data answers T00 StoreUnavailableError: neither is a verdict on the request. A
final (F) code would be wrong for a Fulfill above all: the receiver re-delivering it takes an F
answer as final and drops its notice, while the sender still holds the transfer prepared and
later cancels it, and the two sides would disagree. The sender's store here is a user key/value
object whose writes fail on demand: the store layer a user can give, failing as it would.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec.btp import Error, Fulfill, Response
from ilp_paychan.codec.condition import b64url_decode
from ilp_paychan.errors import FulfillmentPendingError

from .conftest import (
    RawPeer,
    Recorder,
    client_options,
    make_transfer,
    server_options,
)


class FlakyObjectStore:
    """A user's key/value store; while `failure` is set, every write raises it (nothing done)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.failure: Exception | None = None
        self.failed = 0

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def put(self, key: str, value: str) -> None:
        if self.failure is not None:
            self.failed += 1
            raise self.failure
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def fulfill_packet(transfer: dict[str, str], fulfillment: str) -> Fulfill:
    return Fulfill(0, transfer["id"], b64url_decode(fulfillment))


async def sender_with_prepared_transfer(
    store: FlakyObjectStore,
) -> tuple[Plugin, RawPeer, dict[str, str], str]:
    """Our listener on `store`, a raw receiver, and a transfer the receiver has accepted."""
    sender = Plugin(server_options(store=store))
    await sender.connect()
    assert sender.listener_port is not None
    receiver = await RawPeer.open(sender.listener_port)
    transfer, fulfillment = make_transfer(sender.get_peer_account(), "7")
    sending = asyncio.ensure_future(sender.send_transfer(transfer))
    await receiver.answer(await receiver.next_request())
    await sending
    return sender, receiver, transfer, fulfillment


@pytest.mark.parametrize(
    ("failure", "name", "message"),
    [
        (RuntimeError("the object's own bug"), "UnreachableError", "internal error; try again"),
        (ConnectionResetError(104, "reset"), "StoreUnavailableError", "ConnectionResetError"),
    ],
)
async def test_a_fulfill_the_sender_cannot_store_gets_t00_and_a_repeat_settles_it(
    failure: Exception, name: str, message: str
) -> None:
    store = FlakyObjectStore()
    sender, receiver, transfer, fulfillment = await sender_with_prepared_transfer(store)
    try:
        events = Recorder(sender, "outgoing_fulfill")
        store.failure = failure
        answer = await receiver.request(fulfill_packet(transfer, fulfillment))
        assert isinstance(answer, Error), answer
        assert (answer.code, answer.name) == ("T00", name)
        assert message in json.loads(answer.data)["message"]
        assert "own bug" not in answer.data  # the exception's text stays in our log
        assert store.failed == 1
        assert (await sender.transfer_log.get(transfer["id"]))["state"] == "prepared"
        assert events["outgoing_fulfill"] == []

        store.failure = None  # the receiver, told to try again, re-delivers
        again = await receiver.request(fulfill_packet(transfer, fulfillment))
        assert isinstance(again, Response), again
        await events.wait("outgoing_fulfill")
        assert (await sender.transfer_log.get(transfer["id"]))["state"] == "fulfilled"
        assert await sender.transfer_log.get_balance() == "-7"
    finally:
        await receiver.close()
        await sender.disconnect()


async def test_the_receiver_keeps_its_notice_until_the_sender_can_store_the_fulfill() -> None:
    """Two plugins: the sender's store fails while the receiver fulfils. The receiver's
    fulfill_condition reports the fulfilment pending (not refused), keeps the notice and
    re-delivers it; once the sender's store works both sides hold the transfer fulfilled."""
    store = FlakyObjectStore()
    receiver = Plugin(server_options(requestTimeout=0.5))
    await receiver.connect()
    assert receiver.listener_port is not None
    sender = Plugin(client_options(receiver.listener_port, store=store, maxBalance="1000"))
    try:
        await sender.connect()
        received = Recorder(receiver, "incoming_prepare", "incoming_fulfill_confirmed")
        paid = Recorder(sender, "outgoing_fulfill")
        transfer, fulfillment = make_transfer(sender.get_peer_account(), "9")
        await sender.send_transfer(transfer)
        await received.wait("incoming_prepare")

        store.failure = RuntimeError("the object's own bug")
        with pytest.raises(FulfillmentPendingError):
            await receiver.fulfill_condition(transfer["id"], fulfillment)
        assert store.failed >= 1  # the sender was asked, and could not store it
        notices = await receiver.transfer_log.list_peer_notices()
        assert [n["transfer"]["id"] for n in notices] == [transfer["id"]]
        assert (await sender.transfer_log.get(transfer["id"]))["state"] == "prepared"

        store.failure = None
        await received.wait("incoming_fulfill_confirmed")
        await paid.wait("outgoing_fulfill")
        assert (await receiver.transfer_log.get(transfer["id"]))["state"] == "fulfilled"
        assert (await sender.transfer_log.get(transfer["id"]))["state"] == "fulfilled"
        assert await receiver.transfer_log.list_peer_notices() == []
        assert await receiver.transfer_log.get_balance() == "9"
        assert await sender.transfer_log.get_balance() == "-9"
    finally:
        await sender.disconnect()
        await receiver.disconnect()
