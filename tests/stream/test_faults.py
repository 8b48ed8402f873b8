"""Accounting when things go wrong on the way: a Fulfill lost on its way back, the caller's time
running out with packets in flight, the server closing mid-payment, several streams sharing a
connection. What the sender reports is what was acknowledged to it, exactly; where the
receiver's count can differ, the tests say by how much; nothing is left running."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from ilp_paychan import stream
from ilp_paychan.stream import (
    ConnectionOptions,
    PaymentTimeoutError,
    StreamError,
    StreamServer,
)
from testkit.ilp_link import LinkedPlugins

FAST = ConnectionOptions(retry_delay=0.01, max_retry_delay=0.05)


async def _server(link: LinkedPlugins) -> tuple[StreamServer, str, bytes]:
    server = StreamServer(link.bob, server_secret=bytes(range(32)))
    await server.listen()
    address, secret = server.generate_address_and_secret()
    return server, address, secret


def _received(server: StreamServer) -> int:
    return sum(c.total_received for c in [*server.connections, *server._closed.values()])


async def _no_tasks_left() -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    me = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not me] == []


async def test_a_lost_fulfill_is_not_counted_by_the_sender_and_the_money_is_sent_again() -> None:
    link = LinkedPlugins(max_packet_amount=100)
    server, address, secret = await _server(link)
    lost = itertools.count()
    link.lose_reply = lambda prepare: prepare.amount > 0 and next(lost) in (2, 5, 6)
    receipt = await stream.pay(link.alice, address, secret, 1_000, options=FAST)
    # The receipt is what the sender saw acknowledged: the whole amount, once.
    assert receipt.amount_sent == receipt.amount_delivered == 1_000
    assert link.alice.tally.source_fulfilled == 1_000
    # The receiver fulfilled packets whose Fulfill never came back: it counted them too.
    assert link.alice.tally.lost >= 100
    await asyncio.sleep(0)
    assert _received(server) == receipt.amount_delivered + link.alice.tally.lost
    await server.close()
    await _no_tasks_left()


async def test_the_callers_timeout_is_kept_and_packets_in_flight_are_reported() -> None:
    link = LinkedPlugins(max_packet_amount=10)
    server, address, secret = await _server(link)
    answered = itertools.count()
    link.drop = lambda prepare: prepare.amount > 0 and next(answered) >= 20
    # With packets that expire only after 600 s, waiting for them would outlast the test.
    options = ConnectionOptions(packet_timeout=600)
    with pytest.raises(PaymentTimeoutError) as info:
        await stream.pay(link.alice, address, secret, 100_000, timeout=0.5, options=options)
    error = info.value
    assert error.amount_sent == error.amount_delivered == _received(server) > 0
    assert 0 < error.amount_in_flight <= 5 * 10  # max_in_flight packets of 10
    await server.close()
    await _no_tasks_left()


async def test_server_close_mid_payment_leaves_both_counts_equal() -> None:
    link = LinkedPlugins(max_packet_amount=10, latency=0.005)
    server, address, secret = await _server(link)
    conn = await stream.connect(link.alice, address, secret)
    s = conn.create_stream()
    paying = asyncio.create_task(s.send_money(100_000))
    async with asyncio.timeout(10):
        while conn.total_sent < 100:  # noqa: ASYNC110 - waits for the payment to be under way
            await asyncio.sleep(0.005)
    await server.close()
    with pytest.raises(StreamError):
        await asyncio.wait_for(paying, 10)
    await asyncio.wait_for(conn.wait_closed(), 10)
    if conn._sender is not None:
        await conn._sender.drained()
    assert conn.total_delivered == conn.total_sent == _received(server)
    await _no_tasks_left()


async def test_concurrent_streams_share_the_connection_exactly() -> None:
    link = LinkedPlugins(max_packet_amount=70)
    server, address, secret = await _server(link)
    conn = await stream.connect(link.alice, address, secret)
    streams = [conn.create_stream() for _ in range(4)]
    amounts = [1_000, 333, 2_501, 7]
    await asyncio.wait_for(
        asyncio.gather(*(s.send_money(a) for s, a in zip(streams, amounts, strict=True))), 20
    )
    await conn.close()
    assert [s.total_sent for s in streams] == amounts
    assert sum(s.total_delivered for s in streams) == conn.total_delivered == sum(amounts)
    (server_conn,) = server._closed.values()
    assert sorted(s.total_received for s in server_conn._streams.values()) in ([], sorted(amounts))
    assert server_conn.total_received == sum(amounts)
    await server.close()
    await _no_tasks_left()
