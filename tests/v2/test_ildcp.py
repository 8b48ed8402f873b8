"""ILDCP (RFC 31): `ilp_paychan.ildcp.fetch` against a BtpPlugin listener that answers it."""

from __future__ import annotations

import pytest

import ilp_paychan
from ilp_paychan.codec import ildcp as ildcp_codec
from ilp_paychan.codec import ilp4
from ilp_paychan.ildcp import IldcpError, IldcpInfo, fetch

from .conftest import Pair

ASSET = {"assetCode": "XRP", "assetScale": 9}


async def test_a_listener_assigns_the_configured_address(pair: Pair) -> None:
    await pair.start({"ildcp": {"clientAddress": "test.parent.child", **ASSET}})
    assert await fetch(pair.client) == IldcpInfo("test.parent.child", 9, "XRP")
    assert ilp_paychan.ildcp.fetch is fetch


async def test_an_address_prefix_names_the_client_by_its_username(pair: Pair) -> None:
    await pair.start({"ildcp": {"addressPrefix": "test.parent", **ASSET}}, username="alice")
    info = await fetch(pair.client)
    assert info.client_address == "test.parent.alice"


async def test_a_prefix_without_a_username_is_a_clear_f00(pair: Pair) -> None:
    await pair.start({"ildcp": {"addressPrefix": "test.parent", **ASSET}})
    with pytest.raises(IldcpError, match="no auth_username") as info:
        await fetch(pair.client)
    assert info.value.code == "F00"
    assert info.value.triggered_by == "test.parent"


async def test_a_listener_without_ildcp_options_says_what_is_missing(pair: Pair) -> None:
    await pair.start({"address": "test.parent"})
    with pytest.raises(IldcpError, match='"ildcp" option') as info:
        await fetch(pair.client)
    assert info.value.code == "F00"


async def test_a_data_handler_may_answer_ildcp_itself(pair: Pair) -> None:
    await pair.start()
    answer = ildcp_codec.encode_response(ildcp_codec.IldcpResponse("test.app.me", 2, "USD"))

    async def handler(data: bytes) -> bytes:
        assert ildcp_codec.is_request(ilp4.decode_prepare(data))
        return answer

    pair.server.register_data_handler(handler)
    assert await fetch(pair.client) == IldcpInfo("test.app.me", 2, "USD")


async def test_an_answer_that_is_no_ildcp_response_raises(pair: Pair) -> None:
    await pair.start()

    async def handler(data: bytes) -> bytes:
        return ilp4.encode_fulfill(ilp4.IlpFulfill(ildcp_codec.PEER_PROTOCOL_FULFILLMENT, b"\x05"))

    pair.server.register_data_handler(handler)
    with pytest.raises(IldcpError, match="malformed"):
        await fetch(pair.client)
