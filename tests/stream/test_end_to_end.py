"""STREAM client and server end to end over two in-memory v2 plugins and a pretend connector
(tests/testkit/ilp_link.py): payments in many packets with exact totals, F08 sizing, T04
retries, rates, refusals, data both ways, closing."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ilp_paychan import stream
from ilp_paychan.stream import (
    ConnectionOptions,
    ExchangeRateError,
    InsufficientLiquidityError,
    NoRouteError,
    PaymentTimeoutError,
    ReceiverRefusedError,
    StreamServer,
)
from testkit.ilp_link import LinkedPlugins

FAST = ConnectionOptions(retry_delay=0.01, max_retry_delay=0.05)


async def listening(
    link: LinkedPlugins, options: ConnectionOptions | None = None
) -> tuple[StreamServer, str, bytes]:
    server = StreamServer(link.bob, server_secret=bytes(range(32)), options=options)
    await server.listen()
    address, secret = server.generate_address_and_secret("order-7")
    return server, address, secret


async def test_pay_in_many_packets_with_exact_totals() -> None:
    link = LinkedPlugins(rate=Fraction(3, 2), max_packet_amount=1000)
    server, address, secret = await listening(link)
    seen: list[tuple[str | None, int]] = []
    totals: list[int] = []
    server.on_money(lambda conn, amount, total: seen.append((conn.connection_tag, amount)))
    server.on_money(lambda conn, amount, total: totals.append(total))
    progress: list[tuple[int, int]] = []
    receipt = await stream.pay(
        link.alice, address, secret, 123_457, on_progress=lambda s, d: progress.append((s, d))
    )
    assert receipt.amount_sent == 123_457
    assert receipt.sent == "123457"
    assert receipt.complete
    assert receipt.exchange_rate == Fraction(3, 2)
    assert receipt.destination_asset == ("USD", 9)
    assert receipt.packets_fulfilled >= 124
    # Exact accounting: what the receiver reported, what it counted, what the link carried.
    assert receipt.amount_delivered == sum(a for _, a in seen)
    assert receipt.amount_delivered == link.alice.tally.destination_fulfilled
    assert link.alice.tally.source_fulfilled == 123_457
    assert {tag for tag, _ in seen} == {"order-7"}
    assert totals[-1] == receipt.amount_delivered
    assert progress[-1] == (123_457, receipt.amount_delivered)
    await server.close()


async def test_connection_totals_on_the_server() -> None:
    link = LinkedPlugins(rate=2, max_packet_amount=500)
    server, address, secret = await listening(link)
    receipt = await stream.pay(link.alice, address, secret, 2_000)
    conn = await asyncio.wait_for(server.accept(), 5)
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert conn.total_received == receipt.amount_delivered == 4_000
    assert conn.error is None
    await server.close()


async def test_max_packet_amount_is_found_from_f08_mid_payment() -> None:
    link = LinkedPlugins(rate=1)
    server, address, secret = await listening(link)
    conn = await stream.connect(link.alice, address, secret)
    link.max_packet_amount = 333  # lowered after the rate was measured
    s = conn.create_stream()
    await asyncio.wait_for(s.send_money(10_000), 10)
    assert conn.total_sent == conn.total_delivered == 10_000
    assert "F08" in link.alice.tally.codes
    assert conn.sizer.maximum == 333
    await conn.close()
    await server.close()


async def test_rate_below_the_minimum_sends_nothing() -> None:
    link = LinkedPlugins(rate=1)
    _, address, secret = await listening(link)
    with pytest.raises(ExchangeRateError) as info:
        await stream.pay(link.alice, address, secret, 100, min_exchange_rate="1.5")
    assert info.value.amount_sent == 0
    assert info.value.rate == 1
    assert link.alice.tally.source_fulfilled == 0


async def test_float_rates_are_refused() -> None:
    link = LinkedPlugins()
    _, address, secret = await listening(link)
    with pytest.raises(TypeError, match="min_exchange_rate"):
        await stream.pay(link.alice, address, secret, 1, min_exchange_rate=0.5)


async def test_no_route() -> None:
    link = LinkedPlugins()
    _, address, secret = await listening(link)
    link.no_route = True
    with pytest.raises(NoRouteError) as info:
        await stream.pay(link.alice, address, secret, 100)
    assert info.value.code == "F02"


async def test_t04_is_retried_with_backoff() -> None:
    link = LinkedPlugins(max_packet_amount=100)
    _, address, secret = await listening(link)
    failures = iter(range(4))
    link.t04 = lambda prepare: prepare.amount > 0 and next(failures, None) is not None
    receipt = await stream.pay(link.alice, address, secret, 1_000, options=FAST)
    assert receipt.amount_sent == receipt.amount_delivered == 1_000
    assert link.alice.tally.codes.count("T04") == 4


async def test_endless_t04_is_insufficient_liquidity() -> None:
    link = LinkedPlugins()
    _, address, secret = await listening(link)
    link.t04 = lambda prepare: True
    with pytest.raises(InsufficientLiquidityError) as info:
        await stream.pay(link.alice, address, secret, 1_000, options=FAST)
    assert info.value.amount_sent == 0


async def test_receiver_limit_refuses_the_rest() -> None:
    link = LinkedPlugins(max_packet_amount=40)
    _, address, secret = await listening(link, ConnectionOptions(receive_max=100))
    with pytest.raises(ReceiverRefusedError) as info:
        await stream.pay(link.alice, address, secret, 1_000)
    assert info.value.amount_sent == info.value.amount_delivered == 100


async def test_lost_packets_time_out() -> None:
    link = LinkedPlugins()
    _, address, secret = await listening(link)
    conn = await stream.connect(link.alice, address, secret)
    link.drop = lambda prepare: prepare.amount > 0
    s = conn.create_stream()
    with pytest.raises(PaymentTimeoutError):
        await s.send_money(50, timeout=0.3)
    assert conn.total_sent == 0
    await conn.abort()


async def test_data_both_ways_and_close() -> None:
    link = LinkedPlugins(rate=1)
    server, address, secret = await listening(link)
    payload = bytes(range(256)) * 400  # 100 KiB: several packets and window updates

    async def echo() -> int:
        conn = await server.accept()
        incoming = await conn.accept_stream()
        got = bytearray()
        while len(got) < len(payload):
            got += await incoming.read()
        incoming.write(bytes(got[::-1]))
        await incoming.drain()
        await conn.wait_closed()
        return len(got)

    echoing = asyncio.create_task(echo())
    conn = await stream.connect(link.alice, address, secret)
    s = conn.create_stream()
    s.write(payload)
    back = bytearray()
    async with asyncio.timeout(20):
        await s.drain()
        while len(back) < len(payload):
            back += await s.read()
    assert bytes(back) == payload[::-1]
    await conn.close()
    assert await asyncio.wait_for(echoing, 5) == len(payload)
    server_conn = server._closed.popitem()[1]
    assert server_conn.closed
    assert server_conn.error is None
    await server.close()


async def test_the_server_pays_the_client_back() -> None:
    link = LinkedPlugins(rate=2)
    server, address, secret = await listening(link)
    conn = await stream.connect(link.alice, address, secret)
    s = conn.create_stream()
    await s.send_money(10)
    server_conn = await server.accept()
    back = server_conn.create_stream()
    await asyncio.wait_for(back.send_money(40), 10)
    incoming = await asyncio.wait_for(conn.accept_stream(), 5)
    assert incoming.id == 2
    assert conn.total_received == 20  # 40 at the inverse rate 1/2
    assert server_conn.total_sent == 40
    assert server_conn.total_delivered == 20
    await conn.close()
    await server.close()


async def test_server_close_stops_the_client() -> None:
    link = LinkedPlugins()
    server, address, secret = await listening(link)
    conn = await stream.connect(link.alice, address, secret)
    s = conn.create_stream()
    await s.send_money(5)
    await server.close()
    await asyncio.wait_for(conn.wait_closed(), 5)
    with pytest.raises((ReceiverRefusedError, stream.ConnectionClosedError)):
        await s.send_money(5)


async def test_wrong_secret_is_refused() -> None:
    link = LinkedPlugins()
    _, address, _ = await listening(link)
    with pytest.raises(stream.StreamError):
        await stream.pay(link.alice, address, b"not the secret", 10)


@given(
    amount=st.integers(0, 50_000),
    rate=st.fractions(min_value=Fraction(1, 10), max_value=10, max_denominator=50),
    max_packet=st.one_of(st.none(), st.integers(1_000, 20_000)),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_delivered_is_what_the_server_received(
    amount: int, rate: Fraction, max_packet: int | None
) -> None:
    async def run() -> None:
        link = LinkedPlugins(rate=rate, max_packet_amount=max_packet)
        server, address, secret = await listening(link)
        got: list[int] = []
        server.on_money(lambda conn, a, total: got.append(a))
        receipt = await stream.pay(
            link.alice, address, secret, amount, min_exchange_rate=rate * Fraction(9, 10)
        )
        assert receipt.amount_sent == amount == link.alice.tally.source_fulfilled
        assert receipt.amount_delivered == sum(got) == link.alice.tally.destination_fulfilled
        await server.close()

    asyncio.run(run())
