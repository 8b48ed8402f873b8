"""BtpClient against a bare WebSocket server scripted frame by frame (not our listener)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from websockets.asyncio.server import ServerConnection, serve

from ilp_paychan.codec.btp import Error, Message, Response, decode, encode
from ilp_paychan.errors import NotAcceptedError, PeerError, PeerTimeoutError
from ilp_paychan.transport.session import error_data

from .conftest import LOOPBACK, ClientFactory, eventually

pytestmark = pytest.mark.timeout(30)

Script = Callable[[ServerConnection], Awaitable[None]]


class RawServer:
    """Runs `script` for every connection and records what happened."""

    def __init__(self) -> None:
        self.script: Script | None = None
        self.connections = 0
        self.close_codes: list[int | None] = []
        self.port = 0

    async def handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            assert self.script is not None
            await self.script(ws)
        finally:
            await ws.wait_closed()
            self.close_codes.append(ws.close_code)


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    raw = RawServer()
    async with serve(raw.handle, LOOPBACK, 0) as server:
        raw.port = next(iter(server.sockets)).getsockname()[1]
        yield raw


async def accept_auth(ws: ServerConnection) -> Message:
    auth = decode(await ws.recv(decode=False))
    assert isinstance(auth, Message)
    await ws.send(encode(Response(auth.request_id)))
    return auth


async def test_auth_message_comes_first_and_stop_closes_with_1000(
    raw_server: RawServer, clients: ClientFactory
) -> None:
    seen: list[Message] = []

    async def script(ws: ServerConnection) -> None:
        seen.append(await accept_auth(ws))
        async for frame in ws:
            assert isinstance(frame, bytes)
            request = decode(frame)
            await ws.send(encode(Response(request.request_id)))

    raw_server.script = script
    client = clients(raw_server.port, username="bob", token="sécret")
    await client.start()
    [auth] = seen
    names = [(e.protocol_name, e.content_type, e.data) for e in auth.protocol_data]
    assert names == [
        ("auth", 0, b""),
        ("auth_username", 1, b"bob"),
        ("auth_token", 1, "sécret".encode()),
    ]
    await client.request(Message(0, ()))
    await client.stop()
    await eventually(lambda: raw_server.close_codes == [1000], "server saw a normal close")


async def test_refused_auth_is_reported_once_and_not_retried(
    raw_server: RawServer, clients: ClientFactory
) -> None:
    async def refuse(ws: ServerConnection) -> None:
        auth = decode(await ws.recv(decode=False))
        await ws.send(
            encode(
                Error(
                    auth.request_id,
                    "F00",
                    "NotAcceptedError",
                    datetime.now(UTC),
                    error_data("invalid auth token and/or username"),
                )
            )
        )
        await ws.close()

    raw_server.script = refuse
    client = clients(raw_server.port, token="wrong")
    with pytest.raises(NotAcceptedError) as caught:
        await client.start()
    assert isinstance(caught.value, PeerError)
    await asyncio.sleep(0.2)  # many backoff periods: nothing may redial by itself
    assert raw_server.connections == 1


async def test_unanswered_auth_times_out(raw_server: RawServer, clients: ClientFactory) -> None:
    async def ignore(ws: ServerConnection) -> None:
        async for _ in ws:
            pass

    raw_server.script = ignore
    client = clients(raw_server.port, request_timeout=0.3)
    with pytest.raises(PeerTimeoutError):
        await client.start()
    assert not client.is_open()


async def test_late_and_unknown_answers_are_ignored(
    raw_server: RawServer, clients: ClientFactory
) -> None:
    async def script(ws: ServerConnection) -> None:
        await accept_auth(ws)
        async for frame in ws:
            assert isinstance(frame, bytes)
            request = decode(frame)
            await ws.send(encode(Response(request.request_id ^ 0xFFFF)))  # nobody asked
            await ws.send(encode(Response(request.request_id)))
            await ws.send(encode(Response(request.request_id)))  # a duplicate answer

    raw_server.script = script
    client = clients(raw_server.port)
    await client.start()
    for _ in range(3):
        assert isinstance(await client.request(Message(0, ())), Response)
    assert client.is_open()
