"""A notice left for the background task reaches a socket that replaced one still closing.

The listener's active socket stays the active one after it stopped being open until its request
handlers are done (up to the connection's handler grace). A peer that authenticates again in that
time replaces it without a link-state event: the link was never reported down, so it is not
reported up. A Reject, or a Fulfill whose `fulfill_condition` gave up waiting, that was left to
the background task while the old socket was closing must still be sent on the new socket.

Real sockets: a `RawPeer` (the project's codec over a real WebSocket) is the sender. The old
socket is held in that state by a request handler that waits for the test; the wait for the
notice is bounded (WAIT) and nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import FulfillmentPendingError, Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import ContentType, Message, ProtocolData

from .conftest import (
    WAIT,
    RawPeer,
    Recorder,
    b64url,
    prepare_packet,
    server_options,
    wait_until,
)

STORES = ("memory", "sqlite")


class HeldHandler:
    """A request handler that answers only when the test lets it, so that the socket whose
    request it serves stays the listener's active one after it closed."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False

    async def __call__(self, message: dict[str, Any]) -> dict[str, Any]:
        self.entered.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True  # the handler grace ran out: the old socket is gone
            raise
        return {"to": message["from"], "custom": {"ok": True}}


@contextlib.asynccontextmanager
async def listener(store: str, tmp_path: Path) -> AsyncIterator[tuple[Plugin, HeldHandler]]:
    url = "memory:" if store == "memory" else f"sqlite:///{tmp_path / 'listener.db'}"
    plugin = Plugin(server_options(store=url, requestTimeout=0.2))
    handler = HeldHandler()
    plugin.register_request_handler(handler)
    await plugin.connect()
    try:
        yield plugin, handler
    finally:
        handler.release.set()
        await plugin.disconnect()


async def close_while_held(old: RawPeer, handler: HeldHandler) -> None:
    """Start a request the handler holds on `old`, then close `old` from the peer's side."""
    custom = ProtocolData("custom", int(ContentType.APPLICATION_JSON), b'{"q":1}')
    await old.send(Message(0, (custom,)))
    async with asyncio.timeout(WAIT):
        await handler.entered.wait()
    await old.close()


async def prepared(plugin: Plugin, peer: RawPeer, events: Recorder) -> tuple[str, bytes]:
    """A Prepare from `peer`, accepted by the listener: (transfer id, preimage)."""
    packet, preimage = prepare_packet(amount=7)
    answer = await peer.request(packet)
    assert isinstance(answer, btp.Response), answer
    await events.wait("incoming_prepare")
    return packet.transfer_id, preimage


async def notice_on(peer: RawPeer, kind: type[btp.Packet], tid: str) -> btp.Packet:
    """The next request of `kind` for `tid` the listener sends `peer` (bounded by WAIT)."""
    async with asyncio.timeout(WAIT):
        while True:
            request = await peer.requests.get()
            if isinstance(request, kind) and getattr(request, "transfer_id", None) == tid:
                return request


@pytest.mark.parametrize("store", STORES)
async def test_a_given_up_fulfill_goes_to_the_socket_that_replaced_a_closing_one(
    store: str, tmp_path: Path
) -> None:
    async with listener(store, tmp_path) as (plugin, handler):
        events = Recorder(plugin, "incoming_prepare", "incoming_fulfill_confirmed")
        assert plugin.listener_port is not None
        old = await RawPeer.open(plugin.listener_port)
        tid, preimage = await prepared(plugin, old, events)
        await close_while_held(old, handler)

        # No socket is open: the call gives up, leaving the Fulfill to the background task.
        with pytest.raises(FulfillmentPendingError):
            await plugin.fulfill_condition(tid, b64url(preimage))

        new = await RawPeer.open(plugin.listener_port)
        try:
            assert not handler.cancelled, "the old socket was released before the new one came"
            handler.release.set()
            fulfill = await notice_on(new, btp.Fulfill, tid)
            assert isinstance(fulfill, btp.Fulfill)
            assert fulfill.fulfillment == preimage
            await new.answer(fulfill)
            await events.wait("incoming_fulfill_confirmed")
            assert not await plugin.transfer_log.list_peer_notices()
            assert await plugin.transfer_log.get_balance() == "7"
        finally:
            await new.close()


@pytest.mark.parametrize("store", STORES)
async def test_a_reject_made_while_the_socket_closes_goes_to_the_socket_that_replaced_it(
    store: str, tmp_path: Path
) -> None:
    async with listener(store, tmp_path) as (plugin, handler):
        events = Recorder(plugin, "incoming_prepare")
        assert plugin.listener_port is not None
        old = await RawPeer.open(plugin.listener_port)
        tid, _ = await prepared(plugin, old, events)
        await close_while_held(old, handler)

        await plugin.reject_incoming_transfer(tid, {"code": "F99", "name": "Application Error"})

        new = await RawPeer.open(plugin.listener_port)
        try:
            assert not handler.cancelled, "the old socket was released before the new one came"
            handler.release.set()
            reject = await notice_on(new, btp.Reject, tid)
            await new.answer(reject)

            async def cleared() -> bool:
                return not await plugin.transfer_log.list_peer_notices()

            await wait_until(cleared, "the Reject notice cleared")
            assert (await plugin.transfer_log.get(tid))["state"] == "cancelled"
        finally:
            await new.close()
