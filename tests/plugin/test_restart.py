"""Issue item 3: prepared transfers survive a restart (SQLite store in tmp_path).

A "restart" is a new Plugin object over the same store file and the same listener port; the
peer is a raw BTP client, so what goes over the wire is checked directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import FulfillmentPendingError, Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import Fulfill, Reject
from ilp_paychan.codec.ilp import IlpError, decode_ilp

from .conftest import (
    RawPeer,
    Recorder,
    b64url,
    make_transfer,
    preimage_pair,
    prepare_packet,
    server_options,
    wait_until,
)


def options(tmp_path: Path, port: int = 0, **extra: Any) -> dict[str, Any]:
    return server_options(
        store=f"sqlite:///{tmp_path}/plugin.db",
        listener={"port": port, "host": "127.0.0.1"},
        **extra,
    )


@contextlib.asynccontextmanager
async def first_run(tmp_path: Path, **extra: Any) -> AsyncIterator[tuple[Plugin, RawPeer, int]]:
    """The plugin before the restart (listening on a free port) with a raw peer connected.

    Yields (plugin, peer, port); on exit the peer closes and the plugin stops, as if shut down.
    """
    plugin = Plugin(options(tmp_path, **extra))
    await plugin.connect()
    try:
        port = plugin.listener_port
        assert port is not None
        peer = await RawPeer.open(port)
        try:
            yield plugin, peer, port
        finally:
            await peer.close()
    finally:
        await plugin.disconnect()


@contextlib.asynccontextmanager
async def second_run(
    tmp_path: Path, port: int, *recorded: str
) -> AsyncIterator[tuple[Plugin, Recorder]]:
    """The plugin after the restart: same store, same port; stops on exit.

    Yields (plugin, recorder of the `recorded` events, attached before connect()).
    """
    plugin = Plugin(options(tmp_path, port))
    events = Recorder(plugin, *recorded)
    await plugin.connect()
    try:
        yield plugin, events
    finally:
        await plugin.disconnect()


async def test_a_transfer_prepared_before_a_restart_can_be_fulfilled(tmp_path: Path) -> None:
    async with first_run(tmp_path) as (_, peer, port):
        packet, preimage = prepare_packet(amount=9)
        assert isinstance(await peer.request(packet), btp.Response)

    async with second_run(tmp_path, port) as (second, _):
        assert second.in_flight_count() == 1
        peer = await RawPeer.open(port)
        fulfilling = asyncio.ensure_future(
            second.fulfill_condition(packet.transfer_id, b64url(preimage))
        )
        fulfill = await peer.next_request()
        assert isinstance(fulfill, Fulfill)
        await peer.answer(fulfill)
        await fulfilling
        assert await second.get_balance() == "9"
        assert await second.transfer_log.list_peer_notices() == []
        await peer.close()


async def test_an_identical_prepare_after_a_restart_is_acknowledged_without_an_event(
    tmp_path: Path,
) -> None:
    async with first_run(tmp_path) as (_, peer, port):
        packet, _ = prepare_packet(amount=2)
        assert isinstance(await peer.request(packet), btp.Response)

    async with second_run(tmp_path, port, "incoming_prepare") as (second, events):
        peer = await RawPeer.open(port)
        assert isinstance(await peer.request(packet), btp.Response)
        assert events["incoming_prepare"] == []
        assert await second.transfer_log.get_incoming_fulfilled_and_prepared() == "2"
        await peer.close()


async def test_a_transfer_that_expired_while_stopped_is_cancelled_at_start_and_the_peer_told(
    tmp_path: Path,
) -> None:
    async with first_run(tmp_path) as (_, peer, port):
        packet, _ = prepare_packet(amount=5, expires_in=0.6)
        assert isinstance(await peer.request(packet), btp.Response)
    assert packet.expires_at is not None
    await asyncio.sleep(max(packet.expires_at.timestamp() - time.time(), 0) + 0.05)

    async with second_run(tmp_path, port, "incoming_cancel") as (second, events):
        record = await second.transfer_log.get(packet.transfer_id)
        assert record["state"] == "cancelled"  # already when connect() returned
        assert len(events["incoming_cancel"]) == 1
        assert await second.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
        peer = await RawPeer.open(port)  # the peer comes back: it is told
        reject = await peer.next_request()
        assert isinstance(reject, Reject)
        assert reject.transfer_id == packet.transfer_id
        error = decode_ilp(reject.protocol_data[0].data)
        assert isinstance(error, IlpError)
        assert error.code == "R00"
        await peer.answer(reject)
        await wait_until(lambda: _no_notices(second))
        await peer.close()


async def _no_notices(plugin: Plugin) -> bool:
    return await plugin.transfer_log.list_peer_notices() == []


async def test_an_undelivered_fulfill_is_delivered_after_a_restart(tmp_path: Path) -> None:
    """The fulfilment was committed but the peer never acknowledged the Fulfill."""
    async with first_run(tmp_path, requestTimeout=0.2) as (first, peer, port):
        packet, preimage = prepare_packet(amount=8)
        assert isinstance(await peer.request(packet), btp.Response)
        with pytest.raises(FulfillmentPendingError):
            await first.fulfill_condition(packet.transfer_id, b64url(preimage))

    async with second_run(tmp_path, port) as (second, _):
        peer = await RawPeer.open(port)
        fulfill = await peer.next_request()
        assert isinstance(fulfill, Fulfill)
        assert fulfill.fulfillment == preimage
        await peer.answer(fulfill)
        await wait_until(lambda: _no_notices(second))
        assert await second.get_balance() == "8"
        await peer.close()


async def test_an_outgoing_transfer_survives_a_restart_and_the_peer_can_fulfil_it(
    tmp_path: Path,
) -> None:
    async with first_run(tmp_path) as (first, peer, port):
        preimage = os.urandom(32)
        _, condition = preimage_pair(preimage)
        transfer, _ = make_transfer("example.red.client", "4", executionCondition=condition)
        sending = asyncio.ensure_future(first.send_transfer(transfer))
        await peer.answer(await peer.next_request())
        await sending

    async with second_run(tmp_path, port, "outgoing_fulfill") as (second, events):
        peer = await RawPeer.open(port)
        assert isinstance(await peer.request(Fulfill(0, transfer["id"], preimage)), btp.Response)
        assert len(events["outgoing_fulfill"]) == 1
        assert await second.get_balance() == "-4"
        await peer.close()
