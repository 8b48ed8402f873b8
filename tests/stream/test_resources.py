"""What a STREAM server and client keep after payments end: closed connections are forgotten
after the idle timeout (also those the application never accepted), a finished client
connection is not kept alive by a timer, and memory stays flat over many short payments."""

from __future__ import annotations

import asyncio
import gc
import weakref

from ilp_paychan import stream
from ilp_paychan.stream import StreamServer
from testkit.ilp_link import LinkedPlugins


async def test_a_finished_client_connection_is_not_kept_alive_by_its_timers() -> None:
    link = LinkedPlugins()
    server = StreamServer(link.bob, server_secret=bytes(32))
    await server.listen()
    address, secret = server.generate_address_and_secret()
    conn = await stream.connect(link.alice, address, secret)
    s = conn.create_stream()
    await s.send_money(10)
    await conn.close()
    ref = weakref.ref(conn)
    del conn, s
    for _ in range(3):
        await asyncio.sleep(0)  # the send loop's task ends
    gc.collect()
    assert ref() is None
    await server.close()
