"""Peer notices: their payload survives a restart; a Reject does not wait for an absent peer,
a Fulfill waits for it (up to requestTimeout) and returns only once it acknowledged.

Two real Python plugins on loopback: a listener on an SQLite file (restarted as a new Plugin over
the same file and port) and a client that goes away and comes back. A raw BTP peer checks what a
connected peer sees and when `fulfill_condition`/`reject_incoming_transfer` return.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import FulfillmentPendingError, Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import Fulfill, Reject
from ilp_paychan.codec.ilp import IlpError, decode_ilp

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

# A peer that never answers would hold a settling call this long; the tests' bound (WAIT) is
# far shorter, so returning "promptly" is checked without timing anything.
LONG_TIMEOUT = 60.0


class LinkWatcher:
    """An observer recording link changes and the kinds of requests actually sent."""

    def __init__(self) -> None:
        self.up: list[bool] = []
        self.sent: list[str] = []

    def link_changed(self, up: bool) -> None:
        self.up.append(up)

    def round_trip(self, kind: str, seconds: float) -> None:
        self.sent.append(kind)


def durable_server(tmp_path: Path, port: int = 0) -> Plugin:
    return Plugin(
        server_options(
            store=f"sqlite:///{tmp_path}/server.db",
            listener={"port": port, "host": "127.0.0.1"},
            requestTimeout=LONG_TIMEOUT,
        )
    )


async def _no_notices(plugin: Plugin) -> bool:
    return await plugin.transfer_log.list_peer_notices() == []


async def _notices(plugin: Plugin, count: int) -> bool:
    return len(await plugin.transfer_log.list_peer_notices()) == count


async def _settle_while_client_away_then_restart(
    tmp_path: Path, settle: str, extra: dict[str, Any]
) -> tuple[Plugin, Plugin, Recorder, dict[str, Any], str]:
    """Client pays the durable server, goes away; the server settles, restarts; client returns.

    Returns (server, client, client events, transfer, fulfillment).
    """
    server = durable_server(tmp_path)
    await server.connect()
    port = server.listener_port
    assert port is not None
    client = Plugin(client_options(port, store="memory:", maxBalance="1000"))
    events = Recorder(client, "outgoing_reject", "outgoing_fulfill")
    await client.connect()
    transfer, fulfillment = make_transfer(client.get_peer_account(), "7")
    await client.send_transfer(transfer)
    await client.disconnect()
    watcher = LinkWatcher()
    server.add_observer(watcher)
    await wait_until(lambda: not server._link_is_open(), "the server sees the client gone")
    if settle == "reject":
        async with asyncio.timeout(WAIT):
            await server.reject_incoming_transfer(transfer["id"], extra)
        assert watcher.sent == []  # nothing was sent: there is nobody to send it to
        assert len(await server.transfer_log.list_peer_notices()) == 1
        await server.disconnect()
    else:
        # It waits for the peer's answer; stopping the plugin ends the wait as pending.
        fulfilling = asyncio.ensure_future(
            server.fulfill_condition(transfer["id"], fulfillment, **extra)
        )
        await wait_until(lambda: _notices(server, 1), "the fulfilment is committed")
        await server.disconnect()
        with pytest.raises(FulfillmentPendingError):
            async with asyncio.timeout(WAIT):
                await fulfilling

    again = durable_server(tmp_path, port)
    await again.connect()
    await client.connect()
    return again, client, events, transfer, fulfillment


async def test_a_rejection_reason_survives_a_restart(tmp_path: Path) -> None:
    reason = {
        "code": "F99",
        "name": "Application Error",
        "triggered_by": "example.red.server",
        "additional_info": {"why": "custom reason"},
    }
    server, client, events, transfer, _ = await _settle_while_client_away_then_restart(
        tmp_path, "reject", reason
    )
    try:
        ((record, got),) = await events.wait("outgoing_reject")
        assert record["id"] == transfer["id"]
        assert got["code"] == "F99"
        assert got["name"] == "Application Error"
        assert got["triggered_by"] == "example.red.server"
        assert got["additional_info"] == {"why": "custom reason"}
        await wait_until(lambda: _no_notices(server))
        assert await client.transfer_log.get_outgoing_fulfilled_and_prepared() == "0"
    finally:
        await client.disconnect()
        await server.disconnect()


async def test_a_fulfills_ilp_data_survives_a_restart(tmp_path: Path) -> None:
    data = b"\x0c\x05answer for the sender"
    server, client, events, transfer, fulfillment = await _settle_while_client_away_then_restart(
        tmp_path, "fulfill", {"ilp": b64url(data)}
    )
    try:
        ((record, got_fulfillment, got_ilp),) = await events.wait("outgoing_fulfill")
        assert record["id"] == transfer["id"]
        assert got_fulfillment == fulfillment
        assert got_ilp == b64url(data)
        await wait_until(lambda: _no_notices(server))
        assert await client.get_balance() == "-7"
        assert await server.get_balance() == "7"
    finally:
        await client.disconnect()
        await server.disconnect()


async def _prepared_then_peer_gone(listener: Plugin) -> tuple[btp.Prepare, bytes, LinkWatcher]:
    port = listener.listener_port
    assert port is not None
    watcher = LinkWatcher()
    listener.add_observer(watcher)
    peer = await RawPeer.open(port)
    packet, preimage = prepare_packet(amount=3)
    assert isinstance(await peer.request(packet), btp.Response)
    await peer.close()
    await wait_until(lambda: watcher.up[-1:] == [False], "the link is down")
    return packet, preimage, watcher


async def test_fulfill_without_a_peer_waits_for_it_and_returns_once_acknowledged(
    tmp_path: Path,
) -> None:
    """No peer: the fulfilment is committed at once, but the call returns only when the peer,
    back within requestTimeout, has acknowledged the Fulfill (only then is it paid)."""
    listener = durable_server(tmp_path)
    events = Recorder(listener, "incoming_fulfill", "incoming_fulfill_confirmed")
    await listener.connect()
    try:
        packet, preimage, watcher = await _prepared_then_peer_gone(listener)
        fulfilling = asyncio.ensure_future(
            listener.fulfill_condition(packet.transfer_id, b64url(preimage))
        )
        await events.wait("incoming_fulfill")
        assert await listener.get_balance() == "3"  # committed locally...
        assert not fulfilling.done()  # ...but not reported as paid
        assert events["incoming_fulfill_confirmed"] == []
        assert "fulfill" not in watcher.sent
        assert listener.listener_port is not None
        peer = await RawPeer.open(listener.listener_port)
        fulfill = await peer.next_request()
        assert isinstance(fulfill, Fulfill)
        assert fulfill.fulfillment == preimage
        assert not fulfilling.done()
        await peer.answer(fulfill)
        async with asyncio.timeout(WAIT):
            await fulfilling
        await events.wait("incoming_fulfill_confirmed")
        assert await _no_notices(listener)
        await peer.close()
    finally:
        await listener.disconnect()


async def test_reject_without_a_peer_returns_at_once_and_delivers_later(tmp_path: Path) -> None:
    listener = durable_server(tmp_path)
    await listener.connect()
    try:
        packet, _, watcher = await _prepared_then_peer_gone(listener)
        async with asyncio.timeout(WAIT):
            await listener.reject_incoming_transfer(
                packet.transfer_id, {"code": "F02", "name": "Unreachable"}
            )
        assert "reject" not in watcher.sent
        assert listener.listener_port is not None
        peer = await RawPeer.open(listener.listener_port)
        reject = await peer.next_request()
        assert isinstance(reject, Reject)
        error = decode_ilp(reject.protocol_data[0].data)
        assert isinstance(error, IlpError)
        assert (error.code, error.name) == ("F02", "Unreachable")
        await peer.answer(reject)
        await wait_until(lambda: _no_notices(listener))
        await peer.close()
    finally:
        await listener.disconnect()


async def _settling_waits_for_the_answer(listener: Plugin, settle: str) -> None:
    port = listener.listener_port
    assert port is not None
    peer = await RawPeer.open(port)
    packet, preimage = prepare_packet(amount=2)
    assert isinstance(await peer.request(packet), btp.Response)
    if settle == "fulfill":
        call = listener.fulfill_condition(packet.transfer_id, b64url(preimage))
    else:
        call = listener.reject_incoming_transfer(packet.transfer_id, {"code": "F02"})
    settling = asyncio.ensure_future(call)
    sent = await peer.next_request()
    assert isinstance(sent, Fulfill if settle == "fulfill" else Reject)
    for _ in range(20):
        await asyncio.sleep(0)
    assert not settling.done()  # the link is open: it waits for the peer's answer
    await peer.answer(sent)
    async with asyncio.timeout(WAIT):
        await settling
    assert await _no_notices(listener)
    await peer.close()


async def test_fulfill_with_a_peer_waits_for_its_answer(tmp_path: Path) -> None:
    listener = durable_server(tmp_path)
    await listener.connect()
    try:
        await _settling_waits_for_the_answer(listener, "fulfill")
    finally:
        await listener.disconnect()


async def test_reject_with_a_peer_waits_for_its_answer(tmp_path: Path) -> None:
    listener = durable_server(tmp_path)
    await listener.connect()
    try:
        await _settling_waits_for_the_answer(listener, "reject")
    finally:
        await listener.disconnect()
