"""A peer that never answers, answers twice, repeats itself, or answers after the expiry.

The peer is a hand-driven BTP client (`RawPeer`: the project's codec over a real WebSocket)
speaking to a real listener Plugin. In every case the plugin must stay up and usable, ignore
what it already handled, refuse what came too late, and end with the state and balance the
rules give (a fulfilment counts only if the sender took it before the expiry).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import Error, Fulfill, Prepare, Reject, Response
from ilp_paychan.errors import (
    AlreadyRolledBackError,
    FulfillmentPendingError,
    PeerTimeoutError,
)

from .conftest import (
    RawPeer,
    Recorder,
    b64url,
    make_transfer,
    prepare_packet,
    server_options,
    wait_until,
)

TIMEOUT = 0.5


@contextlib.asynccontextmanager
async def plugin_and_peer(
    *events: str, request_timeout: float = TIMEOUT
) -> AsyncIterator[tuple[Plugin, RawPeer, Recorder]]:
    plugin = Plugin(server_options(requestTimeout=request_timeout))
    recorder = Recorder(plugin, *events)
    await plugin.connect()
    try:
        assert plugin.listener_port is not None
        peer = await RawPeer.open(plugin.listener_port)
        try:
            yield plugin, peer, recorder
        finally:
            await peer.close()
    finally:
        await plugin.disconnect()


def error_answer(request: btp.Packet, code: str, name: str, message: str) -> bytes:
    data = json.dumps({"message": message})
    return btp.encode(Error(request.request_id, code, name, datetime.now(UTC), data))


async def state(plugin: Plugin, tid: str) -> str:
    return str((await plugin.transfer_log.get(tid))["state"])


async def no_notices(plugin: Plugin) -> bool:
    return not await plugin.transfer_log.list_peer_notices()


def send_in_background(plugin: Plugin, transfer: dict[str, Any]) -> asyncio.Task[None]:
    return asyncio.ensure_future(plugin.send_transfer(transfer))


async def test_a_prepare_never_answered_times_out_and_expires() -> None:
    async with plugin_and_peer("outgoing_cancel") as (plugin, peer, events):
        transfer, _ = make_transfer(plugin.get_peer_account(), "5", expires_in=1.5)
        sending = send_in_background(plugin, transfer)
        assert isinstance(await peer.next_request(), Prepare)  # seen, never answered
        with pytest.raises(PeerTimeoutError):
            await sending
        assert await state(plugin, transfer["id"]) == "prepared"  # the peer may hold it
        await events.wait("outgoing_cancel")
        assert await state(plugin, transfer["id"]) == "cancelled"
        assert await plugin.get_balance() == "0"
        await peer.still_usable()


async def test_a_fulfill_never_answered_is_sent_again_until_the_peer_answers() -> None:
    async with plugin_and_peer("incoming_fulfill_confirmed") as (plugin, peer, events):
        packet, preimage = prepare_packet(amount=3, expires_in=30.0)
        assert isinstance(await peer.request(packet), Response)
        with pytest.raises(FulfillmentPendingError):
            await plugin.fulfill_condition(packet.transfer_id, b64url(preimage))
        first = await peer.next_request()
        assert isinstance(first, Fulfill)
        again = await peer.next_request()  # not answered: sent again, same transfer
        assert isinstance(again, Fulfill)
        assert (again.transfer_id, again.fulfillment) == (packet.transfer_id, preimage)
        await peer.answer(again)
        await events.wait("incoming_fulfill_confirmed")
        await wait_until(lambda: no_notices(plugin), "the notice to be cleared")
        assert await state(plugin, packet.transfer_id) == "fulfilled"
        assert await plugin.get_balance() == "3"
        await peer.answer(first)  # a very late answer to the first Fulfill: ignored
        await peer.still_usable()
        assert len(events["incoming_fulfill_confirmed"]) == 1


async def test_answers_given_twice_are_ignored() -> None:
    """A second answer to the same request (a Response again, or an Error after a Response)
    changes nothing: the transfer keeps the state the first answer gave it."""
    async with plugin_and_peer("outgoing_fulfill", "incoming_fulfill_confirmed") as (
        plugin,
        peer,
        events,
    ):
        transfer, fulfillment = make_transfer(plugin.get_peer_account(), "4")
        sending = send_in_background(plugin, transfer)
        prepare = await peer.next_request()
        await peer.answer(prepare)
        await peer.send_frame(error_answer(prepare, "F05", "AlreadyRolledBackError", "no"))
        await peer.answer(prepare)
        async with asyncio.timeout(5):
            await sending
        await peer.still_usable()
        assert await state(plugin, transfer["id"]) == "prepared"

        incoming, preimage = prepare_packet(amount=6)
        assert isinstance(await peer.request(incoming), Response)
        fulfilling = asyncio.ensure_future(
            plugin.fulfill_condition(incoming.transfer_id, b64url(preimage))
        )
        fulfill = await peer.next_request()
        await peer.answer(fulfill)
        await peer.answer(fulfill)
        await peer.send_frame(error_answer(fulfill, "F05", "AlreadyRolledBackError", "no"))
        async with asyncio.timeout(5):
            await fulfilling
        await peer.still_usable()
        assert await state(plugin, incoming.transfer_id) == "fulfilled"
        assert len(events["incoming_fulfill_confirmed"]) == 1

        done = await peer.request(Fulfill(0, transfer["id"], _preimage_of(fulfillment), ()))
        assert isinstance(done, Response)
        assert await plugin.get_balance() == str(6 - 4)
        assert len(events["outgoing_fulfill"]) == 1


async def test_requests_repeated_by_the_peer_take_effect_once() -> None:
    async with plugin_and_peer("incoming_prepare", "outgoing_fulfill") as (plugin, peer, events):
        packet, _ = prepare_packet(amount=8)
        assert isinstance(await peer.request(packet), Response)
        assert isinstance(await peer.request(packet), Response)  # same Prepare again
        assert len(events["incoming_prepare"]) == 1

        transfer, fulfillment = make_transfer(plugin.get_peer_account(), "5")
        sending = send_in_background(plugin, transfer)
        await peer.answer(await peer.next_request())
        await sending
        fulfill = Fulfill(0, transfer["id"], _preimage_of(fulfillment), ())
        assert isinstance(await peer.request(fulfill), Response)
        assert isinstance(await peer.request(fulfill), Response)  # repeated: no-op, accepted
        reject = await peer.request(Reject(0, transfer["id"], packet.protocol_data))
        assert isinstance(reject, Error)  # too late to reject what it fulfilled
        assert len(events["outgoing_fulfill"]) == 1
        assert await state(plugin, transfer["id"]) == "fulfilled"
        # incoming 8 is still prepared (not counted), outgoing 5 fulfilled.
        assert await plugin.get_balance() == "-5"


async def test_a_prepare_answered_after_its_expiry_stays_cancelled() -> None:
    async with plugin_and_peer("outgoing_cancel", request_timeout=10.0) as (plugin, peer, events):
        transfer, fulfillment = make_transfer(plugin.get_peer_account(), "5", expires_in=1.0)
        sending = send_in_background(plugin, transfer)
        prepare = await peer.next_request()
        await events.wait("outgoing_cancel")
        await peer.answer(prepare)  # the acknowledgement comes after the expiry
        with contextlib.suppress(AlreadyRolledBackError):
            async with asyncio.timeout(5):
                await sending
        late = await peer.request(Fulfill(0, transfer["id"], _preimage_of(fulfillment), ()))
        assert isinstance(late, Error)
        assert late.code == "F05"
        assert await state(plugin, transfer["id"]) == "cancelled"
        assert await plugin.get_balance() == "0"
        await peer.still_usable()


@pytest.mark.parametrize("accepted", [True, False], ids=["acknowledged", "refused_f05"])
async def test_a_fulfill_answered_after_the_expiry_follows_the_senders_word(
    accepted: bool,
) -> None:
    """The sender decides: a late Response means it took the fulfilment (paid); a late F05
    means it had cancelled, and the plugin rolls its fulfilment back."""
    async with plugin_and_peer("incoming_fulfill_confirmed", "incoming_fulfill_reverted") as (
        plugin,
        peer,
        events,
    ):
        packet, preimage = prepare_packet(amount=3, expires_in=1.0)
        assert isinstance(await peer.request(packet), Response)
        with pytest.raises(FulfillmentPendingError):
            await plugin.fulfill_condition(packet.transfer_id, b64url(preimage))
        expires = packet.expires_at
        assert expires is not None
        while True:  # answer the first Fulfill sent after the expiry
            fulfill = await peer.next_request()
            assert isinstance(fulfill, Fulfill)
            if datetime.now(UTC) > expires:
                break
        if accepted:
            await peer.answer(fulfill)
            await events.wait("incoming_fulfill_confirmed")
        else:
            await peer.send_frame(
                error_answer(fulfill, "F05", "AlreadyRolledBackError", "already expired")
            )
            await events.wait("incoming_fulfill_reverted")
        await wait_until(lambda: no_notices(plugin), "the notice to be cleared")
        assert await state(plugin, packet.transfer_id) == ("fulfilled" if accepted else "cancelled")
        assert await plugin.get_balance() == ("3" if accepted else "0")
        await peer.still_usable()


def _preimage_of(fulfillment: str) -> bytes:
    return base64.urlsafe_b64decode(fulfillment + "=" * (-len(fulfillment) % 4))
