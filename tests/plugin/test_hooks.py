"""The plugin's calls into SettlementHooks (what payment-channel modules build on), with a
hand-written hooks object: refusal of an incoming prepare, the claim round trip, side protocols."""

from __future__ import annotations

from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec.btp import Message, ProtocolData, Response
from ilp_paychan.errors import DuplicateIdError, NotAcceptedError, PeerError
from ilp_paychan.plugin.hooks import SettlementHooks
from ilp_paychan.plugin.services import HookServices

from .conftest import client_options, make_transfer, server_options


class Recording(SettlementHooks):
    def __init__(self, claim: Any = None, refuse: BaseException | None = None) -> None:
        self.claim = claim
        self.refuse = refuse
        self.calls: list[tuple[str, Any]] = []

    async def handle_incoming_prepare(self, transfer: dict[str, Any]) -> None:
        self.calls.append(("handle_incoming_prepare", transfer["id"]))
        if self.refuse is not None:
            raise self.refuse

    async def create_outgoing_claim(self, outgoing_fulfilled: str) -> Any:
        self.calls.append(("create_outgoing_claim", outgoing_fulfilled))
        return self.claim

    async def handle_incoming_claim(self, claim: Any) -> None:
        self.calls.append(("handle_incoming_claim", claim))

    async def handle_side_protocols(self, message: Message) -> Response | None:
        names = [pd.protocol_name for pd in message.protocol_data]
        if names == ["ping"]:
            return Response(message.request_id, (ProtocolData("ping", 1, b"pong"),))
        return None


def with_hooks(hooks: SettlementHooks) -> type[Plugin]:
    class HookedPlugin(Plugin):
        def _create_hooks(self, services: HookServices) -> SettlementHooks:
            return hooks

    return HookedPlugin


async def pair_with(
    server_hooks: SettlementHooks, client_hooks: SettlementHooks
) -> tuple[Plugin, Plugin]:
    server = with_hooks(server_hooks)(server_options())
    await server.connect()
    assert server.listener_port is not None
    client = with_hooks(client_hooks)(
        client_options(server.listener_port, store="memory:", maxBalance="100")
    )
    await client.connect()
    return server, client


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        ({"balance": "5", "sig": "x"}, {"balance": "5", "sig": "x"}),
        ("sig(5)", "sig(5)"),
        (b"\x01\x02", b"\x01\x02"),
    ],
    ids=["json", "text", "octets"],
)
async def test_a_claim_rides_on_the_fulfill_response(claim: Any, expected: Any) -> None:
    payee, payer = Recording(), Recording(claim=claim)
    server, client = await pair_with(payee, payer)
    try:
        transfer, fulfillment = make_transfer(client.get_peer_account(), amount="5")
        await client.send_transfer(transfer)
        await server.fulfill_condition(transfer["id"], fulfillment)
        assert ("create_outgoing_claim", "5") in payer.calls
        assert ("handle_incoming_claim", expected) in payee.calls
    finally:
        await client.disconnect()
        await server.disconnect()


async def test_no_claim_means_no_handle_incoming_claim() -> None:
    payee, payer = Recording(), Recording(claim=None)
    server, client = await pair_with(payee, payer)
    try:
        transfer, fulfillment = make_transfer(client.get_peer_account(), amount="5")
        await client.send_transfer(transfer)
        await server.fulfill_condition(transfer["id"], fulfillment)
        assert not [c for c in payee.calls if c[0] == "handle_incoming_claim"]
    finally:
        await client.disconnect()
        await server.disconnect()


@pytest.mark.parametrize(
    ("error", "cls", "code"),
    [
        (NotAcceptedError("exceeds max unsecured balance"), NotAcceptedError, "F00"),
        (DuplicateIdError("dup"), DuplicateIdError, "F04"),
        (ValueError("internal detail"), NotAcceptedError, "F00"),
    ],
)
async def test_a_refusing_prepare_hook_cancels_and_answers_its_error(
    error: BaseException, cls: type[BaseException], code: str
) -> None:
    payee = Recording(refuse=error)
    server, client = await pair_with(payee, Recording())
    try:
        transfer, _ = make_transfer(client.get_peer_account(), amount="5")
        with pytest.raises(cls) as caught:
            await client.send_transfer(transfer)
        assert isinstance(caught.value, PeerError)
        assert caught.value.code == code
        assert (await server.transfer_log.get(transfer["id"]))["state"] == "cancelled"
        assert await server.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
        assert await client.transfer_log.get_outgoing_fulfilled_and_prepared() == "0"
    finally:
        await client.disconnect()
        await server.disconnect()


async def test_unknown_side_protocols_go_to_the_hooks() -> None:
    server, client = await pair_with(Recording(), Recording())
    try:
        response = await client._request(Message(0, (ProtocolData("ping", 1, b""),)), "message")
        assert response.protocol_data == (ProtocolData("ping", 1, b"pong"),)
        with pytest.raises(NotAcceptedError, match="Unsupported side protocol"):
            await client._request(Message(0, (ProtocolData("pong", 1, b""),)), "message")
    finally:
        await client.disconnect()
        await server.disconnect()
