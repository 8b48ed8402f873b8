"""RFC 29 rules a connection keeps that the happy path does not show: a remote's new address is
used only after an authenticated round trip to it (RFC 29 §4.3.2), a malformed one closes the
connection (RFC 29 §5.4 FrameFormatError)."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest

from ilp_paychan.codec.ilp4 import IlpPrepare, IlpReject, decode_prepare, encode, encode_reject
from ilp_paychan.stream import (
    ConnectionKeys,
    ErrorCode,
    IlpPacketType,
    ReceiverRefusedError,
    StreamPacket,
    connect,
    decrypt_packet,
    encrypt_packet,
)
from ilp_paychan.stream import client as stream_client
from ilp_paychan.stream import frames as f
from ilp_paychan.stream.connection import Connection
from testkit.ilp_link import LinkedPlugins

from .test_end_to_end import listening
from .test_state_machine import CLIENT, SECRET, _expiry, connected, deliver, roundtrip

MALLORY = "test.mallory"


def _tell(client: Connection, server: Connection, *frames: f.Frame) -> None:
    client._queued.extend(frames)
    roundtrip(client, server)


def test_a_new_address_waits_for_a_round_trip_before_it_is_used() -> None:
    client, server = connected()
    assert server.destination_account == CLIENT
    _tell(client, server, f.ConnectionNewAddressFrame(MALLORY))
    assert server.destination_account == CLIENT
    assert server.pending_address == MALLORY
    back = server.create_stream()
    back.write(b"for the client")
    out = server.next_packet()
    assert out is not None
    assert decode_prepare(out.prepare).destination == CLIENT  # data still goes where it went

    check = server.validation_packet()
    assert check is not None
    prepare = decode_prepare(check.prepare)
    assert (prepare.destination, prepare.amount) == (MALLORY, 0)
    # Mallory cannot answer under the shared secret: the address is dropped.
    assert not server.validation_result(check, encode_reject(IlpReject("F99", MALLORY)))
    assert server.pending_address is None
    assert server.destination_account == CLIENT


def test_a_new_address_that_answers_under_the_secret_is_adopted() -> None:
    client, server = connected()
    _tell(client, server, f.ConnectionNewAddressFrame("test.alice.moved"))
    check = server.validation_packet()
    assert check is not None
    reply = deliver(client, check)  # the client, now reachable there, answers
    assert server.validation_result(check, encode(reply))
    assert server.destination_account == "test.alice.moved"
    assert server.pending_address is None


def test_the_same_address_again_changes_nothing() -> None:
    client, server = connected()
    _tell(client, server, f.ConnectionNewAddressFrame(CLIENT))
    assert server.pending_address is None
    assert server.validation_packet() is None


def test_a_malformed_new_address_closes_the_connection() -> None:
    _, server = connected()
    keys = ConnectionKeys(SECRET)
    data = encrypt_packet(
        StreamPacket(9, IlpPacketType.PREPARE, 0, (f.ConnectionNewAddressFrame("no spaces"),)),
        keys,
    )
    reply = server.handle_prepare(IlpPrepare(0, _expiry(), keys.condition(data), "test.b", data))
    assert isinstance(reply, IlpReject)
    assert reply.code == "F99"
    closes = [
        x for x in decrypt_packet(reply.data, keys).frames if isinstance(x, f.ConnectionCloseFrame)
    ]
    assert closes[0].code == ErrorCode.FRAME_FORMAT_ERROR
    assert "sourceAccount" in closes[0].message
    assert server.closed
    assert server.destination_account == CLIENT


async def test_end_to_end_money_is_not_redirected_by_an_unvalidated_address() -> None:
    link = LinkedPlugins(rate=Fraction(1))
    server, address, secret = await listening(link)
    conn = await connect(link.alice, address, secret)
    s = conn.create_stream()
    await s.send_money(10)
    server_conn = await asyncio.wait_for(server.accept(), 5)
    original = server_conn.destination_account
    # The client says it moved to an address nobody answers at under the secret.
    conn._queued.append(f.ConnectionNewAddressFrame(link.alice.address + ".elsewhere"))
    await s.send_money(10)
    async with asyncio.timeout(5):
        while server_conn.pending_address is not None:  # noqa: ASYNC110 - the round trip
            await asyncio.sleep(0.01)
    assert server_conn.destination_account == original
    back = server_conn.create_stream()
    await asyncio.wait_for(back.send_money(7), 5)
    assert conn.total_received == 7

    # A real move: the client listens on a new segment too; the server validates and moves.
    endpoint = stream_client._endpoints[id(link.alice)]
    endpoint.connections["moved"] = conn
    moved = link.alice.address + ".moved"
    conn._queued.append(f.ConnectionNewAddressFrame(moved))
    await s.send_money(10)
    async with asyncio.timeout(5):
        while server_conn.destination_account != moved:  # noqa: ASYNC110 - the round trip
            await asyncio.sleep(0.01)
    await asyncio.wait_for(back.send_money(5), 5)
    assert conn.total_received == 12
    await conn.close()
    await server.close()


def test_asset_details_that_contradict_earlier_ones_close_the_connection() -> None:
    _, server = connected()
    assert server.destination_asset == ("USD", 2)
    keys = ConnectionKeys(SECRET)
    frames = (f.ConnectionAssetDetailsFrame("XRP", 6),)
    data = encrypt_packet(StreamPacket(9, IlpPacketType.PREPARE, 0, frames), keys)
    reply = server.handle_prepare(IlpPrepare(0, _expiry(), keys.condition(data), "test.b", data))
    assert isinstance(reply, IlpReject)
    assert reply.code == "F99"
    (close,) = [
        x for x in decrypt_packet(reply.data, keys).frames if isinstance(x, f.ConnectionCloseFrame)
    ]
    assert close.code == ErrorCode.PROTOCOL_VIOLATION
    assert "'USD' scale 2 to 'XRP' scale 6" in close.message
    assert server.closed
    assert server.destination_asset == ("USD", 2)
    # The same details again are fine.
    client2, server2 = connected()
    _tell(client2, server2, f.ConnectionAssetDetailsFrame("USD", 2))
    assert not server2.closed


def test_a_reply_whose_asset_details_changed_fails_the_sender() -> None:
    client, server = connected()
    assert client.destination_asset == ("EUR", 3)
    server._queue(f.ConnectionAssetDetailsFrame("EUR", 2))
    out = client.next_packet()
    if out is None:
        client.create_stream().write(b"x")
        out = client.next_packet()
    assert out is not None
    with pytest.raises(ReceiverRefusedError, match="asset changed") as info:
        client.handle_reply(out, encode(deliver(server, out)))
    assert info.value.code == ErrorCode.PROTOCOL_VIOLATION
    assert client.destination_asset == ("EUR", 3)
