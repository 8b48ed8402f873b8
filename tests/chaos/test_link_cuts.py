"""The link between two plugins cut mid-Prepare and mid-Fulfill by closing sockets, not processes.

A `CuttingProxy` on loopback relays the client's WebSocket to the listener and closes both TCP
sockets when a chosen BTP packet goes by, before or after passing it on. Each test runs with
either side paying, then checks that the two sides end in agreement once the client has
reconnected (same final state, mirrored balances, nothing prepared, no notice left to deliver)
and that the link carries a new payment afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chaos.common import b64url
from chaos.proxy import FROM_CLIENT, FROM_SERVER, CuttingProxy, When
from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.errors import PeerTimeoutError, PluginError, TransferNotFoundError
from testkit.waiting import wait_until

SECRET = "cut_secret"
PREFIX = "example.cut."
#: Bounded waits: long enough for the client's reconnect backoff on a busy machine.
SETTLE = 40.0
EVENTS = (
    "incoming_prepare",
    "incoming_fulfill",
    "incoming_fulfill_reverted",
    "outgoing_fulfill",
    "outgoing_cancel",
    "incoming_cancel",
)


@dataclass
class Linked:
    server: Plugin
    client: Plugin
    proxy: CuttingProxy
    events: dict[str, dict[str, list[Any]]]

    def sides(self, payer: str) -> tuple[Plugin, Plugin]:
        """(payer, payee)."""
        if payer == "client":
            return self.client, self.server
        return self.server, self.client

    @staticmethod
    def prepare_direction(payer: str) -> str:
        return FROM_CLIENT if payer == "client" else FROM_SERVER

    @staticmethod
    def fulfill_direction(payer: str) -> str:
        return FROM_SERVER if payer == "client" else FROM_CLIENT


def _recorder(plugin: Plugin) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {name: [] for name in EVENTS}
    for name in EVENTS:
        plugin.on(name, lambda transfer, *_, name=name: seen[name].append(transfer["id"]))
    return seen


@contextlib.asynccontextmanager
async def linked() -> AsyncIterator[Linked]:
    """A listener and a client (memory stores, both stateful) talking through a CuttingProxy."""
    server = Plugin(
        listener={"port": 0, "host": "127.0.0.1"},
        incomingSecret=SECRET,
        prefix=PREFIX,
        info={"currencyCode": "USD", "currencyScale": 2},
        store="memory:",
        maxBalance="1000000",
        requestTimeout=1.0,
    )
    events = {"server": _recorder(server)}
    await server.connect()
    proxy = CuttingProxy(server.listener_port or 0)
    await proxy.start()
    client = Plugin(
        server=f"btp+ws://:{SECRET}@127.0.0.1:{proxy.port}",
        store="memory:",
        maxBalance="1000000",
        requestTimeout=1.0,
    )
    events["client"] = _recorder(client)
    try:
        await client.connect()
        yield Linked(server, client, proxy, events)
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
        await proxy.stop()
        await server.disconnect()


def new_transfer(payer: Plugin, expires_in: float, amount: int = 7) -> tuple[dict[str, Any], str]:
    """(an outgoing transfer, its fulfillment as base64url)."""
    preimage = os.urandom(32)
    transfer = {
        "id": str(uuid.uuid4()),
        "to": payer.get_peer_account(),
        "amount": str(amount),
        "executionCondition": b64url(hashlib.sha256(preimage).digest()),
        "expiresAt": (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat(),
    }
    return transfer, b64url(preimage)


async def state_of(plugin: Plugin, tid: str) -> str | None:
    try:
        record = await plugin.transfer_log.get(tid)
    except TransferNotFoundError:
        return None
    return str(record["state"])


async def settled(link: Linked) -> bool:
    """Nothing prepared and no peer notice left on either side."""
    for plugin in (link.server, link.client):
        log = plugin.transfer_log
        if await log.list_prepared() or await log.list_peer_notices():
            return False
    return True


async def assert_agreement(link: Linked, tid: str) -> str | None:
    """Wait until both sides settled; then they agree about `tid`. Returns its final state."""
    await wait_until(lambda: settled(link), "both sides to settle", SETTLE)
    server, client = await state_of(link.server, tid), await state_of(link.client, tid)
    if server is None or client is None:
        assert (server or client) == "cancelled", (server, client)
    else:
        assert server == client, f"server {server}, client {client}"
    assert int(await link.server.get_balance()) == -int(await link.client.get_balance())
    return server or client


async def assert_still_pays(link: Linked, payer_name: str) -> None:
    """After the cut and the reconnect, a new payment goes through in the same direction."""
    payer, payee = link.sides(payer_name)
    await wait_until(lambda: link.client.is_connected(), "the client plugin", SETTLE)
    transfer, fulfillment = new_transfer(payer, 30.0, amount=1)
    await wait_until(lambda: _sent(payer, transfer), "the link to carry a new Prepare", SETTLE)
    async with asyncio.timeout(SETTLE):
        await payee.fulfill_condition(transfer["id"], fulfillment)
    assert await state_of(payer, transfer["id"]) == "fulfilled"


async def _sent(payer: Plugin, transfer: dict[str, Any]) -> bool:
    """Try to send (a fresh id each attempt while the link is still coming back)."""
    try:
        await payer.send_transfer(transfer)
    except PluginError:
        transfer["id"] = str(uuid.uuid4())
        return False
    return True


async def settle_call(call: Any) -> str:
    """Run a fulfil/reject call to the end: "ok" or the class name of the error it raised."""
    try:
        async with asyncio.timeout(SETTLE):
            await call
    except PluginError as error:
        return type(error).__name__
    return "ok"


PAYERS = pytest.mark.parametrize("payer", ["client", "server"])


@PAYERS
async def test_cut_after_the_prepare_reached_the_payee(payer: str) -> None:
    """The Prepare arrives, its acknowledgement is lost: the payer does not know; the payee
    fulfils while the link is down; after the reconnect both hold it fulfilled."""
    async with linked() as link:
        sender, receiver = link.sides(payer)
        cut = link.proxy.cut_on(
            link.prepare_direction(payer), lambda p: isinstance(p, btp.Prepare), When.AFTER
        )
        transfer, fulfillment = new_transfer(sender, 30.0)
        with pytest.raises(PeerTimeoutError):  # ConnectionLostError: the outcome is unknown
            await sender.send_transfer(transfer)
        assert cut.is_set()
        receiving = "server" if payer == "client" else "client"
        await wait_until(
            lambda: transfer["id"] in link.events[receiving]["incoming_prepare"],
            "the payee to have the Prepare",
            SETTLE,
        )
        answer = await settle_call(receiver.fulfill_condition(transfer["id"], fulfillment))
        assert await assert_agreement(link, transfer["id"]) == "fulfilled"
        assert answer in ("ok", "FulfillmentPendingError"), answer
        assert int(await receiver.get_balance()) == 7
        await assert_still_pays(link, payer)


@PAYERS
async def test_cut_before_the_prepare_reached_the_payee(payer: str) -> None:
    """The Prepare is lost with the socket: only the payer has it, and it expires there."""
    async with linked() as link:
        sender, receiver = link.sides(payer)
        cut = link.proxy.cut_on(
            link.prepare_direction(payer), lambda p: isinstance(p, btp.Prepare), When.BEFORE
        )
        transfer, _ = new_transfer(sender, 1.5)
        with pytest.raises(PeerTimeoutError):
            await sender.send_transfer(transfer)
        assert cut.is_set()
        assert await assert_agreement(link, transfer["id"]) == "cancelled"
        assert await state_of(receiver, transfer["id"]) is None
        assert await sender.get_balance() == "0"
        await assert_still_pays(link, payer)


@PAYERS
@pytest.mark.parametrize("when", [When.BEFORE, When.AFTER])
async def test_cut_mid_fulfill_is_delivered_after_the_reconnect(payer: str, when: When) -> None:
    """The Fulfill is lost (BEFORE) or its acknowledgement is (AFTER); the payee re-sends it
    once the link is back, before the expiry: both end fulfilled, the notice cleared."""
    async with linked() as link:
        sender, receiver = link.sides(payer)
        transfer, fulfillment = new_transfer(sender, 30.0)
        await sender.send_transfer(transfer)
        cut = link.proxy.cut_on(
            link.fulfill_direction(payer), lambda p: isinstance(p, btp.Fulfill), when
        )
        answer = await settle_call(receiver.fulfill_condition(transfer["id"], fulfillment))
        assert cut.is_set()
        assert await assert_agreement(link, transfer["id"]) == "fulfilled"
        assert answer in ("ok", "FulfillmentPendingError"), answer
        sending = "client" if payer == "client" else "server"
        assert link.events[sending]["outgoing_fulfill"] == [transfer["id"]]
        await assert_still_pays(link, payer)


@PAYERS
async def test_fulfill_lost_and_link_down_past_the_expiry_is_undone(payer: str) -> None:
    """The Fulfill is lost and the link stays down until the payer expired the transfer: the
    payer refuses the late Fulfill, so the payee rolls its fulfilment back (an Interledger
    fulfilment that reaches the sender after the expiry does not count)."""
    async with linked() as link:
        sender, receiver = link.sides(payer)
        sending = "client" if payer == "client" else "server"
        receiving = "server" if payer == "client" else "client"
        transfer, fulfillment = new_transfer(sender, 2.0)
        await sender.send_transfer(transfer)
        cut = link.proxy.cut_on(
            link.fulfill_direction(payer), lambda p: isinstance(p, btp.Fulfill), When.BEFORE
        )
        link.proxy.refusing = True
        answering = asyncio.ensure_future(
            settle_call(receiver.fulfill_condition(transfer["id"], fulfillment))
        )
        await wait_until(cut.is_set, "the Fulfill to be cut", SETTLE)
        await wait_until(
            lambda: transfer["id"] in link.events[sending]["outgoing_cancel"],
            "the payer to expire the transfer",
            SETTLE,
        )
        link.proxy.refusing = False
        assert await assert_agreement(link, transfer["id"]) == "cancelled"
        assert await answering != "ok"  # never reported as paid
        assert link.events[receiving]["incoming_fulfill_reverted"] == [transfer["id"]]
        assert await receiver.get_balance() == "0"
        await assert_still_pays(link, payer)
