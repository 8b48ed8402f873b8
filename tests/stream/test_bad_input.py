"""Arbitrary Prepares fed to a `StreamServer`'s data handler: whatever arrives, the handler
answers with a sendable ILP reply carrying the code RFC 29 gives (F02 for an address the server
did not make, F06 for data that does not decrypt under the connection's secret, RFC 29 §4.2; F99 for
what STREAM refuses), never raises, and keeps its per-connection state within its limits
(buffers within the windows, streams within the maximum stream id, a bounded control queue)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ilp_paychan.codec.ilp4 import IlpFulfill, IlpPrepare, decode_reply, encode_prepare
from ilp_paychan.stream import (
    UINT64_MAX,
    ConnectionKeys,
    ConnectionOptions,
    IlpPacketType,
    StreamPacket,
    StreamServer,
    decrypt_packet,
    encrypt_packet,
    generate_address_and_secret,
)
from ilp_paychan.stream import frames as f
from ilp_paychan.stream.connection import Connection
from ilp_paychan.stream.packet import MAX_DATA_SIZE
from testkit.ilp_link import LinkedPlugins

SERVER_SECRET = bytes(range(32))
WINDOW = 1000
CONN_WINDOW = 3000

amounts = st.one_of(
    st.integers(0, 1000), st.integers(0, UINT64_MAX), st.sampled_from([0, UINT64_MAX])
)
stream_ids = st.one_of(st.integers(0, 45), st.integers(0, UINT64_MAX))
codes = st.integers(0, 255)
texts = st.text(max_size=40)
addresses = st.one_of(
    st.sampled_from(["test.alice", "test.alice.sub", "g.other", "", "not an address", "test."]),
    texts,
)
offsets = st.one_of(st.integers(0, 3 * WINDOW), st.integers(0, UINT64_MAX))

frames = st.one_of(
    st.builds(f.ConnectionCloseFrame, codes, texts),
    st.builds(f.ConnectionNewAddressFrame, addresses),
    st.builds(f.ConnectionMaxDataFrame, amounts),
    st.builds(f.ConnectionDataBlockedFrame, amounts),
    st.builds(f.ConnectionMaxStreamIdFrame, amounts),
    st.builds(f.ConnectionStreamIdBlockedFrame, amounts),
    st.builds(f.ConnectionAssetDetailsFrame, st.sampled_from(["USD", "EUR", ""]), codes),
    st.builds(f.StreamCloseFrame, stream_ids, codes, texts),
    st.builds(f.StreamMoneyFrame, stream_ids, amounts),
    st.builds(f.StreamMaxMoneyFrame, stream_ids, amounts, amounts),
    st.builds(f.StreamMoneyBlockedFrame, stream_ids, amounts, amounts),
    st.builds(f.StreamDataFrame, stream_ids, offsets, st.binary(max_size=1200)),
    st.builds(f.StreamMaxDataFrame, stream_ids, amounts),
    st.builds(f.StreamDataBlockedFrame, stream_ids, amounts),
    st.builds(f.StreamReceiptFrame, stream_ids, st.binary(max_size=80)),
)


def _expiry() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=30)


@st.composite
def prepares(draw: st.DrawFn) -> tuple[str, bytes, bytes, str]:
    """(what, destination, data, condition choice): the destination and data kinds to send."""
    where = draw(
        st.sampled_from(["ours", "ours-sub", "other-server", "garbage-token", "elsewhere"])
    )
    body = draw(
        st.sampled_from(["frames", "frames", "frames", "random", "truncated", "wrong-key", "type"])
    )
    raw = draw(st.binary(max_size=200))
    cut = draw(st.integers(0, 60))
    right_condition = draw(st.booleans())
    return where, body.encode(), bytes([cut]) + raw, "right" if right_condition else "random"


def _build(
    server: StreamServer,
    address: str,
    secret: bytes,
    spec: tuple[str, bytes, bytes, str],
    frame_list: list[f.Frame],
    sequence: int,
    amount: int,
    min_amount: int,
) -> IlpPrepare:
    where, body, raw, condition = spec
    keys = ConnectionKeys(secret)
    destination = {
        "ours": address,
        "ours-sub": address + ".x.y",
        "other-server": generate_address_and_secret(bytes(32), server.address)[0],
        "garbage-token": server.address + ".AAAA",
        "elsewhere": "test.nowhere",
    }[where]
    kind = IlpPacketType.FULFILL if body == b"type" else IlpPacketType.PREPARE
    packet = StreamPacket(sequence, kind, min_amount, tuple(frame_list))
    data = b""
    if body in (b"frames", b"type"):
        data = encrypt_packet(packet, keys)
    elif body == b"random":
        data = raw[1:]
    elif body == b"truncated":
        data = encrypt_packet(packet, keys)[: raw[0]]
    elif body == b"wrong-key":
        data = encrypt_packet(packet, ConnectionKeys(b"another secret"))
    data = data[:MAX_DATA_SIZE]
    cond = keys.condition(data) if condition == "right" else os.urandom(32)
    return IlpPrepare(amount, _expiry(), cond, destination, data)


def _check_bounds(server: StreamServer) -> None:
    for conn in [*server.connections, *server._closed.values()]:
        assert len(conn._queued) <= 8, conn._queued
        assert len(conn._streams) <= conn._max_stream_id // 2 + 1
        for stream in conn._streams.values():
            held = sum(len(c) for c in stream._chunks.values()) + len(stream._ready)
            assert held <= WINDOW, (stream.id, held)


@given(
    steps=st.lists(
        st.tuples(prepares(), st.lists(frames, max_size=12), amounts, amounts),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_prepare_gets_the_right_code_and_never_raises(
    steps: list[tuple[tuple[str, bytes, bytes, str], list[f.Frame], int, int]],
) -> None:
    async def run() -> None:
        link = LinkedPlugins()
        options = ConnectionOptions(stream_window=WINDOW, connection_window=CONN_WINDOW)
        server = StreamServer(link.bob, server_secret=SERVER_SECRET, options=options)
        await server.listen()
        address, secret = server.generate_address_and_secret("fuzz")
        keys = ConnectionKeys(secret)
        for sequence, (spec, frame_list, amount, min_amount) in enumerate(steps, 1):
            prepare = _build(
                server, address, secret, spec, frame_list, sequence, amount, min_amount
            )
            raw = await server._handle(encode_prepare(prepare))
            reply = decode_reply(raw)
            where, body, _, _ = spec
            ours = where in ("ours", "ours-sub")
            if not ours:
                assert not isinstance(reply, IlpFulfill)
                assert reply.code == "F02", reply
                continue
            if body in (b"random", b"truncated", b"wrong-key", b"type"):
                if isinstance(reply, IlpFulfill) or reply.code != "F06":
                    # Only bytes that happen to be a valid packet under our key get further.
                    decrypt_packet(prepare.data, keys)
                    assert body == b"truncated"
                continue
            if isinstance(reply, IlpFulfill):
                assert keys.condition(prepare.data) == prepare.execution_condition
                assert prepare.amount >= min_amount
                answer = decrypt_packet(reply.data, keys)
                assert answer.ilp_packet_type is IlpPacketType.FULFILL
            else:
                assert reply.code == "F99", reply
                answer = decrypt_packet(reply.data, keys)
                assert answer.ilp_packet_type is IlpPacketType.REJECT
            assert answer.sequence == sequence
            assert answer.prepare_amount == prepare.amount
            _check_bounds(server)
        await server.close()

    asyncio.run(run())


async def _server() -> tuple[StreamServer, str, ConnectionKeys]:
    link = LinkedPlugins()
    options = ConnectionOptions(stream_window=WINDOW, connection_window=CONN_WINDOW)
    server = StreamServer(link.bob, server_secret=SERVER_SECRET, options=options)
    await server.listen()
    address, secret = server.generate_address_and_secret()
    return server, address, ConnectionKeys(secret)


async def _send(
    server: StreamServer,
    address: str,
    keys: ConnectionKeys,
    frame_list: tuple[f.Frame, ...],
    amount: int = 0,
    sequence: int = 1,
) -> object:
    data = encrypt_packet(StreamPacket(sequence, IlpPacketType.PREPARE, 0, frame_list), keys)
    prepare = IlpPrepare(amount, _expiry(), keys.condition(data), address, data)
    return decode_reply(await server._handle(encode_prepare(prepare)))


async def test_a_flood_of_connection_new_address_frames_gets_a_sendable_reply() -> None:
    server, address, keys = await _server()
    flood = tuple(f.ConnectionNewAddressFrame("test.alice") for _ in range(2400))
    reply = await _send(server, address, keys, flood)
    assert isinstance(reply, IlpFulfill)
    frames_back = decrypt_packet(reply.data, keys).frames
    assert frames_back.count(f.ConnectionAssetDetailsFrame("USD", 9)) == 1
    assert len(server.connections[0]._queued) == 0
    await server.close()


async def test_overlapping_data_is_held_once_within_the_window() -> None:
    server, address, keys = await _server()
    for i in range(1, 200):
        frame = f.StreamDataFrame(1, i, b"x" * (WINDOW - i))
        await _send(server, address, keys, (frame,), sequence=i)
    (stream,) = server.connections[0].streams
    assert sum(len(c) for c in stream._chunks.values()) <= WINDOW
    await _send(server, address, keys, (f.StreamDataFrame(1, 0, b"y"),), sequence=300)
    assert await stream.read() == b"y" + b"x" * (WINDOW - 1)
    await server.close()


@given(
    pieces=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 120)), min_size=1, max_size=40)
)
@settings(max_examples=200, deadline=None)
def test_data_arriving_in_any_order_and_overlap_reads_back_exactly(
    pieces: list[tuple[int, int]],
) -> None:
    source = bytes(i % 251 for i in range(500))
    conn = Connection(
        plugin=None,
        shared_secret=b"s",
        is_server=True,
        source_account="test.bob",
        asset_code="USD",
        asset_scale=0,
    )
    stream = conn._new_stream(1)
    for offset, length in [*pieces, (0, 500)]:
        stream._receive_data(offset, source[offset : offset + length])
        held = sum(len(c) for c in stream._chunks.values())
        assert held + len(stream._ready) <= 500
        assert sorted(stream._chunks) == stream._chunk_starts
        ends = [o + len(stream._chunks[o]) for o in stream._chunk_starts]
        assert all(e <= o for e, o in zip(ends, stream._chunk_starts[1:], strict=False))
    assert bytes(stream._ready) == source
