"""The reference's infoSpec.js tests: balance, limit, info, is_authorized, auth, disconnect."""

from __future__ import annotations

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import Fulfill, Message, ProtocolData

from .conftest import INFO, PREFIX, SECRET, Pair, RawPeer


async def test_get_balance_should_start_at_zero(listener: Plugin) -> None:
    assert await listener.get_balance() == "0"


async def test_get_limit_returns_the_peers_limit_negated(pair: Pair) -> None:
    assert await pair.client.get_limit() == "-1000"


async def test_get_limit_of_a_stateless_peer_is_minus_infinity(pair: Pair) -> None:
    """Transcript 05: a stateless peer answers "Infinity"."""
    assert await pair.server.get_limit() == "-Infinity"


async def test_handles_get_limit_requests(raw: RawPeer) -> None:
    answer = await raw.request(Message(0, (ProtocolData("limit", 2, b"[]"),)))
    assert isinstance(answer, btp.Response)
    assert answer.protocol_data == (ProtocolData("limit", 2, b'"1000"'),)


async def test_get_peer_balance_is_zero_not_minus_zero(pair: Pair) -> None:
    """The reference negated textually and answered "-0"."""
    assert await pair.client.get_peer_balance() == "0"
    assert await pair.server.get_peer_balance() == "0"


async def test_get_info_should_use_the_supplied_info(listener: Plugin) -> None:
    assert listener.get_info() == {**INFO, "prefix": PREFIX}


async def test_get_info_should_return_the_full_info(raw: RawPeer) -> None:
    answer = await raw.request(Message(0, (ProtocolData("info", 0, b"\x02"),)))
    assert isinstance(answer, btp.Response)
    [entry] = answer.protocol_data
    assert (entry.protocol_name, entry.content_type) == ("info", 2)
    import json

    assert json.loads(entry.data) == {**INFO, "prefix": PREFIX}


async def test_info_other_than_02_answers_the_account(raw: RawPeer) -> None:
    """Transcript 09: info 00 → own account as text."""
    answer = await raw.request(Message(0, (ProtocolData("info", 0, b"\x00"),)))
    assert isinstance(answer, btp.Response)
    assert answer.protocol_data == (ProtocolData("info", 1, b"example.red.server"),)


def test_is_authorized_should_authorize_its_own_auth_token() -> None:
    plugin = Plugin({"server": "btp+ws://:s@127.0.0.1:1", "token": "tok"})
    assert plugin.is_authorized("tok")


def test_is_authorized_should_not_authorize_any_other_token() -> None:
    plugin = Plugin({"server": "btp+ws://:s@127.0.0.1:1", "token": "tok"})
    assert not plugin.is_authorized("any other token")
    assert not Plugin({"server": "btp+ws://:s@127.0.0.1:1"}).is_authorized("any")


def _auth_error(answer: btp.Packet, code: str, name: str, message: str) -> None:
    assert isinstance(answer, btp.Error), answer
    assert (answer.request_id, answer.code, answer.name) == (100, code, name)
    assert answer.data == '{"message":"' + message.replace('"', '\\"') + '"}'


async def _first_packet(listener: Plugin, packet: btp.Packet) -> btp.Packet:
    assert listener.listener_port is not None
    peer = await RawPeer.open(listener.listener_port, auth=None)
    try:
        future = await peer.send(packet)
        import asyncio

        return await asyncio.wait_for(future, 5)
    finally:
        await peer.close()


async def test_should_deny_an_authentication_request_with_wrong_method(listener: Plugin) -> None:
    answer = await _first_packet(
        listener, Fulfill(100, "5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1", b"\0" * 32)
    )
    _auth_error(answer, "F01", "InvalidFieldsError", "invalid method on unauthenticated socket")


async def test_should_deny_an_authentication_request_with_no_auth_protocol(
    listener: Plugin,
) -> None:
    answer = await _first_packet(listener, Message(100, ()))
    _auth_error(
        answer,
        "F01",
        "InvalidFieldsError",
        "auth must be primary protocol on unauthenticated message",
    )


async def test_should_deny_an_authentication_request_with_no_auth_token(listener: Plugin) -> None:
    answer = await _first_packet(listener, Message(100, (ProtocolData("auth", 0, b""),)))
    _auth_error(answer, "F01", "InvalidFieldsError", 'missing "auth_token" secondary protocol')


async def test_should_deny_an_authentication_request_with_no_auth_username(
    listener: Plugin,
) -> None:
    pd = (ProtocolData("auth", 0, b""), ProtocolData("auth_token", 1, SECRET.encode()))
    answer = await _first_packet(listener, Message(100, pd))
    _auth_error(answer, "F01", "InvalidFieldsError", 'missing "auth_username" secondary protocol')


async def test_should_deny_an_authentication_request_with_invalid_token(listener: Plugin) -> None:
    pd = (
        ProtocolData("auth", 0, b""),
        ProtocolData("auth_token", 1, b"garbage"),
        ProtocolData("auth_username", 1, b""),
    )
    answer = await _first_packet(listener, Message(100, pd))
    _auth_error(answer, "F00", "NotAcceptedError", "invalid auth token and/or username")


async def test_should_accept_an_authentication_request_with_valid_credentials(
    listener: Plugin,
) -> None:
    pd = (
        ProtocolData("auth", 0, b""),
        ProtocolData("auth_token", 1, SECRET.encode()),
        ProtocolData("auth_username", 1, b""),
    )
    answer = await _first_packet(listener, Message(100, pd))
    assert answer == btp.Response(100, ())


async def test_should_disconnect_when_connected(listener: Plugin) -> None:
    await listener.disconnect()
    assert not listener.is_connected()


async def test_should_stay_disconnected_when_disconnected(listener: Plugin) -> None:
    await listener.disconnect()
    await listener.disconnect()
    assert not listener.is_connected()


async def test_should_reconnect_and_the_listener_serves_again(pair: Pair) -> None:
    """The reference's listener never reopened after disconnect()."""
    await pair.server.disconnect()
    await pair.server.connect()
    assert pair.server.is_connected()
    assert await pair.client.get_peer_balance() == "0"  # the client redialled the listener
