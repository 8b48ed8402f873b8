"""The plugin on PostgreSQL: a transfer prepared before a restart is fulfilled after it."""

from __future__ import annotations

import asyncio
import base64
import uuid

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from pgserver import postgres_url  # noqa: F401  (the session fixture of tests/pgserver.py)

from .conftest import RawPeer, prepare_packet, server_options

pytestmark = pytest.mark.postgres


async def test_restart_on_postgres_keeps_and_settles_a_prepared_transfer(postgres_url: str) -> None:  # noqa: F811
    key = "plugin" + uuid.uuid4().hex[:8]
    first = Plugin(server_options(store=postgres_url, storeKey=key))
    await first.connect()
    port = first.listener_port
    assert port is not None
    peer = await RawPeer.open(port)
    packet, preimage = prepare_packet(amount=12)
    assert isinstance(await peer.request(packet), btp.Response)
    await peer.close()
    await first.disconnect()

    second = Plugin(
        server_options(
            store=postgres_url, storeKey=key, listener={"port": port, "host": "127.0.0.1"}
        )
    )
    await second.connect()
    try:
        peer = await RawPeer.open(port)
        text = base64.urlsafe_b64encode(preimage).decode().rstrip("=")
        fulfilling = asyncio.ensure_future(second.fulfill_condition(packet.transfer_id, text))
        fulfill = await peer.next_request()
        await peer.answer(fulfill)
        await fulfilling
        assert await second.get_balance() == "12"
        assert await second.transfer_log.list_peer_notices() == []
        await peer.close()
    finally:
        await second.disconnect()
