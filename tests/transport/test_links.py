"""BtpListener and BtpClient over real WebSockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ilp_paychan.codec.btp import (
    ContentType,
    Error,
    Message,
    ProtocolData,
    Response,
    decode,
    encode,
)
from ilp_paychan.errors import (
    DuplicateIdError,
    InvalidFieldsError,
    NotAcceptedError,
    NotConnectedError,
    PeerError,
    PeerTimeoutError,
    UnreachableError,
)
from ilp_paychan.transport import BtpListener, ConnectionLostError, RequestHandler
from ilp_paychan.transport.events import Request
from ilp_paychan.transport.session import CLOSE_REPLACED

from .conftest import LOOPBACK, SECRET, ClientFactory, auth_message, eventually

pytestmark = pytest.mark.timeout(30)

NOW = datetime.now(UTC)


def text_entry(name: str, text: str) -> ProtocolData:
    return ProtocolData(name, ContentType.TEXT_PLAIN_UTF8, text.encode())


async def echo(packet: Request) -> Response:
    return Response(packet.request_id, packet.protocol_data)


async def test_client_authenticates_and_requests_flow_both_ways(
    listener: BtpListener, clients: ClientFactory
) -> None:
    client = clients(listener.port)
    listener.set_request_handler(echo)

    async def client_side(packet: Request) -> Response:
        return Response(0, (text_entry("from", "client"),))

    client.set_request_handler(client_side)
    await client.start()
    assert client.is_open()
    assert listener.is_open()
    answer = await client.request(Message(0, (text_entry("ping", "1"),)))
    assert answer.protocol_data == (text_entry("ping", "1"),)
    answer = await listener.request(Message(0, ()))
    assert answer.protocol_data == (text_entry("from", "client"),)


@pytest.mark.parametrize(("username", "token"), [("", "wrong"), ("user", SECRET)])
async def test_refused_credentials_raise_not_accepted_without_retry(
    listener: BtpListener, clients: ClientFactory, username: str, token: str
) -> None:
    client = clients(listener.port, token=token, username=username)
    with pytest.raises(NotAcceptedError) as caught:
        await client.start()
    assert isinstance(caught.value, PeerError)
    assert caught.value.code == "F00"
    assert str(caught.value) == "invalid auth token and/or username"
    assert not client.is_open()
    assert not listener.is_open()
    with pytest.raises(NotAcceptedError):
        await client.start()


async def test_a_user_auth_check_replaces_the_default(clients: ClientFactory) -> None:
    async def check(username: str, token: str) -> bool:
        return username == "alice" and token == "t0ken"

    server = BtpListener(0, LOOPBACK, auth_check=check)
    await server.start()
    try:
        await clients(server.port, username="alice", token="t0ken").start()
        with pytest.raises(NotAcceptedError):
            await clients(server.port, username="bob", token="t0ken").start()
    finally:
        await server.stop()


async def test_each_socket_keeps_its_own_auth_deadline(clients: ClientFactory) -> None:
    server = BtpListener(0, LOOPBACK, incoming_secret=SECRET, auth_timeout=0.3)
    await server.start()
    try:
        async with connect(f"ws://{LOOPBACK}:{server.port}") as silent:
            client = clients(server.port)
            await client.start()  # authenticating another socket must not save the silent one
            with pytest.raises(ConnectionClosed):
                await silent.recv()
            assert client.is_open()
            assert server.is_open()
    finally:
        await server.stop()


async def test_a_thousand_requests_in_flight_on_one_socket(
    listener: BtpListener, clients: ClientFactory
) -> None:
    async def slow_echo(packet: Request) -> Response:
        await asyncio.sleep(0)
        return Response(0, packet.protocol_data)

    listener.set_request_handler(slow_echo)
    client = clients(listener.port)
    await client.start()
    answers = await asyncio.gather(
        *(client.request(Message(0, (text_entry("n", str(n)),))) for n in range(1000))
    )
    assert [answer.protocol_data[0].data for answer in answers] == [
        str(n).encode() for n in range(1000)
    ]


async def test_an_unanswered_request_times_out_and_the_link_survives(
    listener: BtpListener, clients: ClientFactory
) -> None:
    release = asyncio.Event()

    async def stall_first(packet: Request) -> Response:
        if packet.protocol_data:
            await release.wait()
        return Response(0, ())

    listener.set_request_handler(stall_first)
    client = clients(listener.port)
    await client.start()
    with pytest.raises(PeerTimeoutError):
        await client.request(Message(0, (text_entry("stall", ""),)), timeout=0.2)
    release.set()  # the late answer is dropped
    assert isinstance(await client.request(Message(0, ())), Response)
    assert client.is_open()


async def test_handler_errors_become_btp_errors(
    listener: BtpListener, clients: ClientFactory
) -> None:
    async def failing(packet: Request) -> Response:
        kind = packet.protocol_data[0].protocol_name
        if kind == "dup":
            raise DuplicateIdError("transfer 1 exists with other content")
        raise ValueError("boom")

    client = clients(listener.port)
    await client.start()
    with pytest.raises(NotAcceptedError, match="no request handler registered"):
        await client.request(Message(0, (text_entry("x", ""),)))
    listener.set_request_handler(failing)
    with pytest.raises(DuplicateIdError) as duplicate:
        await client.request(Message(0, (text_entry("dup", ""),)))
    assert isinstance(duplicate.value, PeerError)
    assert duplicate.value.code == "F04"
    with pytest.raises(PeerError) as other:
        await client.request(Message(0, (text_entry("other", ""),)))
    assert (other.value.code, other.value.name, str(other.value)) == (
        "F00",
        "NotAcceptedError",
        "boom",
    )


async def test_client_reconnects_and_reauthenticates_after_the_listener_restarts(
    listener: BtpListener, clients: ClientFactory
) -> None:
    listener.set_request_handler(echo)
    client = clients(listener.port)
    states: list[bool] = []
    client.on_state_change(states.append)
    await client.start()
    assert states == [True]
    await listener.stop()
    await eventually(lambda: states[-1] is False, "client noticed the drop")
    pending = asyncio.ensure_future(client.request(Message(0, (text_entry("q", "1"),))))
    await asyncio.sleep(0.05)
    await listener.start()
    answer = await pending  # waited for the link instead of failing
    assert answer.protocol_data == (text_entry("q", "1"),)
    assert states == [True, False, True]
    assert listener.is_open()


async def test_requests_in_flight_when_the_socket_drops_fail_as_lost(
    listener: BtpListener, clients: ClientFactory
) -> None:
    never = asyncio.Event()

    async def hang(packet: Request) -> Response:
        await never.wait()
        return Response(0, ())

    listener.set_request_handler(hang)
    client = clients(listener.port)
    await client.start()
    pending = asyncio.ensure_future(client.request(Message(0, ())))
    await asyncio.sleep(0.05)
    stop = asyncio.ensure_future(listener.stop())
    with pytest.raises(ConnectionLostError):
        await pending
    never.set()
    await stop


async def test_a_second_client_replaces_the_first(
    listener: BtpListener, clients: ClientFactory
) -> None:
    first = clients(listener.port)
    second = clients(listener.port)

    def who(name: str) -> RequestHandler:
        async def handler(packet: Request) -> Response:
            return Response(0, (text_entry("me", name),))

        return handler

    first.set_request_handler(who("first"))
    second.set_request_handler(who("second"))
    await first.start()
    assert (await listener.request(Message(0, ()))).protocol_data[0].data == b"first"
    await second.start()
    await eventually(lambda: not first.is_open(), "first client closed")
    answers = [await listener.request(Message(0, ())) for _ in range(3)]
    assert {answer.protocol_data[0].data for answer in answers} == {b"second"}
    await asyncio.sleep(0.3)  # several backoff periods: the replaced client must not come back
    assert not first.is_open()
    assert second.is_open()
    with pytest.raises(NotConnectedError, match="replaced"):
        await first.request(Message(0, ()))
    await first.start()  # taking it back is explicit
    await eventually(lambda: not second.is_open(), "second client replaced in turn")


async def test_replaced_socket_sees_close_code_4001(listener: BtpListener) -> None:
    async with connect(f"ws://{LOOPBACK}:{listener.port}") as old:
        await old.send(encode(auth_message(1)))
        assert decode(await old.recv(decode=False)) == Response(1, ())
        async with connect(f"ws://{LOOPBACK}:{listener.port}") as new:
            await new.send(encode(auth_message(2)))
            assert decode(await new.recv(decode=False)) == Response(2, ())
            with pytest.raises(ConnectionClosed):
                await old.recv()
            assert old.close_code == CLOSE_REPLACED


async def test_tls_listener_and_client_with_a_private_ca(
    tls_files: tuple[Path, Path], clients: ClientFactory
) -> None:
    cert, key = tls_files
    server = BtpListener(0, LOOPBACK, cert=str(cert), key=str(key), incoming_secret=SECRET)
    await server.start()
    try:
        server.set_request_handler(echo)
        client = clients(server.port, scheme="btp+wss", ca=str(cert))
        await client.start()
        answer = await client.request(Message(0, (text_entry("tls", "yes"),)))
        assert answer.protocol_data == (text_entry("tls", "yes"),)
        untrusting = clients(server.port, scheme="btp+wss")
        with pytest.raises(UnreachableError, match=r"btp\+wss://:\*\*\*@127\.0\.0\.1"):
            await untrusting.start()
    finally:
        await server.stop()


async def test_unreadable_tls_files_make_start_raise(
    tmp_path: Path, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    missing = BtpListener(0, LOOPBACK, cert=str(tmp_path / "nope.pem"), key=str(key))
    with pytest.raises(InvalidFieldsError, match=r"listener\.cert"):
        await missing.start()
    bad_ca = BtpListener(0, LOOPBACK, cert=str(cert), key=str(key), ca=str(tmp_path / "ca.pem"))
    with pytest.raises(InvalidFieldsError, match=r"listener\.ca"):
        await bad_ca.start()


async def test_oversize_frame_closes_only_that_socket(clients: ClientFactory) -> None:
    server = BtpListener(0, LOOPBACK, incoming_secret=SECRET, max_frame=1024)
    await server.start()
    try:
        server.set_request_handler(echo)
        client = clients(server.port)
        await client.start()
        async with connect(f"ws://{LOOPBACK}:{server.port}", max_size=None) as rogue:
            await rogue.send(b"\x06" + b"\x00" * 2000)
            with pytest.raises(ConnectionClosed):
                await rogue.recv()
            assert rogue.close_code == 1009
        assert isinstance(await client.request(Message(0, ())), Response)
        assert client.is_open()
    finally:
        await server.stop()


async def test_text_frame_closes_with_1003_and_the_listener_keeps_serving(
    listener: BtpListener, clients: ClientFactory
) -> None:
    listener.set_request_handler(echo)
    async with connect(f"ws://{LOOPBACK}:{listener.port}") as rogue:
        await rogue.send("hello")
        with pytest.raises(ConnectionClosed):
            await rogue.recv()
        assert rogue.close_code == 1003
    client = clients(listener.port)
    await client.start()
    await client.request(Message(0, ()))


async def test_garbage_binary_frame_is_dropped_without_answer(listener: BtpListener) -> None:
    listener.set_request_handler(echo)
    async with connect(f"ws://{LOOPBACK}:{listener.port}") as raw:
        await raw.send(encode(auth_message(1)))
        assert decode(await raw.recv(decode=False)) == Response(1, ())
        await raw.send(b"\x07\x00\x00\x00\x05\x01\x00")
        await raw.send(b"\x06\x00\x00\x00\x06\x05\x01")
        await raw.send(encode(Message(77, (text_entry("after", "garbage"),))))
        assert decode(await raw.recv(decode=False)) == Response(
            77, (text_entry("after", "garbage"),)
        )


async def test_an_error_answer_from_a_raw_peer_reaches_the_caller(listener: BtpListener) -> None:
    async with connect(f"ws://{LOOPBACK}:{listener.port}") as raw:
        await raw.send(encode(auth_message(1)))
        await raw.recv()
        pending = asyncio.ensure_future(listener.request(Message(0, ())))
        request = decode(await raw.recv(decode=False))
        await raw.send(encode(Error(request.request_id, "F02", "TransferNotFoundError", NOW, "{}")))
        with pytest.raises(PeerError) as caught:
            await pending
        assert caught.value.code == "F02"


async def test_start_on_a_port_in_use_raises() -> None:
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        server = BtpListener(busy.getsockname()[1], LOOPBACK)
        with pytest.raises(InvalidFieldsError, match=r"listener\.port"):
            await server.start()
        assert not server.is_open()


async def test_client_start_against_nothing_raises_unreachable(clients: ClientFactory) -> None:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    with pytest.raises(UnreachableError, match="cannot reach"):
        await clients(port).start()


async def test_request_before_start_raises_not_connected(clients: ClientFactory) -> None:
    with pytest.raises(NotConnectedError):
        await clients(1).request(Message(0, ()))
    with pytest.raises(NotConnectedError):
        await BtpListener(0, LOOPBACK).request(Message(0, ()))


async def test_stop_wakes_requests_waiting_for_the_link(listener: BtpListener) -> None:
    waiting = asyncio.ensure_future(listener.request(Message(0, ()), timeout=10.0))
    await asyncio.sleep(0.05)
    await listener.stop()
    with pytest.raises(NotConnectedError):
        await waiting


async def test_listener_without_a_client_gives_up_after_the_timeout(listener: BtpListener) -> None:
    with pytest.raises(UnreachableError, match="no authenticated connection"):
        await listener.request(Message(0, ()), timeout=0.1)


async def test_stop_closes_cleanly_and_both_sides_can_start_again(
    listener: BtpListener, clients: ClientFactory
) -> None:
    listener.set_request_handler(echo)
    client = clients(listener.port)
    listener_states: list[bool] = []
    listener.on_state_change(listener_states.append)
    await client.start()
    await client.stop()
    await eventually(lambda: listener_states == [True, False], "listener saw the client go")
    await client.start()
    await client.request(Message(0, ()))
    await listener.stop()
    await listener.start()
    await eventually(client.is_open, "client back after the listener restart")
    await client.request(Message(0, ()))


async def test_concurrent_starts_open_one_connection(clients: ClientFactory) -> None:
    logins: list[str] = []

    def check(username: str, token: str) -> bool:
        logins.append(token)
        return token == SECRET

    server = BtpListener(0, LOOPBACK, auth_check=check)
    await server.start()
    try:
        client = clients(server.port)
        await asyncio.gather(client.start(), client.start(), client.start())
        assert client.is_open()
        assert logins == [SECRET]
    finally:
        await server.stop()


async def test_listener_keepalive_drops_a_peer_that_stopped_reading() -> None:
    server = BtpListener(0, LOOPBACK, incoming_secret=SECRET, ping_interval=0.05, ping_timeout=0.1)
    await server.start()
    try:
        async with connect(f"ws://{LOOPBACK}:{server.port}", ping_interval=None) as frozen:
            await frozen.send(encode(auth_message(1)))
            assert decode(await frozen.recv(decode=False)) == Response(1, ())
            assert server.is_open()
            frozen.transport.pause_reading()  # it will never answer a ping again
            await eventually(lambda: not server.is_open(), "listener dropped the silent peer")
            frozen.transport.abort()
    finally:
        await server.stop()


async def test_client_keepalive_notices_a_dead_listener_and_reconnects(
    listener: BtpListener, clients: ClientFactory
) -> None:
    client = clients(listener.port, ping_interval=0.05, ping_timeout=0.1)
    states: list[bool] = []
    client.on_state_change(states.append)
    await client.start()
    first = listener._active
    assert first is not None
    first._ws.transport.pause_reading()  # the listener side stops answering pings
    await eventually(lambda: states[-2:] == [False, True], "client reconnected")
    assert listener._active is not first
    assert client.is_open()
    first._ws.transport.abort()
