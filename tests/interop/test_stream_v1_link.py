"""STREAM over the LPI v1 link: our v1 `Plugin` behind `V1Adapter` on an LPI v1 account of
ilp-connector 23 (ilp-plugin-payment-channel-framework 1.3.5 inside the connector, wrapped by
its ilp-compat-plugin 2.0.3), to and from ilp-protocol-stream 2.7.2-alpha.3 hosts on accounts of
their own.

Python to JS works when our sender pays send-only (`pay(..., receive=False)`: the JS server is
not told our address, so it never sends us a packet) and knows the path's maximum packet
amount: every fulfilled packet of ours is one v1 transfer, and our zero-amount Prepares (test
packets, the closing one) travel as v1 messages that the connector's ilp-compat-plugin hands on.
Faults on the JS side limit this link; the tests pin down what each does:

- A zero-amount Prepare cannot go from the connector to us: ilp-compat-plugin makes it a v1
  transfer and the framework refuses a transfer of 0 before anything reaches the wire (F02
  "amount (0) must be positive"). ilp-protocol-stream sends such packets: a JS server sends
  StreamMaxMoney in one once a stream opens (to a client that told it its address), and a JS
  client sends data without money and its ConnectionClose in them. So a JS client pays our
  StreamServer (money, and data riding with money), but its data-only packets and its close
  are lost; and a Python client that advertises its address sees the JS server's connection
  fail at some point of the payment.
- An F08 cannot come back over it: ilp-compat-plugin names the error of an LPI v1 rejection
  from a table that lacks F08, so the framework's `serializeIlpError` throws on the missing name
  (an unhandled rejection in the connector) after the framework has cancelled the transfer in
  its own store. No Reject is sent; our Prepare ends at its expiry (R00), so a sender that does
  not know the maximum cannot find it on this link.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ilp_paychan import V1Adapter
from ilp_paychan.codec import ilp4
from ilp_paychan.stream import (
    ConnectionOptions,
    InsufficientLiquidityError,
    StreamError,
    StreamServer,
    pay,
)
from ilp_paychan.v2.interface import DataHandler

from .connector import ConnectorHarness, HarnessFactory
from .setups import V1_PREFIX, lpi1_account, stream_hosts, v1_link

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

PREFIX = V1_PREFIX
MAX_PACKET = 2000
#: The sender knows the connector's maximum on our account (an F08 cannot reach it here).
TOLD = ConnectionOptions(max_packet_amount=MAX_PACKET)


def _config() -> dict[str, Any]:
    return {
        "address": "test.conn",
        "accounts": {"v1": lpi1_account(str(10**12), MAX_PACKET)},
        "hosts": stream_hosts(MAX_PACKET, quiet=True),
    }


@pytest.fixture
async def linked(
    harnesses: HarnessFactory,
) -> AsyncIterator[tuple[ConnectorHarness, V1Adapter]]:
    """The connector with its LPI v1 listener account and our adapted v1 client dialling it."""
    async with v1_link(harnesses, _config()) as link:
        yield link


@pytest.mark.parametrize("amount", [1, 1500, 60_000, 250_000])
async def test_python_pays_js_server_over_the_v1_link(
    linked: tuple[ConnectorHarness, V1Adapter], amount: int
) -> None:
    conn, adapter = linked
    destination, secret = await conn.generate("srv", connection_tag="v1-pays")
    receipt = await pay(
        adapter, destination, secret, amount, timeout=120, options=TOLD, receive=False
    )
    assert receipt.amount_sent == receipt.amount_delivered == amount
    assert receipt.destination_asset is None  # told only to a client that gave its address
    assert receipt.source_asset == ("XRP", 9)
    if amount > MAX_PACKET:
        assert receipt.packets_fulfilled >= amount // MAX_PACKET
    received = await conn.received("srv")
    assert received["connections"][destination]["total"] == str(amount)
    # every fulfilled packet moved the trustline: we owe the connector exactly what arrived
    assert await adapter.plugin.get_balance() == str(-amount)
    assert not conn.events_named("stream_error")


async def test_two_payments_in_a_row_keep_exact_totals(
    linked: tuple[ConnectorHarness, V1Adapter],
) -> None:
    conn, adapter = linked
    total = 0
    for amount in (7_777, 33_333):
        destination, secret = await conn.generate("srv")
        receipt = await pay(
            adapter, destination, secret, amount, timeout=120, options=TOLD, receive=False
        )
        assert receipt.amount_delivered == amount
        total += amount
    assert (await conn.received("srv"))["total"] == str(total)
    assert await adapter.plugin.get_balance() == str(-total)
    assert not conn.events_named("stream_error")


async def test_a_client_that_tells_its_address_gets_the_js_server_failing(
    linked: tuple[ConnectorHarness, V1Adapter],
) -> None:
    """With our address the JS server sends us its StreamMaxMoney in a packet of amount 0; the
    connector's side of the link refuses it (F02) and the JS server's connection fails, during
    or after the payment (a race). What did arrive is still counted exactly on both sides."""
    conn, adapter = linked
    destination, secret = await conn.generate("srv")
    try:
        receipt = await pay(adapter, destination, secret, 40_000, timeout=60, options=TOLD)
        delivered = receipt.amount_delivered
    except StreamError as exc:
        delivered = exc.amount_delivered
    error = await conn.wait_event("stream_error", connection=destination, wait=20)
    assert "amount (0) must be positive" in error["error"]["message"], error
    assert "F02" in error["error"]["message"]
    await conn.wait_event("stream_close", connection=destination, wait=20)
    # our ConnectionClose reaches a JS server that already forgot the connection: it opens a
    # new, empty one under the same address, so count what each connection received
    closes = conn.events_named("stream_close", connection=destination)
    assert sum(int(e["total"]) for e in closes) == delivered
    assert await adapter.plugin.get_balance() == str(-delivered)


async def test_above_the_maximum_the_f08_is_lost_and_the_packet_expires(
    linked: tuple[ConnectorHarness, V1Adapter],
) -> None:
    """Without the hint, the rate probe works (1 and 1000 arrive; the larger test packets
    expire) but the first money packet, above 2000, meets the connector's F08, which never
    crosses the link: it expires (R00) every time, and the payment fails after the retries with
    nothing moved on either side."""
    conn, adapter = linked
    destination, secret = await conn.generate("srv")
    options = ConnectionOptions(packet_timeout=3.0, max_retries=2, retry_delay=0.05)
    with pytest.raises(InsufficientLiquidityError) as failed:
        await pay(
            adapter, destination, secret, 3 * MAX_PACKET, timeout=90, options=options, receive=False
        )
    assert failed.value.code == "R00"
    assert (failed.value.amount_sent, failed.value.amount_delivered) == (0, 0)
    lost = conn.events_named("unhandled_rejection")
    assert lost, "the connector's side did not fail to write the F08 rejection"
    assert "Received undefined" in lost[0]["error"]["message"]
    received = await conn.received("srv")
    assert received["connections"].get(destination, {"total": "0"})["total"] == "0"
    assert await adapter.plugin.get_balance() == "0"


def _watch_incoming(adapter: V1Adapter) -> list[int]:
    """Record the amount of every Prepare that reaches our side's data handler."""
    amounts: list[int] = []
    register = adapter.register_data_handler

    def register_watched(handler: DataHandler) -> None:
        async def watched(data: bytes) -> bytes:
            amounts.append(ilp4.decode_prepare(data).amount)
            return await handler(data)

        register(watched)

    adapter.register_data_handler = register_watched  # type: ignore[method-assign]
    return amounts


@pytest.mark.parametrize("amount", [1, 5_000, 60_000])
async def test_js_client_pays_python_server_over_the_v1_link(
    linked: tuple[ConnectorHarness, V1Adapter], amount: int
) -> None:
    """Money and data arrive exactly: every packet of the JS client that carries money (its
    test packets too) is a v1 transfer of more than 0; the connector's maximum on the JS
    client's own account sizes its packets by F08 (that account is BTP, not this link)."""
    conn, adapter = linked
    arrived = _watch_incoming(adapter)
    server = StreamServer(adapter, server_secret=bytes(range(32)))
    await server.listen()
    try:
        assert server.address == PREFIX + "client"
        destination, secret = server.generate_address_and_secret("js-pays")
        receipt = await conn.pay(
            "cli", amount, destination=destination, secret=secret, data=b"hello python"
        )
        assert receipt["sent"] == receipt["delivered"] == str(amount)
        ours = await asyncio.wait_for(server.accept(), 10)
        assert ours.connection_tag == "js-pays"
        assert ours.total_received == amount
        incoming = await asyncio.wait_for(ours.accept_stream(), 10)
        assert await asyncio.wait_for(incoming.read(), 10) == b"hello python"
        assert await adapter.plugin.get_balance() == str(amount)
        if amount > MAX_PACKET:
            assert max(arrived) == MAX_PACKET
        assert 0 not in arrived
    finally:
        await server.close()


async def test_zero_amount_packets_from_js_never_reach_us(
    linked: tuple[ConnectorHarness, V1Adapter],
) -> None:
    """A JS packet of amount 0 (data only, or the ConnectionClose of `end()`) becomes a v1
    transfer of 0 at the connector, which the framework refuses before sending: the JS client
    gets F02 "failed to send packet: amount (0) must be positive", and the packet never reaches
    us. So data sent without money is lost, and our end never learns that the JS client closed
    (the connection ends by its idle timeout)."""
    conn, adapter = linked
    arrived = _watch_incoming(adapter)
    server = StreamServer(adapter, server_secret=bytes(range(32)))
    await server.listen()
    try:
        destination, secret = server.generate_address_and_secret("data-only")
        receipt = await conn.pay("cli", 0, destination=destination, secret=secret, data=b"lost")
        assert receipt["delivered"] == "0"
        assert receipt["packets"]["rejected"] > 0
        assert arrived  # only the JS test packets (F99 from us) came
        assert 0 not in arrived
        ours = await asyncio.wait_for(server.accept(), 10)
        assert ours.streams == []  # the data-only packet never came
        assert ours.total_received == 0

        destination, secret = server.generate_address_and_secret("then-close")
        await conn.pay("cli", 1500, destination=destination, secret=secret)
        paid = await asyncio.wait_for(server.accept(), 10)
        assert paid.total_received == 1500
        await asyncio.sleep(1.0)
        assert not paid.closed  # the JS ConnectionClose (amount 0) was refused on the way
    finally:
        await server.close()
