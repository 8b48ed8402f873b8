"""STREAM between us and ilp-protocol-stream 2.7.2-alpha.3, through ilp-connector 23.

Our `BtpPlugin` is a child account of the connector (BTP 2.0, address by ILDCP); the JS end hosts
sit on accounts of their own. Python `pay`/`connect` pay a JS STREAM server (money and data, one
payment above the path's maximum packet amount so F08 sizes the packets), and a JS STREAM client
pays our `StreamServer` (money and data). Totals must agree exactly on both sides.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ilp_paychan.stream import StreamServer, connect, pay
from ilp_paychan.v2.plugin import BtpPlugin

from .connector import ConnectorHarness, HarnessFactory
from .setups import btp_child, stream_hosts

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

MAX_PACKET = 2000


def _config() -> dict[str, Any]:
    return {
        "address": "test.conn",
        "accounts": {
            "py": {"type": "btp-server", "secret": "py-secret", "maxPacketAmount": str(MAX_PACKET)}
        },
        "hosts": stream_hosts(MAX_PACKET),
    }


@pytest.fixture
async def harness(harnesses: HarnessFactory) -> ConnectorHarness:
    return await harnesses.start(_config())


@pytest.fixture
async def plugin(harness: ConnectorHarness) -> AsyncIterator[BtpPlugin]:
    async with btp_child(harness, "py") as ours:
        yield ours


@pytest.mark.parametrize("amount", [1, 1500, 60_000])
async def test_python_pays_js_server(
    harness: ConnectorHarness, plugin: BtpPlugin, amount: int
) -> None:
    destination, secret = await harness.generate("srv", connection_tag="py-pays")
    receipt = await pay(plugin, destination, secret, amount, timeout=60)
    assert receipt.amount_sent == receipt.amount_delivered == amount
    assert receipt.destination_asset == ("XRP", 9)
    if amount > MAX_PACKET:
        assert receipt.packets_fulfilled >= amount // MAX_PACKET
    received = await harness.received("srv")
    assert received["connections"][destination]["total"] == str(amount)
    assert not harness.events_named("stream_error")


async def test_python_sends_money_and_data_to_js_server(
    harness: ConnectorHarness, plugin: BtpPlugin
) -> None:
    destination, secret = await harness.generate("srv")
    conn = await connect(plugin, destination, secret)
    stream = conn.create_stream()
    stream.write(b"invoice 7")
    await asyncio.wait_for(stream.send_money(4321), 30)
    await asyncio.wait_for(stream.drain(), 30)
    await conn.close(timeout=10)
    event = await harness.wait_event("stream_data", connection=destination)
    assert base64.b64decode(event["data"]) == b"invoice 7"
    money = harness.events_named("stream_money", connection=destination)
    assert sum(int(e["amount"]) for e in money) == conn.total_delivered == 4321
    assert not harness.events_named("stream_error")


@pytest.mark.parametrize("amount", [1, 60_000])
async def test_js_client_pays_python_server(
    harness: ConnectorHarness, plugin: BtpPlugin, amount: int
) -> None:
    server = StreamServer(plugin, server_secret=bytes(range(32)))
    await server.listen()
    assert server.address == "test.conn.py"
    destination, secret = server.generate_address_and_secret("js-pays")
    receipt = await harness.pay(
        "cli", amount, destination=destination, secret=secret, data=b"hello python"
    )
    assert receipt["sent"] == receipt["delivered"] == str(amount)
    conn = await asyncio.wait_for(server.accept(), 10)
    assert conn.connection_tag == "js-pays"
    assert conn.total_received == amount
    incoming = await asyncio.wait_for(conn.accept_stream(), 10)
    assert await asyncio.wait_for(incoming.read(), 10) == b"hello python"
    await server.close()


async def test_js_client_goes_quiet_after_paying_python_server(
    harness: ConnectorHarness, plugin: BtpPlugin
) -> None:
    # ilp-protocol-stream 2.7 sends its StreamClose after its ConnectionClose and re-sends a
    # rejected StreamClose once per round trip; our closed connection fulfils it, which ends that.
    server = StreamServer(plugin)
    await server.listen()
    prepares = [0]

    class Counter:
        def packet(self, direction: str, kind: str, code: str) -> None:
            if direction == "incoming" and kind == "prepare":
                prepares[0] += 1

    plugin.add_observer(Counter())
    destination, secret = server.generate_address_and_secret()
    receipt = await harness.pay("cli", 5000, destination=destination, secret=secret)
    assert receipt["delivered"] == "5000"
    after_payment = prepares[0]
    seen = -1
    for _ in range(40):  # until half a second passes without a packet (20 s at most)
        if prepares[0] == seen:
            break
        seen = prepares[0]
        await asyncio.sleep(0.5)
    assert prepares[0] - after_payment <= 3, f"{prepares[0] - after_payment} packets after closing"
    await server.close()


async def test_python_sends_data_on_many_sequential_streams_to_js_server(
    harness: ConnectorHarness, plugin: BtpPlugin
) -> None:
    # 8 streams of 20 KB one after another: 160 KB, past the 64 KB connection window.
    # ilp-protocol-stream's ConnectionMaxData counts only its open streams (it falls when a
    # stream closes), so our sender, counting every byte of the connection, must notice and
    # count its way, or it would stall once closed streams carried more than the window.
    destination, secret = await harness.generate("srv")
    conn = await connect(plugin, destination, secret)
    chunk = 20_000
    ids = []
    for n in range(8):
        s = conn.create_stream()
        ids.append(s.id)
        s.write(bytes([n + 1]) * chunk)
        await asyncio.wait_for(s.drain(), 30)
        await asyncio.wait_for(s.close(), 30)
    await conn.close(timeout=10)
    assert conn.error is None
    assert conn._remote_counts_open_streams
    data = harness.events_named("stream_data", connection=destination)
    for n, sid in enumerate(ids):
        got = b"".join(base64.b64decode(e["data"]) for e in data if e["stream"] == sid)
        assert got == bytes([n + 1]) * chunk, sid
    assert not harness.events_named("stream_error")


async def test_js_client_sends_data_on_many_sequential_streams_to_python_server(
    harness: ConnectorHarness, plugin: BtpPlugin
) -> None:
    # The other way: 8 streams of 20 KB from ilp-protocol-stream to our StreamServer, whose
    # ConnectionMaxData counts every byte of the connection and only grows.
    server = StreamServer(plugin, server_secret=bytes(range(32)))
    await server.listen()
    destination, secret = server.generate_address_and_secret("js-data")
    chunk = bytes(range(200)) * 100
    got: dict[int, bytearray] = {}
    readers: list[asyncio.Task[None]] = []

    async def read_all(s: Any) -> None:
        buffer = got.setdefault(s.id, bytearray())
        while data := await s.read():
            buffer += data

    server.on_connection(
        lambda conn: conn.on_stream(lambda s: readers.append(asyncio.ensure_future(read_all(s))))
    )
    receipt = await harness.pay(
        "cli", 10, destination=destination, secret=secret, data=chunk, dataStreams=8
    )
    assert receipt["delivered"] == "10"
    conn = await asyncio.wait_for(server.accept(), 10)
    await asyncio.wait_for(asyncio.gather(*readers), 20)
    assert len(got) == 8
    assert all(bytes(buffer) == chunk for buffer in got.values())
    assert conn.error is None
    assert conn._max_data_told >= 8 * len(chunk)
    await server.close()
