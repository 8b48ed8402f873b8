"""Connection-level flow control over streams that close (RFC 29 §4.5, §5.3.3): ConnectionMaxData
is the total number of bytes an endpoint will receive on the connection, so it counts the bytes
of every stream, closed ones included, and never goes down; both ends keep cumulative offsets
that do not change when a closed stream is forgotten."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ilp_paychan import stream
from ilp_paychan.codec.ilp4 import encode
from ilp_paychan.stream import ConnectionKeys, ConnectionOptions, ErrorCode, StreamServer
from ilp_paychan.stream import frames as f
from ilp_paychan.stream.connection import DEFAULT_CONNECTION_WINDOW, Connection
from ilp_paychan.stream.packet import decrypt_packet
from ilp_paychan.stream.stream import DataAndMoneyStream
from testkit.ilp_link import LinkedPlugins

from .test_state_machine import SECRET, connected, deliver

CHUNK = 20_000
STREAMS = 6  # 120 KB in all: past the 64 KB connection window


def _max_data(frames: tuple[f.Frame, ...]) -> list[int]:
    return [x.max_offset for x in frames if isinstance(x, f.ConnectionMaxDataFrame)]


def _pump(sender: Connection, receiver: Connection, adverts: list[int]) -> None:
    """Hand ``sender``'s packets to ``receiver`` until it has none, noting every
    ConnectionMaxData ``receiver`` sends (in its replies)."""
    for _ in range(200):
        out = sender.next_packet()
        if out is None:
            return
        reply = deliver(receiver, out)
        if reply.data:
            adverts.extend(_max_data(decrypt_packet(reply.data, ConnectionKeys(SECRET)).frames))
        sender.handle_reply(out, encode(reply))
    raise AssertionError("the sender never ran out of packets")


@pytest.mark.parametrize("direction", ["client sends", "server sends"])
async def test_max_data_only_grows_over_many_closed_streams(direction: str) -> None:
    client, server = connected()
    _pump(server, client, [])  # the server answers the client's address with its details
    sender, receiver = (client, server) if direction == "client sends" else (server, client)
    adverts, told = await _sequential_streams(sender, receiver)
    assert adverts == sorted(adverts)  # RFC 29 §4.4.4, §4.5: never lowered
    assert adverts[-1] == STREAMS * CHUNK + DEFAULT_CONNECTION_WINDOW
    assert told
    assert told == sorted(told)
    assert not sender._remote_counts_open_streams


class _OpenStreamsOnly(Connection):
    """A receiver that counts only the streams it has open and forgets closed ones, as
    ilp-protocol-stream 2.7 does."""

    def _max_connection_offset(self) -> int:
        consumed = sum(s._consumed for s in self._streams.values())
        return consumed + self.options.connection_window

    def _check_incoming_data(
        self, frames: list[f.StreamDataFrame]
    ) -> f.ConnectionCloseFrame | None:
        total = sum(s._max_incoming_offset for s in self._streams.values())
        for frame in frames:
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                total += max(frame.offset + len(frame.data) - stream._max_incoming_offset, 0)
        if total > self._max_connection_offset():
            return f.ConnectionCloseFrame(ErrorCode.FLOW_CONTROL_ERROR, "open streams")
        return None


async def test_a_remote_that_counts_open_streams_only_is_recognised_and_not_stalled() -> None:
    # Counting every byte against such a remote's limit, the sender would find its window
    # full for good once closed streams carried more than 64 KB.
    sender, plain = connected()
    receiver = _OpenStreamsOnly(
        plugin=None,
        shared_secret=SECRET,
        is_server=True,
        source_account=plain.source_account,
        asset_code="EUR",
        asset_scale=3,
        destination_account=sender.source_account,
    )
    adverts, _ = await _sequential_streams(sender, receiver)
    assert sender._remote_counts_open_streams
    assert adverts != sorted(adverts)  # what such a remote does
    assert not receiver.closed


async def _sequential_streams(
    sender: Connection, receiver: Connection
) -> tuple[list[int], list[int]]:
    """``STREAMS`` streams one after another, each carrying ``CHUNK`` bytes that the receiver
    reads, then closed; returns the ConnectionMaxData the receiver sent in its replies and in
    its own packets."""
    adverts: list[int] = []
    told: list[int] = []  # ConnectionMaxData the receiver put in its own packets
    received = 0
    for n in range(STREAMS):
        payload = bytes([n]) * CHUNK
        out_stream = sender.create_stream()
        out_stream.write(payload)
        got = bytearray()
        incoming: DataAndMoneyStream | None = None
        for _ in range(50):
            _pump(sender, receiver, adverts)
            if incoming is None and receiver._incoming:
                incoming = receiver._incoming.popleft()
            if incoming is not None and incoming._ready:
                got += await incoming.read()
            out = receiver.next_packet()  # what reading freed, told in the receiver's packet
            if out is not None:
                told.extend(_max_data(out.frames))
                receiver.handle_reply(out, encode(deliver(sender, out)))
            if len(got) == CHUNK:
                break
        assert bytes(got) == payload
        received += len(got)
        out_stream._begin_close(ErrorCode.NO_ERROR, "")
        _pump(sender, receiver, adverts)
        assert not sender._streams
        assert not receiver._streams
    assert received == STREAMS * CHUNK
    assert not sender.closed
    assert not receiver.closed
    return adverts, told


async def _until(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - polls the connections' counts
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("direction", ["client sends", "server sends"])
async def test_closed_streams_do_not_give_the_sender_room_the_receiver_lacks(
    direction: str,
) -> None:
    # Stream A carries 60 KB, read and closed; then B and C carry 40 KB each, read only once
    # the sender has filled the 64 KB window. The sender must stop there (no more: the
    # receiver's FLOW_CONTROL_ERROR), then learn of the reads and finish. Before, the reads
    # reached the sender only in replies to its own packets, and a blocked sender sent none:
    # it stalled for good.
    options = ConnectionOptions(stream_window=60_000)
    link = LinkedPlugins()
    server = StreamServer(link.bob, server_secret=bytes(range(32)), options=options)
    await server.listen()
    address, secret = server.generate_address_and_secret()
    client = await stream.connect(link.alice, address, secret, options=options)
    first = client.create_stream()
    await first.send_money(1)
    server_conn = await asyncio.wait_for(server.accept(), 5)
    await asyncio.wait_for(server_conn.accept_stream(), 5)
    sender, receiver = (
        (client, server_conn) if direction == "client sends" else (server_conn, client)
    )

    async def transfer(size: int, streams: int) -> list[DataAndMoneyStream]:
        outs = [sender.create_stream() for _ in range(streams)]
        for i, s in enumerate(outs):
            s.write(bytes([i + 1]) * size)
        return outs

    big = (await transfer(60_000, 1))[0]
    incoming = await asyncio.wait_for(receiver.accept_stream(), 5)
    got = bytearray()
    async with asyncio.timeout(10):
        while len(got) < 60_000:
            got += await incoming.read()
    await asyncio.wait_for(big.close(), 5)
    await _until(lambda: big.id not in sender._streams and big.id not in receiver._streams)

    outs = await transfer(40_000, 2)
    sent = lambda: sum(s._out_offset for s in outs)  # noqa: E731
    in_flight = lambda: sender._sender is not None and sender._sender._in_flight  # noqa: E731
    await _until(lambda: sender.closed or (sent() >= DEFAULT_CONNECTION_WINDOW and not in_flight()))
    assert not sender.closed, sender.error
    assert sent() == DEFAULT_CONNECTION_WINDOW  # what the receiver had room for, no more
    readers = [await asyncio.wait_for(receiver.accept_stream(), 5) for _ in outs]

    async def read_all(s: DataAndMoneyStream) -> bytes:
        data = bytearray()
        while len(data) < 40_000:
            data += await s.read()
        return bytes(data)

    async with asyncio.timeout(10):
        results = await asyncio.gather(*(read_all(s) for s in readers))
        await asyncio.gather(*(s.drain() for s in outs))
    assert sorted(results) == [bytes([1]) * 40_000, bytes([2]) * 40_000]
    assert not sender.closed
    assert not receiver.closed
    await client.close()
    await server.close()
