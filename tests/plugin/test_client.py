"""The reference's clientSpec.js tests: a stateless client against a real listener."""

from __future__ import annotations

import pytest

from ilp_paychan import Plugin
from ilp_paychan.errors import NotAcceptedError, PeerError

from .conftest import INFO, PREFIX, Pair, make_transfer


def test_should_parse_the_btp_uri_correctly() -> None:
    plugin = Plugin({"server": "btp+wss://user:shhh%20secret@example.com/rpc"})
    link = plugin._create_link()
    url = link.url  # type: ignore[attr-defined]
    assert (url.ws_url, url.username, url.token) == ("wss://example.com/rpc", "user", "shhh secret")


async def test_should_get_info_from_rpc_endpoint(pair: Pair) -> None:
    assert pair.client.get_info() == {**INFO, "prefix": PREFIX}
    assert pair.client.get_account() == "example.red.client"
    assert pair.client.get_peer_account() == "example.red.server"


async def test_should_get_balance_from_peer(pair: Pair) -> None:
    transfer, fulfillment = make_transfer(pair.server.get_peer_account(), amount="5")
    await pair.server.send_transfer(transfer)
    await pair.client.fulfill_condition(transfer["id"], fulfillment)
    assert await pair.server.get_balance() == "-5"
    assert await pair.client.get_balance() == "5"  # asked the peer and negated


async def test_should_send_a_request(pair: Pair) -> None:
    pair.server.register_request_handler(lambda message: {"to": message["from"], "ilp": "cG9uZw"})
    result = await pair.client.send_request(
        {"to": "example.red.server", "ilp": "cGluZw", "id": "m1"}
    )
    assert result == {
        "id": "m1",
        "to": "example.red.client",
        "from": "example.red.server",
        "ledger": PREFIX,
        "ilp": "cG9uZw",
    }


async def test_should_prepare_and_execute_a_transfer(pair: Pair) -> None:
    transfer, fulfillment = make_transfer(
        "example.red.server", ilp="AQID", custom={"field": "some stuff"}
    )
    await pair.client.send_transfer(transfer)
    [(prepared,)] = pair.client_events["outgoing_prepare"]
    assert prepared == {**transfer, "ledger": PREFIX, "expiresAt": prepared["expiresAt"]}
    await pair.server.fulfill_condition(transfer["id"], fulfillment, "BAUG")
    [(fulfilled, preimage, ilp)] = await pair.client_events.wait("outgoing_fulfill")
    assert (fulfilled["id"], preimage, ilp) == (transfer["id"], fulfillment, "BAUG")


async def test_should_receive_and_fulfill_a_transfer(pair: Pair) -> None:
    transfer, fulfillment = make_transfer("example.red.client", amount="3")
    await pair.server.send_transfer(transfer)
    [(incoming,)] = pair.client_events["incoming_prepare"]
    assert incoming["from"] == "example.red.server"
    await pair.client.fulfill_condition(transfer["id"], fulfillment)
    [(fulfilled, preimage, ilp)] = pair.client_events["incoming_fulfill"]
    assert (fulfilled["id"], preimage, ilp) == (transfer["id"], fulfillment, None)
    await pair.server_events.wait("outgoing_fulfill")


async def test_should_not_send_a_transfer_if_peer_gives_error(pair: Pair) -> None:
    transfer, _ = make_transfer("example.red.server", amount="1001")
    with pytest.raises(PeerError) as caught:
        await pair.client.send_transfer(transfer)
    assert isinstance(caught.value, NotAcceptedError)
    assert caught.value.code == "F00"
    assert pair.client_events["outgoing_prepare"] == []
    log = pair.client.transfer_log
    assert await log.get_outgoing_fulfilled_and_prepared() == "0"  # released, unlike the reference
    assert (await log.get(transfer["id"]))["state"] == "cancelled"


async def test_a_client_with_another_prefix_refuses_to_connect(pair: Pair) -> None:
    port = pair.server.listener_port
    assert port is not None
    client = Plugin({"server": f"btp+ws://:shared_secret@127.0.0.1:{port}", "prefix": "other."})
    with pytest.raises(NotAcceptedError, match="Remote prefix does not match configured prefix"):
        await client.connect()
    assert not client.is_connected()


async def test_a_client_with_prefix_and_info_does_not_ask_for_info(pair: Pair) -> None:
    port = pair.server.listener_port
    assert port is not None
    info = {"prefix": "example.red.", "currencyCode": "EUR", "currencyScale": 1, "connectors": []}
    client = Plugin(
        {
            "server": f"btp+ws://:shared_secret@127.0.0.1:{port}",
            "prefix": "example.red.",
            "info": info,
        }
    )
    await client.connect()
    try:
        assert client.get_info() == info  # its own, not the server's
    finally:
        await client.disconnect()
