"""The reference's conditionSpec.js tests: conditional transfers, expiry, rejection.

The plugin under test is a stateful listener with maxBalance 10 (as the reference's suite); its
peer is a raw BTP client driven by hand.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import Fulfill, ProtocolData, Reject
from ilp_paychan.codec.ilp import IlpError, decode_ilp, encode_ilp
from ilp_paychan.errors import (
    AlreadyRolledBackError,
    InvalidFieldsError,
    NotAcceptedError,
    PeerTimeoutError,
)
from ilp_paychan.plugin.events import TRANSFER_EVENTS

from .conftest import RawPeer, Recorder, make_transfer, prepare_packet, server_options

PEER = "example.red.client"


@pytest.fixture
async def plugin() -> AsyncIterator[Plugin]:
    p = Plugin(server_options(maxBalance="10", requestTimeout=1))
    await p.connect()
    yield p
    await p.disconnect()


@pytest.fixture
async def peer(plugin: Plugin) -> AsyncIterator[RawPeer]:
    assert plugin.listener_port is not None
    raw = await RawPeer.open(plugin.listener_port)
    yield raw
    await raw.close()


@pytest.fixture
def events(plugin: Plugin) -> Recorder:
    return Recorder(plugin, *TRANSFER_EVENTS)


async def sleep_past(packet: btp.Prepare) -> None:
    assert packet.expires_at is not None
    await asyncio.sleep(
        max(packet.expires_at.timestamp() - datetime.now(UTC).timestamp(), 0) + 0.05
    )


def preimage_of(fulfillment: str) -> bytes:
    return base64.urlsafe_b64decode(fulfillment + "=")


async def send_and_ack(plugin: Plugin, peer: RawPeer, transfer: dict[str, Any]) -> btp.Prepare:
    task = asyncio.ensure_future(plugin.send_transfer(transfer))
    prepare = await peer.next_request()
    assert isinstance(prepare, btp.Prepare)
    await peer.answer(prepare)
    await task
    return prepare


async def incoming(
    peer: RawPeer, amount: int = 5, expires_in: float = 30.0
) -> tuple[btp.Prepare, str]:
    packet, preimage = prepare_packet(amount=amount, expires_in=expires_in)
    assert isinstance(await peer.request(packet), btp.Response)
    return packet, base64.urlsafe_b64encode(preimage).decode().rstrip("=")


async def settle(plugin_call: Any, peer: RawPeer) -> btp.Packet:
    """Run a plugin call that sends one request to the peer; answer it; return the request."""
    task = asyncio.ensure_future(plugin_call)
    request = await peer.next_request()
    await peer.answer(request)
    await task
    return request


async def test_allows_an_outgoing_transfer_to_be_fulfilled(
    plugin: Plugin, peer: RawPeer, events: Recorder
) -> None:
    transfer, fulfillment = make_transfer(PEER, amount="5")
    await send_and_ack(plugin, peer, transfer)
    answer = await peer.request(Fulfill(0, transfer["id"], preimage_of(fulfillment)))
    assert isinstance(answer, btp.Response)
    [(fulfilled, text, ilp)] = events["outgoing_fulfill"]
    assert (fulfilled["id"], text, ilp) == (transfer["id"], fulfillment, None)
    assert await plugin.get_balance() == "-5"


async def test_fulfills_an_incoming_transfer(
    plugin: Plugin, peer: RawPeer, events: Recorder
) -> None:
    packet, fulfillment = await incoming(peer)
    request = await settle(plugin.fulfill_condition(packet.transfer_id, fulfillment), peer)
    assert isinstance(request, Fulfill)
    assert (request.transfer_id, request.fulfillment) == (
        packet.transfer_id,
        preimage_of(fulfillment),
    )
    assert len(events["incoming_fulfill"]) == 1
    assert await plugin.get_balance() == "5"
    assert await plugin.transfer_log.list_peer_notices() == []


async def test_cancels_an_incoming_transfer_for_too_much_money(
    plugin: Plugin, peer: RawPeer, events: Recorder
) -> None:
    packet, _ = prepare_packet(amount=100)
    answer = await peer.request(packet)
    assert isinstance(answer, btp.Error)
    assert (answer.code, answer.name) == ("F00", "NotAcceptedError")
    assert "balanceIncomingFulfilledAndPrepared exceeds greatest allowed value" in answer.data
    assert events["incoming_prepare"] == []
    assert await plugin.get_balance() == "0"


async def test_should_fulfill_a_transfer_even_if_the_initial_rpc_failed(
    plugin: Plugin, peer: RawPeer
) -> None:
    """What the reference's name promises (its body never failed an RPC): the peer never answers
    the Prepare, send_transfer times out, the transfer stays prepared (the peer may have taken
    it) and the peer's later Fulfill still settles it."""
    transfer, fulfillment = make_transfer(PEER, amount="5")
    task = asyncio.ensure_future(plugin.send_transfer(transfer))
    await peer.next_request()  # never answered
    with pytest.raises(PeerTimeoutError):
        await task
    assert (await plugin.transfer_log.get(transfer["id"]))["state"] == "prepared"
    answer = await peer.request(Fulfill(0, transfer["id"], preimage_of(fulfillment)))
    assert isinstance(answer, btp.Response)
    assert await plugin.get_balance() == "-5"


async def test_doesnt_fulfill_a_transfer_with_invalid_fulfillment(
    plugin: Plugin, peer: RawPeer
) -> None:
    packet, _ = await incoming(peer)
    with pytest.raises(InvalidFieldsError, match="fulfillment"):
        await plugin.fulfill_condition(packet.transfer_id, "Garbage")
    with pytest.raises(NotAcceptedError, match="does not match"):
        await plugin.fulfill_condition(packet.transfer_id, make_transfer(PEER)[1])
    assert (await plugin.transfer_log.get(packet.transfer_id))["state"] == "prepared"


async def test_doesnt_fulfill_an_outgoing_transfer(plugin: Plugin, peer: RawPeer) -> None:
    transfer, fulfillment = make_transfer(PEER, amount="5")
    await send_and_ack(plugin, peer, transfer)
    with pytest.raises(NotAcceptedError, match="is outgoing; cannot fulfill"):
        await plugin.fulfill_condition(transfer["id"], fulfillment)


async def test_should_not_send_a_transfer_without_execution_condition(plugin: Plugin) -> None:
    transfer, _ = make_transfer(PEER)
    del transfer["executionCondition"]
    with pytest.raises(InvalidFieldsError, match="executionCondition"):
        await plugin.send_transfer(transfer)


async def test_should_not_send_a_transfer_without_expires_at(plugin: Plugin) -> None:
    transfer, _ = make_transfer(PEER)
    del transfer["expiresAt"]
    with pytest.raises(InvalidFieldsError, match="expiresAt"):
        await plugin.send_transfer(transfer)


async def test_should_not_send_a_transfer_that_already_expired(
    plugin: Plugin, peer: RawPeer
) -> None:
    transfer, _ = make_transfer(PEER, expires_in=-1)
    with pytest.raises(InvalidFieldsError, match="expiresAt"):
        await plugin.send_transfer(transfer)
    assert peer.requests.empty()


async def test_should_resolve_even_if_the_event_notification_handler_takes_forever(
    plugin: Plugin, peer: RawPeer
) -> None:
    never = asyncio.Event()

    async def forever(transfer: dict[str, Any]) -> None:
        await never.wait()

    plugin.on("outgoing_prepare", forever)
    await send_and_ack(plugin, peer, make_transfer(PEER, amount="1")[0])


async def test_should_resolve_even_if_the_event_notification_handler_throws_an_error(
    plugin: Plugin, peer: RawPeer
) -> None:
    def broken(transfer: dict[str, Any]) -> None:
        raise RuntimeError("listener failed")

    plugin.on("outgoing_prepare", broken)
    await send_and_ack(plugin, peer, make_transfer(PEER, amount="1")[0])


async def test_should_resolve_even_if_the_event_notification_handler_rejects(
    plugin: Plugin, peer: RawPeer
) -> None:
    async def broken(transfer: dict[str, Any]) -> None:
        raise RuntimeError("async listener failed")

    plugin.on("outgoing_prepare", broken)
    await send_and_ack(plugin, peer, make_transfer(PEER, amount="1")[0])


async def test_expires_a_transfer(plugin: Plugin, peer: RawPeer, events: Recorder) -> None:
    """The receiver expires it and sends the R00 Reject, as the reference."""
    packet, _ = await incoming(peer, expires_in=0.6)
    reject = await peer.next_request()
    assert isinstance(reject, Reject)
    assert reject.transfer_id == packet.transfer_id
    [entry] = reject.protocol_data
    error = decode_ilp(entry.data)
    assert isinstance(error, IlpError)
    assert (error.code, error.name, error.triggered_by, error.forwarded_by, error.data) == (
        "R00",
        "Transfer Timed Out",
        "example.red.server",
        (),
        b"expired",
    )
    await peer.answer(reject)
    [(cancelled, reason)] = await events.wait("incoming_cancel")
    assert cancelled["id"] == packet.transfer_id
    assert reason["code"] == "R00"
    assert await plugin.get_balance() == "0"
    assert await plugin.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
    from .conftest import wait_until

    await wait_until(lambda: _no_notices(plugin))


async def _no_notices(plugin: Plugin) -> bool:
    return await plugin.transfer_log.list_peer_notices() == []


async def test_expires_an_outgoing_transfer(
    plugin: Plugin, peer: RawPeer, events: Recorder
) -> None:
    """The reference's sender also sent a Reject (contrary to RFC 23, where only the receiver
    rejects); ours cancels
    locally, emits `outgoing_cancel` and sends nothing."""
    transfer, _ = make_transfer(PEER, amount="5", expires_in=0.6)
    await send_and_ack(plugin, peer, transfer)
    [(cancelled, reason)] = await events.wait("outgoing_cancel")
    assert cancelled["id"] == transfer["id"]
    assert reason["code"] == "R00"
    assert await plugin.get_balance() == "0"
    assert await plugin.transfer_log.get_outgoing_fulfilled_and_prepared() == "0"
    await peer.still_usable()
    assert peer.requests.empty()


async def test_doesnt_expire_an_executed_transfer(
    plugin: Plugin, peer: RawPeer, events: Recorder
) -> None:
    transfer, fulfillment = make_transfer(PEER, amount="5")
    await send_and_ack(plugin, peer, transfer)
    assert isinstance(
        await peer.request(Fulfill(0, transfer["id"], preimage_of(fulfillment))), btp.Response
    )
    await plugin._expire([transfer["id"]])  # what the scheduler runs at expiresAt
    assert events["outgoing_cancel"] == []
    assert await plugin.get_balance() == "-5"


async def test_rejects_an_incoming_transfer(
    plugin: Plugin, peer: RawPeer, events: Recorder
) -> None:
    packet, _ = await incoming(peer)
    when = datetime(2017, 12, 6, 19, 9, 28, 123000, tzinfo=UTC)
    reason = {
        "code": "F00",
        "name": "Bad Request",
        "triggered_by": "example.red.server",
        "forwarded_by": "test.some.connector",
        "triggered_at": when,
        "additional_info": {"extra": "data"},
    }
    request = await settle(plugin.reject_incoming_transfer(packet.transfer_id, reason), peer)
    assert isinstance(request, Reject)
    error = decode_ilp(request.protocol_data[0].data)
    assert error == IlpError(
        "F00",
        "Bad Request",
        "example.red.server",
        ("test.some.connector",),
        when,
        b'{"extra":"data"}',
    )
    [(rejected, emitted)] = events["incoming_reject"]
    assert rejected["id"] == packet.transfer_id
    assert emitted["forwarded_by"] == ["test.some.connector"]
    assert await plugin.get_balance() == "0"
    assert await plugin.transfer_log.list_peer_notices() == []


async def test_should_allow_an_outgoing_transfer_to_be_rejected(
    plugin: Plugin, peer: RawPeer, events: Recorder
) -> None:
    """`forwarded_by` is the whole list (the reference gave its last element)."""
    transfer, _ = make_transfer(PEER, amount="5")
    await send_and_ack(plugin, peer, transfer)
    when = datetime(2017, 12, 6, 19, 9, 28, 123000, tzinfo=UTC)
    error = IlpError("F00", "Bad Request", "g.someone", ("g.a", "g.b"), when, b'{"extra":"data"}')
    answer = await peer.request(
        Reject(0, transfer["id"], (ProtocolData("ilp", 0, encode_ilp(error)),))
    )
    assert isinstance(answer, btp.Response)
    [(rejected, reason)] = events["outgoing_reject"]
    assert rejected["id"] == transfer["id"]
    assert reason == {
        "code": "F00",
        "name": "Bad Request",
        "triggered_by": "g.someone",
        "forwarded_by": ["g.a", "g.b"],
        "triggered_at": when,
        "additional_info": {"extra": "data"},
    }
    assert await plugin.transfer_log.get_outgoing_fulfilled_and_prepared() == "0"
    again = await peer.request(
        Reject(0, transfer["id"], (ProtocolData("ilp", 0, encode_ilp(error)),))
    )
    assert isinstance(again, btp.Response)  # idempotent (RFC 23, Reject)
    assert len(events["outgoing_reject"]) == 1


async def test_should_not_reject_an_outgoing_transfer(plugin: Plugin, peer: RawPeer) -> None:
    transfer, _ = make_transfer(PEER, amount="5")
    await send_and_ack(plugin, peer, transfer)
    with pytest.raises(NotAcceptedError, match="is outgoing; cannot reject"):
        await plugin.reject_incoming_transfer(transfer["id"], {})


async def test_should_not_allow_an_incoming_transfer_to_be_rejected_by_sender(
    plugin: Plugin, peer: RawPeer
) -> None:
    packet, _ = await incoming(peer)
    for pd in [
        (),
        (ProtocolData("ilp", 0, encode_ilp(IlpError("F99", "x", "a", (), datetime.now(UTC)))),),
    ]:
        answer = await peer.request(Reject(0, packet.transfer_id, pd))
        assert isinstance(answer, btp.Error)
        assert answer.code == "F00"
    assert (await plugin.transfer_log.get(packet.transfer_id))["state"] == "prepared"


async def test_the_senders_expiry_reject_is_accepted_once_expired(
    plugin: Plugin, peer: RawPeer, events: Recorder
) -> None:
    """The reference refused a sender's expiry Reject for good."""
    packet, _ = await incoming(peer, expires_in=0.6)
    error = IlpError(
        "R00", "Transfer Timed Out", "example.red.client", (), datetime.now(UTC), b"expired"
    )
    await sleep_past(packet)
    answer = await peer.request(
        Reject(0, packet.transfer_id, (ProtocolData("ilp", 0, encode_ilp(error)),))
    )
    assert isinstance(answer, btp.Response)
    assert (await plugin.transfer_log.get(packet.transfer_id))["state"] == "cancelled"
    assert len(await events.wait("incoming_cancel")) == 1


async def test_fulfill_after_expiry_is_already_rolled_back(plugin: Plugin, peer: RawPeer) -> None:
    packet, fulfillment = await incoming(peer, expires_in=0.6)
    await sleep_past(packet)
    with pytest.raises(AlreadyRolledBackError):
        await plugin.fulfill_condition(packet.transfer_id, fulfillment)
