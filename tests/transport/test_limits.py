"""The listener's and client's limits over real loopback sockets: frame sizes, requests in flight
both ways, sockets waiting to authenticate, the auth deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ilp_paychan.codec.btp import (
    ContentType,
    Error,
    Message,
    ProtocolData,
    Response,
    decode,
    encode,
)
from ilp_paychan.transport import BtpClient, BtpListener, connection
from ilp_paychan.transport.connection import LogBudget, PendingLimitError
from ilp_paychan.transport.events import Request
from ilp_paychan.transport.gate import AuthGate

from .conftest import LOOPBACK, SECRET, ClientFactory, auth_message, eventually

pytestmark = pytest.mark.timeout(60)


async def echo(packet: Request) -> Response:
    return Response(0, packet.protocol_data)


def blob(size: int) -> Message:
    return Message(0, (ProtocolData("blob", ContentType.OCTET_STREAM, b"x" * size),))


async def authenticated_raw(port: int, request_id: int = 1) -> ClientConnection:
    """A bare WebSocket that has authenticated with the right secret."""
    ws = await connect(f"ws://{LOOPBACK}:{port}", max_size=None)
    await ws.send(encode(auth_message(request_id)))
    assert decode(await ws.recv(decode=False)) == Response(request_id, ())
    return ws


# ---------------------------------------------------------------- the gate on its own


def test_the_gate_drops_the_oldest_when_full() -> None:
    gate: AuthGate[str] = AuthGate(3)
    assert [gate.admit(name) for name in "abc"] == [None, None, None]
    assert gate.admit("d") == "a"
    gate.leave("c")  # authenticated
    assert gate.admit("e") is None
    assert gate.admit("f") == "b"
    assert len(gate) == 3
    assert gate.evicted == 2
    assert "d" in gate
    assert "a" not in gate
    with pytest.raises(ValueError, match=">= 1"):
        AuthGate(0)


def test_the_log_budget_lets_a_few_lines_a_minute_through_and_counts_the_rest() -> None:
    now = [0.0]
    budget = LogBudget(limit=3, window=60.0, clock=lambda: now[0])
    assert [budget.allow() for _ in range(5)] == ["", "", "", None, None]
    now[0] = 59.0
    assert budget.allow() is None
    now[0] = 60.0
    assert budget.allow() == " (3 similar lines left out before this one)"
    assert budget.allow() == ""


# ---------------------------------------------------------------- frame sizes


async def test_before_auth_only_small_frames_are_read_after_it_the_full_size() -> None:
    server = BtpListener(
        0, LOOPBACK, incoming_secret=SECRET, max_frame=256 * 1024, max_auth_frame=1024
    )
    server.set_request_handler(echo)
    await server.start()
    try:
        async with connect(f"ws://{LOOPBACK}:{server.port}", max_size=None) as rogue:
            await rogue.send(encode(blob(2000)))  # not even an auth message, and too big
            with pytest.raises(ConnectionClosed):
                await rogue.recv()
            assert rogue.close_code == 1009
        ws = await authenticated_raw(server.port)
        try:
            await ws.send(encode(Message(5, blob(100_000).protocol_data)))
            answer = decode(await ws.recv(decode=False))
            assert isinstance(answer, Response)
            assert answer.request_id == 5
            assert len(answer.protocol_data[0].data) == 100_000
        finally:
            await ws.close()
    finally:
        await server.stop()


async def test_a_listener_frame_over_the_clients_limit_closes_only_that_socket() -> None:
    sockets: list[ServerConnection] = []

    async def oversize_then_behave(ws: ServerConnection) -> None:
        sockets.append(ws)
        auth = decode(await ws.recv(decode=False))
        await ws.send(encode(Response(auth.request_id)))
        if len(sockets) == 1:
            await ws.send(encode(blob(5000)))
        async for frame in ws:
            assert isinstance(frame, bytes)
            await ws.send(encode(Response(decode(frame).request_id)))

    async with serve(oversize_then_behave, LOOPBACK, 0, max_size=None) as raw:
        port = next(iter(raw.sockets)).getsockname()[1]
        client = BtpClient(f"btp+ws://:{SECRET}@{LOOPBACK}:{port}", max_frame=1024)
        states: list[bool] = []
        client.on_state_change(states.append)
        try:
            await client.start()
            await eventually(lambda: len(sockets) == 2 and client.is_open(), "a new socket")
            assert sockets[0].close_code == 1009
            assert states == [True, False, True]
            assert isinstance(await client.request(Message(0, ())), Response)
        finally:
            await client.stop()


# ---------------------------------------------------------------- requests in flight


async def test_incoming_requests_beyond_max_in_flight_wait_unread() -> None:
    running = 0
    most = 0
    started = 0
    release = asyncio.Event()

    async def slow(packet: Request) -> Response:
        nonlocal running, most, started
        started += 1
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return Response(0, packet.protocol_data)

    server = BtpListener(0, LOOPBACK, incoming_secret=SECRET, max_in_flight=4)
    server.set_request_handler(slow)
    await server.start()
    try:
        ws = await authenticated_raw(server.port)
        for n in range(12):
            await ws.send(encode(Message(100 + n, ())))
        await eventually(lambda: started == 4, "four handlers running")
        for _ in range(20):  # many loop turns with data waiting: nothing more may start
            await asyncio.sleep(0.005)
        assert started == 4
        release.set()
        answers = {decode(await ws.recv(decode=False)).request_id for _ in range(12)}
        assert answers == {100 + n for n in range(12)}
        assert most == 4
        await ws.close()
    finally:
        await server.stop()


async def test_outgoing_requests_beyond_max_pending_wait_for_a_slot_or_fail_unsent() -> None:
    server = BtpListener(0, LOOPBACK, incoming_secret=SECRET, max_pending=3)
    await server.start()
    try:
        ws = await authenticated_raw(server.port)
        waiting = [
            asyncio.ensure_future(server.request(Message(0, ()), timeout=20.0)) for _ in range(3)
        ]
        received = [decode(await ws.recv(decode=False)) for _ in range(3)]
        with pytest.raises(PendingLimitError, match="3 requests"):
            await server.request(Message(0, ()), timeout=0.2)
        queued = asyncio.ensure_future(server.request(blob(10), timeout=20.0))
        await asyncio.sleep(0.05)
        assert not queued.done()
        await ws.send(encode(Response(received[0].request_id)))  # one slot frees up
        fourth = decode(await ws.recv(decode=False))
        assert fourth.protocol_data == blob(10).protocol_data  # the 0.2 s one was never sent
        for request in [*received[1:], fourth]:
            await ws.send(encode(Response(request.request_id)))
        for future in [*waiting, queued]:
            assert isinstance(await future, Response)
        await ws.close()
    finally:
        await server.stop()


# ---------------------------------------------------------------- unauthenticated sockets


async def open_idle(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A TCP connection that never says anything (not even the HTTP upgrade)."""
    try:
        return await asyncio.open_connection(LOOPBACK, port)
    except OSError:
        return None


async def bad_auth(port: int, n: int) -> str:
    """A WebSocket that presents a wrong secret; returns what became of it."""
    try:
        async with connect(f"ws://{LOOPBACK}:{port}", open_timeout=10) as ws:
            await ws.send(encode(auth_message(n, token=f"guess-{n}")))
            answer = decode(await ws.recv(decode=False))
            assert isinstance(answer, Error)
            return answer.code
    except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError, EOFError):
        return "dropped"


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(ConnectionError):
        await reader.read()  # returns at EOF
    return True


@pytest.fixture
async def guarded() -> AsyncIterator[BtpListener]:
    server = BtpListener(
        0, LOOPBACK, incoming_secret=SECRET, auth_timeout=3.0, max_unauthenticated=32
    )
    server.set_request_handler(echo)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_flood_of_idle_and_bad_auth_sockets_does_not_starve_the_peer(
    guarded: BtpListener,
    clients: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="ilp_paychan.transport")
    monkeypatch.setattr(connection, "STRANGER_LOGS", LogBudget())  # none used up by other tests
    port = guarded.port
    idle = [conn for conn in await asyncio.gather(*(open_idle(port) for _ in range(200))) if conn]
    outcomes = await asyncio.gather(*(bad_auth(port, n) for n in range(200)))
    await eventually(lambda: guarded._gate.evicted >= 100, "old idle sockets dropped")
    assert len(guarded._gate) <= 32
    assert set(outcomes) <= {"F00", "dropped"}
    assert "F00" in outcomes  # the refusals were answered, not just cut off
    assert not guarded.is_open()
    # the flood is still there (up to 32 idle sockets held): the real peer gets in and works
    client = clients(port)
    await client.start()
    answers = await asyncio.gather(*(client.request(Message(0, ())) for _ in range(100)))
    assert len(answers) == 100
    # and a second flood after it authenticated does not touch it
    more = [conn for conn in await asyncio.gather(*(open_idle(port) for _ in range(100))) if conn]
    assert isinstance(await client.request(Message(0, ())), Response)
    assert client.is_open()
    for reader, writer in idle + more:
        assert await asyncio.wait_for(closed_by_peer(reader), 10.0)
        writer.close()
    await eventually(lambda: guarded.unauthenticated_count == 0, "every idle socket gone")
    assert client.is_open()
    # hundreds of strangers, a bounded log: 20 lines a minute for refusals and timeouts, 10 for
    # drops (then every 1000th)
    strangers = [r for r in caplog.records if "auth" in r.getMessage()]
    assert 0 < len(strangers) <= 20 + 10, [r.getMessage() for r in strangers]


async def test_the_auth_deadline_closes_idle_sockets_from_their_tcp_accept() -> None:
    server = BtpListener(0, LOOPBACK, incoming_secret=SECRET, auth_timeout=0.5)
    await server.start()
    loop = asyncio.get_running_loop()
    try:
        silent_tcp = await open_idle(server.port)
        assert silent_tcp is not None
        started = loop.time()
        async with connect(f"ws://{LOOPBACK}:{server.port}") as silent_ws:
            await eventually(lambda: server.unauthenticated_count == 2, "both counted")
            with pytest.raises(ConnectionClosed):
                await silent_ws.recv()
            assert silent_ws.close_code == 1008
        assert await asyncio.wait_for(closed_by_peer(silent_tcp[0]), 10.0)
        silent_tcp[1].close()
        print(f"idle sockets closed {loop.time() - started:.3f} s after connecting")
        await eventually(lambda: server.unauthenticated_count == 0, "nothing left waiting")
    finally:
        await server.stop()
