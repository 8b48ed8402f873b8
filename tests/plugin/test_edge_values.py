"""Values that come in from outside are checked where they enter: amounts at the top of the
unsigned 64-bit range stay exact in a durable store, ids given to the API must be UUIDs, and a
ledger prefix learnt from the peer must be a prefix."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import ContentType, ProtocolData, Response
from ilp_paychan.errors import InvalidFieldsError, NotAcceptedError

from .conftest import RawPeer, prepare_packet, server_options

pytestmark = pytest.mark.timeout(60)

TOP = 2**64 - 1


async def test_amounts_at_the_top_of_uint64_sum_exactly_in_sqlite_across_a_restart(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'edge.db'}"
    options = server_options(store=store, maxBalance=str(2**70))
    plugin = Plugin(options)
    await plugin.connect()
    assert plugin.listener_port is not None
    raw = await RawPeer.open(plugin.listener_port)
    try:
        for _ in range(3):
            packet, _ = prepare_packet(amount=TOP)
            assert isinstance(await raw.request(packet), btp.Response)
        assert await plugin.transfer_log.get_incoming_fulfilled_and_prepared() == str(3 * TOP)
    finally:
        await raw.close()
        await plugin.disconnect()
    again = Plugin(options)
    await again.connect()
    try:
        assert await again.transfer_log.get_incoming_fulfilled_and_prepared() == str(3 * TOP)
        assert await again.get_balance() == "0"
    finally:
        await again.disconnect()


@pytest.mark.parametrize("bad_id", ["abc", "", "5709e97effb554545c53cfaa5a0cd4c1", 7, None])
async def test_api_calls_refuse_ids_that_are_not_uuids_naming_the_field(
    listener: Plugin, bad_id: Any
) -> None:
    fulfillment = "A" * 43
    with pytest.raises(InvalidFieldsError, match="invalid id"):
        await listener.fulfill_condition(bad_id, fulfillment)
    with pytest.raises(InvalidFieldsError, match="invalid id"):
        await listener.reject_incoming_transfer(bad_id, {})


class InfoServer:
    """A bare BTP server that accepts any auth and answers info requests with `info`."""

    def __init__(self) -> None:
        self.info: Any = {}
        self.port = 0

    async def handle(self, ws: ServerConnection) -> None:
        async for frame in ws:
            assert isinstance(frame, bytes)
            packet = btp.decode(frame)
            names = [entry.protocol_name for entry in packet.protocol_data]
            answer: tuple[ProtocolData, ...] = ()
            if "info" in names:
                body = json.dumps(self.info).encode()
                answer = (ProtocolData("info", ContentType.APPLICATION_JSON, body),)
            await ws.send(btp.encode(Response(packet.request_id, answer)))


@pytest.fixture
async def info_server() -> AsyncIterator[InfoServer]:
    server = InfoServer()
    async with serve(server.handle, "127.0.0.1", 0) as running:
        server.port = next(iter(running.sockets)).getsockname()[1]
        yield server


@pytest.mark.parametrize(
    "prefix",
    ["", ".", "no-final-dot", "g.with space.", "g.new\nline.", "g." + "a" * 1100 + "."],
    ids=["empty", "only-dot", "no-dot", "space", "newline", "too-long"],
)
async def test_a_prefix_from_the_peer_that_is_no_prefix_fails_connect(
    info_server: InfoServer, prefix: str
) -> None:
    info_server.info = {"prefix": prefix, "currencyScale": 2}
    client = Plugin({"server": f"btp+ws://:secret@127.0.0.1:{info_server.port}"})
    with pytest.raises(NotAcceptedError, match=r"invalid info\.prefix from the peer"):
        await client.connect()
    assert not client.is_connected()


async def test_a_good_prefix_from_the_peer_is_used(info_server: InfoServer) -> None:
    info_server.info = {"prefix": "g.edge.", "currencyScale": 2}
    client = Plugin({"server": f"btp+ws://:secret@127.0.0.1:{info_server.port}"})
    await client.connect()
    try:
        assert client.get_account() == "g.edge.client"
        assert client.get_info()["prefix"] == "g.edge."
    finally:
        await client.disconnect()
