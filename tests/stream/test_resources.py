"""What a STREAM server and client keep after payments end: closed connections are forgotten
after the idle timeout (also those the application never accepted), a finished client
connection is not kept alive by a timer, and memory stays flat over many short payments."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import weakref
from collections.abc import Callable

from ilp_paychan import stream
from ilp_paychan.stream import ConnectionOptions, StreamServer
from testkit.ilp_link import LinkedPlugins


async def _until(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - polls state the server's sweep timer changes
            await asyncio.sleep(0.02)


async def test_closed_connections_nobody_accepted_are_forgotten_after_the_idle_timeout() -> None:
    link = LinkedPlugins()
    server = StreamServer(
        link.bob, server_secret=bytes(32), options=ConnectionOptions(idle_timeout=0.2)
    )
    await server.listen()
    refs = []
    server.on_connection(lambda conn: refs.append(weakref.ref(conn)))
    for _ in range(5):
        address, secret = server.generate_address_and_secret()
        await stream.pay(link.alice, address, secret, 10)
    assert len(refs) == 5
    await _until(lambda: not server._closed and not server._pending)
    gc.collect()
    assert [r() for r in refs] == [None] * 5
    await server.close()


async def test_a_closed_connection_is_still_accepted_before_the_idle_timeout() -> None:
    link = LinkedPlugins()
    server = StreamServer(link.bob, server_secret=bytes(32))
    await server.listen()
    address, secret = server.generate_address_and_secret("late")
    await stream.pay(link.alice, address, secret, 10)
    conn = await asyncio.wait_for(server.accept(), 5)
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert conn.connection_tag == "late"
    assert conn.total_received == 10
    await server.close()


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


async def test_memory_is_flat_over_many_short_payments() -> None:
    link = LinkedPlugins()
    server = StreamServer(
        link.bob, server_secret=bytes(32), options=ConnectionOptions(idle_timeout=0.2)
    )
    await server.listen()

    async def pay_many(n: int) -> None:
        for _ in range(n):
            address, secret = server.generate_address_and_secret()
            await stream.pay(link.alice, address, secret, 10)
        await _until(lambda: not server._closed)
        gc.collect()

    tracemalloc.start()
    try:
        await pay_many(100)
        first = tracemalloc.get_traced_memory()[0]
        await pay_many(200)
        second = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # About 20 KiB per payment stayed before (every connection kept for accept()); allow noise.
    assert second - first < 512 * 1024, (first, second)
    await server.close()
