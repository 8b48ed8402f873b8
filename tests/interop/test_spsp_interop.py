"""SPSP (RFC 9) both ways against the JS side of tests/interop/js_connector: our
`stream.spsp.query` asks the JS STREAM server's SPSP endpoint (node's http, the answer
ilp-protocol-stream's generateAddressAndSecret) and pays it with `stream.pay`; the JS STREAM
client asks our `SpspServer` and pays our `StreamServer`. Money goes through ilp-connector 23,
our `BtpPlugin` being a child account; totals must agree on both sides.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ilp_paychan.stream import StreamServer, pay, spsp
from ilp_paychan.v2.plugin import BtpPlugin

from .connector import ConnectorHarness, HarnessFactory
from .setups import btp_child, stream_hosts

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


def _config() -> dict[str, Any]:
    return {
        "address": "test.conn",
        "accounts": {"py": {"type": "btp-server", "secret": "py-secret"}},
        "hosts": stream_hosts(1000),
    }


@pytest.fixture
async def harness(harnesses: HarnessFactory) -> ConnectorHarness:
    return await harnesses.start(_config())


@pytest.fixture
async def plugin(harness: ConnectorHarness) -> AsyncIterator[BtpPlugin]:
    async with btp_child(harness, "py") as ours:
        yield ours


async def test_our_client_queries_the_js_endpoint_and_pays(
    harness: ConnectorHarness, plugin: BtpPlugin
) -> None:
    url = harness.host("srv")["spsp"]
    first = await spsp.query(url)
    second = await spsp.query(url)
    assert first.destination_account.startswith("test.conn.srv.")
    assert len(first.shared_secret) == 32
    assert first.destination_account != second.destination_account  # a fresh one per query
    receipt = await pay(plugin, first.destination_account, first.shared_secret, 12_345)
    assert receipt.amount_sent == receipt.amount_delivered == 12_345
    received = await harness.received("srv")
    assert received["connections"][first.destination_account]["total"] == "12345"
    assert len(harness.events_named("spsp_query", host="srv")) == 2


async def test_the_js_client_queries_our_server_and_pays(
    harness: ConnectorHarness, plugin: BtpPlugin
) -> None:
    server = StreamServer(plugin)
    await server.listen()
    endpoint = spsp.SpspServer(server, "127.0.0.1", 0)
    await endpoint.start()
    seen: list[int] = []
    server.on_money(lambda conn, amount, total: seen.append(amount))
    try:
        receipt = await harness.pay("cli", 4_321, spsp=endpoint.url, data=b"via spsp")
        assert receipt["sent"] == receipt["delivered"] == "4321"
        assert receipt["destination"].startswith("test.conn.py.")
        conn = await asyncio.wait_for(server.accept(), 10)
        assert conn.total_received == sum(seen) == 4_321
        stream = await asyncio.wait_for(conn.accept_stream(), 10)
        assert await asyncio.wait_for(stream.read(), 10) == b"via spsp"
    finally:
        await endpoint.stop()
        await server.close()
