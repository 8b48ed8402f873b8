"""The connector harness itself, JavaScript on every end: ilp-connector 23 in a node child process
carries Prepares from a JS sender to a JS fulfiller, STREAM payments (ilp-protocol-stream
2.7.2-alpha.3) from a JS client to a JS server (SPSP over HTTP too), and refuses a packet above
an account's maxPacketAmount with F08. The Python-side interop tests build on the same harness.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from .connector import (
    ConnectorHarness,
    HarnessError,
    HarnessFactory,
    condition_for,
    fulfillment_for,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

SENDER_MAX_PACKET = "1000"
PAYER_MAX_PACKET = "2000"


def _config() -> dict[str, Any]:
    return {
        "address": "test.conn",
        "hosts": {
            "alice": {"kind": "sender", "account": {"maxPacketAmount": SENDER_MAX_PACKET}},
            "bob": {"kind": "fulfiller", "fulfillData": base64.b64encode(b"thanks").decode()},
            "srv": {"kind": "stream-server"},
            "cli": {"kind": "stream-client", "account": {"maxPacketAmount": PAYER_MAX_PACKET}},
        },
    }


@pytest.fixture
async def harness(harnesses: HarnessFactory) -> ConnectorHarness:
    return await harnesses.start(_config())


async def test_ready_reports_addresses_from_ildcp(harness: ConnectorHarness) -> None:
    assert harness.address == "test.conn"
    for name in ("alice", "bob", "srv", "cli"):
        assert harness.host_address(name) == f"test.conn.{name}"
    assert harness.host("srv")["spsp"].startswith("http://127.0.0.1:")
    status = await harness.call("status")
    assert all(account["connected"] for account in status["accounts"].values())


async def test_sender_to_fulfiller_through_the_connector(harness: ConnectorHarness) -> None:
    data = b"pay bob"
    reply = await harness.send("alice", "test.conn.bob.inbox", 700, data)
    assert reply["type"] == "fulfill", reply
    assert base64.b64decode(reply["fulfillment"]) == fulfillment_for(data)
    assert base64.b64decode(reply["data"]) == b"thanks"
    seen = await harness.wait_event("prepare", host="bob")
    # one-to-one rate and no spread: the amount arrives unchanged
    assert seen["amount"] == "700"
    assert seen["destination"] == "test.conn.bob.inbox"
    assert base64.b64decode(seen["executionCondition"]) == condition_for(data)
    assert seen["outcome"] == "fulfill"


async def test_fulfiller_rejects_when_told_and_on_a_wrong_condition(
    harness: ConnectorHarness,
) -> None:
    wrong = await harness.send("alice", "test.conn.bob", 5, b"x", condition=bytes(32))
    assert (wrong["type"], wrong["code"]) == ("reject", "F05")
    await harness.set_mode("bob", "reject", code="F99", message="not today")
    reply = await harness.send("alice", "test.conn.bob", 5, b"y")
    assert reply["type"] == "reject"
    assert (reply["code"], reply["message"]) == ("F99", "not today")
    assert reply["triggeredBy"] == "test.conn.bob"
    await harness.set_mode("bob", "fulfil")
    assert (await harness.send("alice", "test.conn.bob", 5, b"z"))["type"] == "fulfill"


async def test_no_route_is_f02_from_the_connector(harness: ConnectorHarness) -> None:
    reply = await harness.send("alice", "test.nowhere.at.all", 1, b"lost")
    assert (reply["type"], reply["code"], reply["triggeredBy"]) == ("reject", "F02", "test.conn")


async def test_packet_above_max_packet_amount_gets_f08(harness: ConnectorHarness) -> None:
    over = int(SENDER_MAX_PACKET) + 1
    reply = await harness.send("alice", "test.conn.bob", over, b"too big")
    assert (reply["type"], reply["code"]) == ("reject", "F08")
    assert reply["amountTooLarge"] == {
        "receivedAmount": str(over),
        "maximumAmount": SENDER_MAX_PACKET,
    }
    assert not harness.events_named("prepare", host="bob")
    at_limit = await harness.send("alice", "test.conn.bob", SENDER_MAX_PACKET, b"just right")
    assert at_limit["type"] == "fulfill"


@pytest.mark.parametrize("amount", [1, 1500, 60_000])
async def test_stream_client_pays_stream_server(harness: ConnectorHarness, amount: int) -> None:
    destination, secret = await harness.generate("srv")
    receipt = await harness.pay("cli", amount, destination=destination, secret=secret)
    assert receipt["sent"] == receipt["delivered"] == str(amount)
    assert receipt["sourceAccount"] == "test.conn.cli"
    if amount > int(PAYER_MAX_PACKET):
        # the connector's maxPacketAmount splits the payment (F08 tells the sender the size)
        assert receipt["packets"]["fulfilled"] >= amount // int(PAYER_MAX_PACKET)
    received = await harness.received("srv")
    assert received["connections"][destination]["total"] == str(amount)
    assert received["total"] == str(amount)


async def test_stream_money_and_data_with_events(harness: ConnectorHarness) -> None:
    destination, secret = await harness.generate("srv", connection_tag="order42")
    receipt = await harness.pay(
        "cli", 4321, destination=destination, secret=secret, data=b"invoice 42"
    )
    assert receipt["delivered"] == "4321"
    event = await harness.wait_event("stream_data", connection=destination)
    assert base64.b64decode(event["data"]) == b"invoice 42"
    opened = await harness.wait_event("stream_connection", connection=destination)
    assert opened["connectionTag"] == "order42"
    money = harness.events_named("stream_money", connection=destination)
    assert sum(int(e["amount"]) for e in money) == 4321
    assert money[-1]["total"] == "4321"


def _http_get(url: str, accept: str | None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as err:
        return err.code, "", err.read()


async def test_spsp_both_ways(harness: ConnectorHarness) -> None:
    url = harness.host("srv")["spsp"]
    status, content_type, body = await asyncio.to_thread(_http_get, url, "application/spsp4+json")
    assert (status, content_type) == (200, "application/spsp4+json")
    answer = json.loads(body)
    assert answer["destination_account"].startswith("test.conn.srv.")
    assert len(base64.b64decode(answer["shared_secret"])) == 32
    refused, _, _ = await asyncio.to_thread(_http_get, url, "text/html")
    assert refused == 406

    receipt = await harness.pay("cli", 2500, spsp=url)
    assert receipt["delivered"] == "2500"
    received = await harness.received("srv")
    assert received["connections"][receipt["destination"]]["total"] == "2500"


async def test_pay_errors_name_the_field(harness: ConnectorHarness) -> None:
    with pytest.raises(HarnessError, match="secret must be 32 bytes"):
        await harness.pay("cli", 10, destination="test.conn.srv.x", secret=b"short")
    with pytest.raises(HarnessError, match="unknown host"):
        await harness.call("send", host="nobody", destination="test.conn.bob")


async def test_stand_alone_btp_peers_both_ways(harnesses: HarnessFactory) -> None:
    """Two bare ilp-plugin-btp peers (no connector), as the Python plugin's tests will pair them."""
    server = await harnesses.start(
        {"hosts": {"srv": {"kind": "fulfiller", "listener": {"secret": "tok"}}}}
    )
    port = server.host("srv")["port"]
    client = await harnesses.start(
        {"hosts": {"cli": {"kind": "fulfiller", "server": f"btp+ws://:tok@127.0.0.1:{port}"}}}
    )
    await server.wait_connected(host="srv")
    to_server = await client.send("cli", "test.srv", 3, b"up")
    to_client = await server.send("srv", "test.cli", 4, b"down")
    assert to_server["type"] == to_client["type"] == "fulfill"
    assert (await server.wait_event("prepare", host="srv"))["amount"] == "3"
    assert (await client.wait_event("prepare", host="cli"))["amount"] == "4"
    bulk = await client.call(
        "send_many", host="cli", destination="test.srv", amount="1", count=200, inFlight=20
    )
    assert bulk["fulfill"] == 200
