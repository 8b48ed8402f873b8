"""BtpListener and BtpClient speaking BTP 2.0 over loopback WebSockets (the shared machinery)."""

from __future__ import annotations

import asyncio

import pytest

from ilp_paychan.codec.btp import ContentType, Error, Message, ProtocolData, Response
from ilp_paychan.codec.btp2 import Transfer
from ilp_paychan.errors import InvalidFieldsError, NotAcceptedError, PeerError
from ilp_paychan.transport import BtpClient, BtpListener
from ilp_paychan.transport.events import Request2

LOOPBACK = "127.0.0.1"


async def echo(packet: Request2) -> Response | Error:
    if isinstance(packet, Transfer):
        data = str(packet.amount).encode()
        return Response(0, (ProtocolData("amount", ContentType.TEXT_PLAIN_UTF8, data),))
    return Response(0, packet.protocol_data)


async def test_message_and_transfer_both_ways_with_any_username() -> None:
    listener = BtpListener(0, LOOPBACK, incoming_secret="s", version="2.0")
    listener.set_request_handler(echo)
    await listener.start()
    client = BtpClient(f"btp+ws://someone:s@{LOOPBACK}:{listener.port}", version="2.0")
    client.set_request_handler(echo)
    try:
        await client.start()
        assert client.version == listener.version == "2.0"
        ilp = ProtocolData("ilp", ContentType.OCTET_STREAM, b"\x0c\x01\x00")
        answers = await asyncio.gather(
            *(client.request(Message(0, (ilp,))) for _ in range(50)),
            client.request(Transfer(0, 123)),
        )
        assert answers[0].protocol_data == (ilp,)
        assert answers[-1].protocol_data[0].data == b"123"
        for _ in range(200):
            if listener.is_open():
                break
            await asyncio.sleep(0.01)
        back = await listener.request(Transfer(0, 7))
        assert back.protocol_data[0].data == b"7"
    finally:
        await client.stop()
        await listener.stop()


async def test_a_wrong_token_is_refused_with_ilp_plugin_btps_text() -> None:
    listener = BtpListener(0, LOOPBACK, incoming_secret="s", version="2.0")
    await listener.start()
    client = BtpClient(f"btp+ws://:wrong@{LOOPBACK}:{listener.port}", version="2.0")
    try:
        with pytest.raises(NotAcceptedError) as info:
            await client.start()
        assert isinstance(info.value, PeerError)
        assert info.value.data == "invalid auth_token"
    finally:
        await client.stop()
        await listener.stop()


def test_the_version_option_is_checked() -> None:
    with pytest.raises(InvalidFieldsError, match='"version"'):
        BtpClient("btp+ws://:s@127.0.0.1:1", version="3")
