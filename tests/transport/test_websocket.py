"""The WebSocket layer of the shells (`transport.websocket`) over loopback, against the
`websockets` library's own client and server and against bare TCP: message reassembly and its
bound, the opening handshake's refusals and time limits."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import Protocol, Side, State

from ilp_paychan.codec.btp import ContentType, Message, ProtocolData, Response, decode, encode
from ilp_paychan.errors import UnreachableError
from ilp_paychan.transport import BtpClient, BtpListener, websocket
from ilp_paychan.transport.events import Request
from ilp_paychan.transport.websocket import MAX_FRAGMENTS

from .conftest import LOOPBACK, SECRET, ClientFactory, auth_message, eventually

pytestmark = pytest.mark.timeout(30)


async def echo(packet: Request) -> Response:
    return Response(0, packet.protocol_data)


def pieces(frame: bytes, count: int) -> list[bytes]:
    step = -(-len(frame) // count)
    return [frame[i : i + step] for i in range(0, len(frame), step)]


async def test_fragmented_messages_are_reassembled_before_and_after_auth(
    listener: BtpListener,
) -> None:
    listener.set_request_handler(echo)
    async with connect(f"ws://{LOOPBACK}:{listener.port}") as raw:
        await raw.send(pieces(encode(auth_message(1)), 3))
        assert decode(await raw.recv(decode=False)) == Response(1, ())
        entry = ProtocolData("blob", ContentType.OCTET_STREAM, bytes(range(256)) * 40)
        await raw.send(pieces(encode(Message(9, (entry,))), 7))
        assert decode(await raw.recv(decode=False)) == Response(9, (entry,))


async def test_too_many_fragments_close_the_socket_with_1009(
    listener: BtpListener, clients: ClientFactory
) -> None:
    listener.set_request_handler(echo)
    async with connect(f"ws://{LOOPBACK}:{listener.port}") as raw:
        await raw.send(encode(auth_message(1)))
        assert decode(await raw.recv(decode=False)) == Response(1, ())
        with contextlib.suppress(ConnectionClosed):
            await raw.send([b""] * (MAX_FRAGMENTS + 10))
        with pytest.raises(ConnectionClosed):
            await raw.recv()
        assert raw.close_code == 1009
    client = clients(listener.port)
    await client.start()
    assert isinstance(await client.request(Message(0, ())), Response)


async def test_a_plain_http_request_is_answered_426_and_closed(listener: BtpListener) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, listener.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)  # returns at EOF: the listener closed it
    writer.close()
    assert answer.startswith(b"HTTP/1.1 426 ")
    await eventually(lambda: listener.unauthenticated_count == 0, "the socket is gone")


async def answering(reply: bytes | None) -> tuple[asyncio.Server, int]:
    """A TCP server that reads the opening request and sends `reply` (None: stays silent)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if reply is None:
            await reader.read()  # until the client gives up
        else:
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_client_refused_at_the_http_handshake_is_unreachable() -> None:
    server, port = await answering(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    client = BtpClient(f"btp+ws://:{SECRET}@{LOOPBACK}:{port}", request_timeout=5.0)
    try:
        with pytest.raises(UnreachableError, match="403"):
            await client.start()
        assert not client.is_open()
    finally:
        await client.stop()
        server.close()


async def test_a_silent_http_server_makes_the_client_give_up_after_its_timeout() -> None:
    server, port = await answering(None)
    client = BtpClient(f"btp+ws://:{SECRET}@{LOOPBACK}:{port}", request_timeout=0.3)
    try:
        with pytest.raises(UnreachableError, match="TimeoutError"):
            await client.start()
    finally:
        await client.stop()
        server.close()


def _server_frame(data: bytes) -> bytes:
    """A short unmasked binary frame, as a server sends it (RFC 6455 section 5.2)."""
    assert len(data) < 126
    return bytes((0x82, len(data))) + data


class _Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.closed = 0

    def message_received(self, data: bytes) -> None:
        self.messages.append(data)

    def text_received(self) -> None:
        raise AssertionError("no text expected")

    def socket_closed(self) -> None:
        self.closed += 1


async def test_a_sink_attached_late_gets_the_early_messages_and_the_closure() -> None:
    """A client's BtpConnection is made a loop turn after the handshake: what arrived or
    happened meanwhile must still reach it (else a dead socket would wait for its auth
    deadline)."""
    ws = websocket.WebSocket(
        Protocol(Side.CLIENT, state=State.OPEN, max_size=None),  # type: ignore[arg-type]
        ping_interval=None,
        ping_timeout=None,
    )
    ws.data_received(_server_frame(b"one") + _server_frame(b"two"))
    ws.connection_lost(None)
    sink = _Sink()
    ws.attach(sink)
    assert sink.messages == [b"one", b"two"]
    assert sink.closed == 1


async def big_echo_round_trips(scheme: str, cert: Path | None, key: Path | None) -> list[int]:
    """Messages larger than one read, and many small ones in flight, over one connection."""
    ca = str(cert) if cert is not None else None
    server = BtpListener(
        0, LOOPBACK, incoming_secret=SECRET, cert=ca, key=str(key) if key is not None else None
    )
    server.set_request_handler(echo)
    await server.start()
    client = BtpClient(f"{scheme}://:{SECRET}@{LOOPBACK}:{server.port}", ca=ca)
    try:
        await client.start()
        sizes = [0, 1, websocket.READ_SIZE - 100, 3 * websocket.READ_SIZE + 7, 1_000_000]
        blobs = [ProtocolData("b", ContentType.OCTET_STREAM, bytes(n)) for n in sizes * 20]
        answers = await asyncio.gather(*(client.request(Message(0, (b,))) for b in blobs))
        assert [a.protocol_data for a in answers] == [(b,) for b in blobs]
        return [len(a.protocol_data[0].data) for a in answers[: len(sizes)]]
    finally:
        await client.stop()
        await server.stop()


@pytest.mark.parametrize("scheme", ["btp+ws", "btp+wss"])
def test_large_and_many_messages_on_uvloop(scheme: str, tls_files: tuple[Path, Path]) -> None:
    """The reused read buffer and our frames on uvloop's transports, with and without TLS."""
    uvloop = pytest.importorskip("uvloop")
    cert, key = tls_files if scheme == "btp+wss" else (None, None)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sizes = runner.run(big_echo_round_trips(scheme, cert, key))
    assert sizes[-1] == 1_000_000


@pytest.mark.parametrize("scheme", ["btp+ws", "btp+wss"])
async def test_large_and_many_messages(scheme: str, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files if scheme == "btp+wss" else (None, None)
    sizes = await big_echo_round_trips(scheme, cert, key)
    assert sizes[-1] == 1_000_000
