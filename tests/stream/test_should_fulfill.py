"""The application's say on incoming money: `Connection.should_fulfill` /
`StreamServer(should_fulfill=...)` is asked before a packet's money is counted; a refusal is F99
with a STREAM reply (RFC 29 §3.6: a receiver that will not take a packet rejects it), and
nothing is counted on either side."""

from __future__ import annotations

import logging
from fractions import Fraction

import pytest

from ilp_paychan import stream
from ilp_paychan.codec.ilp4 import IlpFulfill, IlpReject, encode
from ilp_paychan.stream import (
    ConnectionKeys,
    ConnectionOptions,
    IlpPacketType,
    ReceiverRefusedError,
    StreamServer,
    decrypt_packet,
)
from ilp_paychan.stream import frames as f
from ilp_paychan.stream.connection import Connection
from testkit.ilp_link import LinkedPlugins

from .test_state_machine import SECRET, _prepare_on, connected, deliver

FAST = ConnectionOptions(retry_delay=0.01, max_retry_delay=0.02, max_retries=3)


def _send(client: Connection, server: Connection, amount: int) -> IlpFulfill | IlpReject:
    s = client.streams[0] if client.streams else client.create_stream()
    s._send_max += amount
    out = client.next_packet()
    assert out is not None
    reply = deliver(server, out, Fraction(2))
    client.handle_reply(out, encode(reply))
    return reply


def test_the_hook_sees_each_packet_before_its_money_is_counted() -> None:
    client, server = connected()
    calls: list[tuple[Connection, int, dict[int, int], int]] = []

    def hook(conn: Connection, amount: int, splits: dict[int, int]) -> bool:
        calls.append((conn, amount, splits, conn.total_received))
        return amount <= 200

    server.should_fulfill = hook
    assert isinstance(_send(client, server, 100), IlpFulfill)
    assert calls == [(server, 200, {1: 200}, 0)]  # 100 at the path's rate 2
    assert server.total_received == 200

    reply = _send(client, server, 150)
    assert isinstance(reply, IlpReject)
    assert reply.code == "F99"
    packet = decrypt_packet(reply.data, ConnectionKeys(SECRET))
    assert packet.ilp_packet_type is IlpPacketType.REJECT
    assert packet.prepare_amount == 300  # what arrived, so the sender still learns the rate
    assert calls[-1][1:] == (300, {1: 300}, 200)
    # nothing counted on either side
    assert server.total_received == 200
    assert server.streams[0].total_received == 200
    assert client.total_sent == 100
    assert client.total_delivered == 200
    assert client.streams[0]._held == 0
    assert not server.closed
    assert not client.closed


def test_packets_without_money_are_not_asked_about() -> None:
    _, server = connected()
    calls: list[int] = []
    server.should_fulfill = lambda conn, amount, splits: bool(calls.append(amount))
    reply = server.handle_prepare(_prepare_on(server, (f.StreamDataFrame(1, 0, b"hi"),)))
    assert isinstance(reply, IlpFulfill)
    assert calls == []


@pytest.mark.parametrize("kind", ["raises", "not a bool", "coroutine"])
def test_anything_but_true_refuses(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    client, server = connected()

    async def later(conn: Connection, amount: int, splits: dict[int, int]) -> bool:
        return True

    def raising(conn: Connection, amount: int, splits: dict[int, int]) -> bool:
        raise RuntimeError("over budget")

    hooks = {"raises": raising, "not a bool": lambda c, a, s: 1, "coroutine": later}
    server.should_fulfill = hooks[kind]  # type: ignore[assignment]
    with caplog.at_level(logging.INFO, logger="ilp_paychan.stream.connection"):
        reply = _send(client, server, 10)
    assert isinstance(reply, IlpReject)
    assert reply.code == "F99"
    assert server.total_received == 0
    assert client.total_sent == 0
    assert ("over budget" if kind == "raises" else "must be synchronous") in caplog.text


def test_a_server_hook_must_be_callable() -> None:
    link = LinkedPlugins()
    with pytest.raises(TypeError, match="should_fulfill: expected a callable"):
        StreamServer(link.bob, should_fulfill=1000)  # type: ignore[arg-type]


async def test_a_budget_refuses_the_rest_and_pay_fails_with_what_was_taken() -> None:
    link = LinkedPlugins(rate=1, max_packet_amount=100)
    budget = 1000

    def within_budget(conn: Connection, amount: int, splits: dict[int, int]) -> bool:
        return conn.total_received + amount <= budget

    server = StreamServer(
        link.bob, server_secret=bytes(32), options=FAST, should_fulfill=within_budget
    )
    await server.listen()
    address, secret = server.generate_address_and_secret()
    with pytest.raises(ReceiverRefusedError) as info:
        await stream.pay(link.alice, address, secret, 1500, options=FAST, timeout=20)
    conn = server._closed.popitem()[1] if server._closed else server.connections[0]
    assert conn.should_fulfill is within_budget
    assert conn.total_received == budget
    assert info.value.amount_sent == info.value.amount_delivered == budget
    assert link.alice.tally.source_fulfilled == budget
    # the refused packets were rejected by the receiver (F99), then retried with backoff
    assert link.alice.tally.codes.count("F99") >= FAST.max_retries + 1
    await server.close()
