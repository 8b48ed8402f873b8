"""The reference's sendSpec.js "Send" tests: requests, responses and the request handler."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.ilp import IlpError, decode_ilp
from ilp_paychan.errors import (
    InvalidFieldsError,
    NotAcceptedError,
    PeerError,
    PeerTimeoutError,
    RequestHandlerAlreadyRegisteredError,
)

from .conftest import PREFIX, Pair, RawPeer


async def test_rpc_should_throw_an_error_on_an_error_code(pair: Pair) -> None:
    """The error class is reconstructed (the reference gave a JSON message)."""
    with pytest.raises(NotAcceptedError) as caught:
        await pair.server.send_request({"to": "example.red.client", "custom": {"hello": "client"}})
    assert isinstance(caught.value, PeerError)
    assert (caught.value.code, caught.value.name) == ("F00", "NotAcceptedError")
    assert "no request handler registered" in str(caught.value)


async def test_send_request_should_send_a_request(pair: Pair) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(message: dict[str, Any]) -> dict[str, Any]:
        seen.append(message)
        return {"to": message["from"], "ilp": "cG9uZw", "custom": {"echo": message["custom"]}}

    pair.server.register_request_handler(handler)
    result = await pair.client.send_request(
        {"to": "example.red.server", "ilp": "cGluZw", "custom": {"n": 1}}
    )
    assert result["ilp"] == "cG9uZw"
    assert result["custom"] == {"echo": {"n": 1}}
    assert pair.client_events["outgoing_request"] == [
        ({"to": "example.red.server", "ilp": "cGluZw", "custom": {"n": 1}},)
    ]
    assert pair.client_events["incoming_response"] == [(result,)]
    [message] = seen
    assert message["ilp"] == "cGluZw"
    assert message["custom"] == {"n": 1}


async def test_send_request_should_respond_to_a_request(pair: Pair) -> None:
    """`incoming_request` carries `ledger` (and the BTP request id as `id`)."""
    pair.server.register_request_handler(lambda m: {"to": m["from"], "custom": {"ok": True}})
    await pair.client.send_request({"to": "example.red.server", "custom": {"q": 1}})
    [(request,)] = pair.server_events["incoming_request"]
    assert isinstance(request["id"], int)
    assert {k: v for k, v in request.items() if k != "id"} == {
        "to": "example.red.server",
        "from": "example.red.client",
        "ledger": PREFIX,
        "custom": {"q": 1},
    }
    assert pair.server_events["outgoing_response"] == [
        ({"to": "example.red.client", "custom": {"ok": True}},)
    ]


async def test_send_request_should_return_an_ilp_error_if_the_request_handler_errors(
    pair: Pair,
) -> None:
    async def handler(message: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("handler says no")

    pair.server.register_request_handler(handler)
    result = await pair.client.send_request({"to": "example.red.server", "ilp": "cGluZw"})
    raw = base64.urlsafe_b64decode(result["ilp"] + "==")
    error = decode_ilp(raw)
    assert isinstance(error, IlpError)
    assert (error.code, error.name, error.triggered_by, error.forwarded_by) == (
        "F00",
        "Bad Request",
        "example.red.server",
        (),
    )
    assert error.data == b'{"message":"handler says no"}'


async def test_send_request_should_throw_if_a_handler_is_already_registered(pair: Pair) -> None:
    pair.server.register_request_handler(lambda m: m)
    with pytest.raises(
        RequestHandlerAlreadyRegisteredError, match="requestHandler is already registered"
    ):
        pair.server.register_request_handler(lambda m: m)


async def test_send_request_should_throw_if_no_handler_is_registered(pair: Pair) -> None:
    pair.server.register_request_handler(lambda m: m)
    pair.server.deregister_request_handler()
    with pytest.raises(PeerError, match="no request handler registered"):
        await pair.client.send_request({"to": "example.red.server", "ilp": "cGluZw"})


async def test_a_handler_returning_a_plain_object_is_answered(pair: Pair) -> None:
    """Probe request-handler-non-promise: the reference answered F00 `TypeError`."""
    pair.server.register_request_handler(lambda m: {"to": m["from"], "ilp": "AA"})
    assert (await pair.client.send_request({"to": "example.red.server", "ilp": "AQ"}))[
        "ilp"
    ] == "AA"


async def test_an_invalid_handler_answer_is_invalid_fields(pair: Pair) -> None:
    pair.server.register_request_handler(lambda m: {"ilp": "AA"})  # no `to`
    with pytest.raises(InvalidFieldsError, match="destination"):
        await pair.client.send_request({"to": "example.red.server", "ilp": "AQ"})


async def test_send_request_should_throw_an_error_on_no_response() -> None:
    """A peer that authenticates and then never answers: PeerTimeoutError after requestTimeout."""

    async def silent(ws: ServerConnection) -> None:
        async for frame in ws:
            packet = btp.decode(frame)  # type: ignore[arg-type]
            if any(pd.protocol_name == "auth" for pd in getattr(packet, "protocol_data", ())):
                await ws.send(btp.encode(btp.Response(packet.request_id, ())))

    async with serve(silent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = Plugin(
            {
                "server": f"btp+ws://:x@127.0.0.1:{port}",
                "prefix": "p.",
                "info": {},
                "requestTimeout": 0.2,
            }
        )
        await client.connect()
        try:
            with pytest.raises(PeerTimeoutError):
                await client.send_request({"to": "p.server", "ilp": "AQ"})
        finally:
            await client.disconnect()


async def test_send_request_should_not_send_without_an_account_or_to(pair: Pair) -> None:
    with pytest.raises(InvalidFieldsError, match="must have a destination"):
        await pair.client.send_request({"ilp": "AQ"})


async def test_send_request_should_not_send_with_incorrect_ledger(pair: Pair) -> None:
    with pytest.raises(InvalidFieldsError, match="must match ILP prefix"):
        await pair.client.send_request({"to": "example.red.server", "ledger": "bogus", "ilp": "AQ"})


async def test_ilp_beats_info_and_balance_beats_limit(listener: Plugin, raw: RawPeer) -> None:
    """Probe custom-and-ilp-priority."""
    listener.register_request_handler(lambda m: {"to": m["from"], "custom": {"seen": sorted(m)}})
    answer = await raw.request(
        btp.Message(0, (btp.ProtocolData("info", 0, b"\x02"), btp.ProtocolData("ilp", 0, b"\x01")))
    )
    assert isinstance(answer, btp.Response)
    assert answer.protocol_data[0].protocol_name == "custom"
    answer = await raw.request(
        btp.Message(
            0, (btp.ProtocolData("limit", 0, b"\x00"), btp.ProtocolData("balance", 0, b"\x00"))
        )
    )
    assert isinstance(answer, btp.Response)
    assert answer.protocol_data == (btp.ProtocolData("balance", 0, bytes(8)),)


async def test_requests_are_answered_concurrently(pair: Pair) -> None:
    release = asyncio.Event()

    async def handler(message: dict[str, Any]) -> dict[str, Any]:
        if message["custom"]["n"] == 0:
            await release.wait()
        else:
            release.set()
        return {"to": message["from"], "custom": message["custom"]}

    pair.server.register_request_handler(handler)
    results = await asyncio.gather(
        *(
            pair.client.send_request({"to": "example.red.server", "custom": {"n": n}})
            for n in range(2)
        )
    )
    assert [r["custom"]["n"] for r in results] == [0, 1]
