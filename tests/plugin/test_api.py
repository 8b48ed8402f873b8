"""The plugin's public API (docs/api.md) where the reference's own tests do not cover it."""

from __future__ import annotations

import asyncio

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.errors import TransferNotFoundError

from .conftest import Pair, RawPeer, make_transfer, prepare_packet


async def test_fulfill_of_an_unknown_id_raises_transfer_not_found(pair: Pair) -> None:
    _, fulfillment = make_transfer("example.red.client")
    with pytest.raises(TransferNotFoundError):
        await pair.server.fulfill_condition("5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1", fulfillment)
    with pytest.raises(TransferNotFoundError):
        await pair.server.reject_incoming_transfer("5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1", {})


def test_stateless_plugins_have_an_in_memory_transfer_log_at_once() -> None:
    plugin = Plugin({"server": "btp+ws://:s@127.0.0.1:1"})
    assert plugin.transfer_log is not None


async def test_the_stateless_client_records_its_own_transfers(pair: Pair) -> None:
    transfer, _ = make_transfer("example.red.server", amount="4")
    await pair.client.send_transfer(transfer)
    record = await pair.client.transfer_log.get(transfer["id"])
    assert (record["state"], record["isIncoming"]) == ("prepared", False)
    assert pair.client.in_flight_count() == 1


async def test_in_flight_count_tracks_prepared_transfers(listener: Plugin, raw: RawPeer) -> None:
    assert listener.in_flight_count() == 0
    packets = [prepare_packet(amount=1)[0] for _ in range(3)]
    for packet in packets:
        assert isinstance(await raw.request(packet), btp.Response)
    assert listener.in_flight_count() == 3
    rejecting = asyncio.ensure_future(listener.reject_incoming_transfer(packets[0].transfer_id))
    await raw.answer(await raw.next_request())
    await rejecting
    assert listener.in_flight_count() == 2


async def test_amounts_beyond_the_limits_are_refused_before_anything_is_sent(
    stateful_pair: Pair,
) -> None:
    p = stateful_pair
    transfer, _ = make_transfer(p.client.get_peer_account(), amount="123456789012345678901")
    with pytest.raises(Exception, match="amount"):
        await p.client.send_transfer(transfer)  # over UInt64: refused before anything
    transfer["amount"] = "18446744073709551615"
    with pytest.raises(Exception, match="balanceIncomingFulfilledAndPrepared"):
        await p.client.send_transfer(transfer)  # the server's maxBalance 1000 refuses it
    assert await p.client.transfer_log.get_outgoing_fulfilled_and_prepared() == "0"
    assert await p.client.get_balance() == "0"


async def test_disconnect_waits_for_requests_being_handled(listener: Plugin, raw: RawPeer) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(message: dict[str, object]) -> dict[str, object]:
        started.set()
        await release.wait()
        return {"to": message["from"], "custom": {"done": True}}

    listener.register_request_handler(slow)
    answer_future = await raw.send(btp.Message(0, (btp.ProtocolData("custom", 2, b"{}"),)))
    await started.wait()
    closing = asyncio.ensure_future(listener.disconnect())
    await asyncio.sleep(0.05)
    assert not closing.done()
    release.set()
    await closing
    answer = await asyncio.wait_for(answer_future, 5)
    assert isinstance(answer, btp.Response)
