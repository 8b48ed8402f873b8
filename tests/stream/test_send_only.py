"""A send-only payment (`pay(..., receive=False)`): the server is never told our address, so it
never sends us a packet, and the money still arrives exactly (what an LPI v1 link behind
ilp-connector needs: it cannot carry the server's zero-amount packets)."""

from __future__ import annotations

import asyncio

from ilp_paychan import stream
from ilp_paychan.codec.ilp4 import IlpPrepare
from ilp_paychan.stream import StreamServer
from testkit.ilp_link import LinkedPlugins


async def test_send_only_pay_tells_no_address_and_delivers_exactly() -> None:
    link = LinkedPlugins(rate=1, max_packet_amount=700)
    server = StreamServer(link.bob, server_secret=bytes(range(32)))
    await server.listen()
    address, secret = server.generate_address_and_secret("send-only")
    reached_us: list[IlpPrepare] = []
    deliver = link.alice.deliver

    async def counting(prepare: IlpPrepare) -> bytes:
        reached_us.append(prepare)
        return await deliver(prepare)

    link.alice.deliver = counting  # type: ignore[method-assign]
    receipt = await stream.pay(link.alice, address, secret, 10_000, receive=False)
    assert receipt.amount_sent == receipt.amount_delivered == 10_000
    assert receipt.destination_asset is None
    conn = await asyncio.wait_for(server.accept(), 5)
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert conn.total_received == 10_000
    assert conn.destination_account is None
    assert reached_us == []
    assert link.alice._handler is None
    await server.close()


async def test_default_pay_still_tells_its_address() -> None:
    link = LinkedPlugins(rate=1)
    server = StreamServer(link.bob, server_secret=bytes(range(32)))
    await server.listen()
    address, secret = server.generate_address_and_secret()
    receipt = await stream.pay(link.alice, address, secret, 50)
    assert receipt.destination_asset is not None
    conn = await asyncio.wait_for(server.accept(), 5)
    assert conn.destination_account is not None
    await server.close()
