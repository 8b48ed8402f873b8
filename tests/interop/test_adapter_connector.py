"""Our v1 `Plugin` behind `V1Adapter` as the far end of an LPI v1 account of ilp-connector 23
(ilp-plugin-payment-channel-framework 1.3.5 inside the connector, wrapped by its
ilp-compat-plugin), over BTP 1.0: ILPv4 both ways through the connector, to and from JS hosts.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ilp_paychan import V1Adapter
from ilp_paychan.codec import ildcp, ilp4

from .connector import ConnectorHarness, HarnessFactory, condition_for, fulfillment_for
from .setups import V1_PREFIX, lpi1_account, v1_link

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

PREFIX = V1_PREFIX
WAIT = 30.0


def _config() -> dict[str, Any]:
    return {
        "hosts": {"alice": {"kind": "sender"}, "bob": {"kind": "fulfiller"}},
        "accounts": {"v1": lpi1_account("1000000")},
    }


@pytest.fixture
async def linked(
    harnesses: HarnessFactory,
) -> AsyncIterator[tuple[ConnectorHarness, V1Adapter]]:
    """The connector with its LPI v1 listener account and our adapted v1 client dialling it."""
    async with v1_link(harnesses, _config()) as link:
        yield link


def _prepare(destination: str, amount: int, data: bytes) -> bytes:
    return ilp4.encode(
        ilp4.IlpPrepare(
            amount,
            datetime.now(UTC) + timedelta(seconds=20),
            condition_for(data),
            destination,
            data,
        )
    )


async def test_a_prepare_from_a_js_sender_is_fulfilled_by_our_side(
    linked: tuple[ConnectorHarness, V1Adapter],
) -> None:
    conn, adapter = linked
    seen: list[ilp4.IlpPrepare] = []

    async def fulfil(data: bytes) -> bytes:
        prepare = ilp4.decode_prepare(data)
        seen.append(prepare)
        return ilp4.encode(ilp4.IlpFulfill(fulfillment_for(prepare.data), b"receipt"))

    adapter.register_data_handler(fulfil)
    data = os.urandom(40)
    reply = await conn.send("alice", PREFIX + "client.app", 50, data)
    assert reply["type"] == "fulfill", reply
    assert reply["data"] == "cmVjZWlwdA=="  # b"receipt", carried back in the type 9 packet
    (prepare,) = seen
    assert (prepare.amount, prepare.destination, prepare.data) == (50, PREFIX + "client.app", data)
    assert await adapter.plugin.get_balance() == "50"


async def test_ours_through_the_connector_to_a_js_fulfiller_is_fulfilled(
    linked: tuple[ConnectorHarness, V1Adapter],
) -> None:
    conn, adapter = linked
    data = os.urandom(40)
    async with asyncio.timeout(WAIT):
        reply = ilp4.decode_reply(await adapter.send_data(_prepare("test.conn.bob.x", 33, data)))
    assert reply == ilp4.IlpFulfill(fulfillment_for(data), b"")
    event = await conn.wait_event("prepare", host="bob")
    assert (event["amount"], event["destination"]) == ("33", "test.conn.bob.x")
    assert await adapter.plugin.get_balance() == "-33"


async def test_rejects_keep_code_and_message_both_ways(
    linked: tuple[ConnectorHarness, V1Adapter],
) -> None:
    conn, adapter = linked

    async def refuse(data: bytes) -> bytes:
        return ilp4.encode(ilp4.IlpReject("F99", PREFIX + "client", "not today", b"why"))

    adapter.register_data_handler(refuse)
    inbound = await conn.send("alice", PREFIX + "client.app", 5, b"x")
    assert (inbound["type"], inbound["code"], inbound["message"]) == ("reject", "F99", "not today")
    assert inbound["data"] == "d2h5"  # b"why"

    await conn.set_mode("bob", "reject", code="F06", message="unexpected")
    async with asyncio.timeout(WAIT):
        outbound = ilp4.decode_reply(await adapter.send_data(_prepare("test.conn.bob.y", 7, b"y")))
    assert isinstance(outbound, ilp4.IlpReject)
    assert (outbound.code, outbound.message) == ("F06", "unexpected")
    assert await adapter.plugin.get_balance() == "0"


async def test_no_route_comes_back_as_the_connectors_f02(
    linked: tuple[ConnectorHarness, V1Adapter],
) -> None:
    _, adapter = linked
    async with asyncio.timeout(WAIT):
        reply = ilp4.decode_reply(await adapter.send_data(_prepare("test.nowhere.z", 3, b"z")))
    assert isinstance(reply, ilp4.IlpReject)
    assert reply.code == "F02"


async def test_ildcp_on_the_v1_link_is_answered_from_our_own_info(
    linked: tuple[ConnectorHarness, V1Adapter],
) -> None:
    _, adapter = linked
    request = ildcp.encode_request(ildcp.IldcpRequest(datetime.now(UTC) + timedelta(seconds=30)))
    answer = ildcp.decode_response(await adapter.send_data(request))
    assert answer == ildcp.IldcpResponse(PREFIX + "client", 9, "XRP")


async def test_expiry_both_ways(linked: tuple[ConnectorHarness, V1Adapter]) -> None:
    """Ours: the connector's R00. Theirs: the framework's own expiry timer cancels the transfer
    with no reason, ilp-compat-plugin 2.0.3 cannot read that and the connector answers F02
    "failed to send packet: Cannot destructure property 'code' of 'reason'..." (a JS-side
    fault); our R00 Reject, sent at the same instant, wins only sometimes."""
    conn, adapter = linked
    never = asyncio.Event()

    async def hang(data: bytes) -> bytes:
        await never.wait()
        raise AssertionError("unreachable")

    adapter.register_data_handler(hang)
    try:
        inbound = await conn.send("alice", PREFIX + "client.app", 5, b"x", expires_in_ms=3000)
        assert inbound["type"] == "reject"
        assert inbound["code"] in ("F02", "R00"), inbound

        await conn.set_mode("bob", "hang")
        packet = ilp4.encode(
            ilp4.IlpPrepare(
                7,
                datetime.now(UTC) + timedelta(seconds=3),
                condition_for(b"y"),
                "test.conn.bob.y",
                b"y",
            )
        )
        async with asyncio.timeout(WAIT):
            outbound = ilp4.decode_reply(await adapter.send_data(packet))
        assert isinstance(outbound, ilp4.IlpReject)
        assert outbound.code == "R00"
        assert await adapter.plugin.get_balance() == "0"
    finally:
        never.set()


async def test_zero_amount_prepares(linked: tuple[ConnectorHarness, V1Adapter]) -> None:
    """An LPI v1 transfer cannot be of 0. Ours travels as a v1 message whose ilp is the
    Prepare, which ilp-compat-plugin hands to the connector: fulfilled. The connector's own
    goes through ilp-compat-plugin to the framework's sendTransfer, which refuses it: F02."""
    conn, adapter = linked
    seen: list[ilp4.IlpPrepare] = []

    async def fulfil(data: bytes) -> bytes:
        seen.append(ilp4.decode_prepare(data))
        return ilp4.encode(ilp4.IlpFulfill(fulfillment_for(seen[-1].data)))

    adapter.register_data_handler(fulfil)
    async with asyncio.timeout(WAIT):
        ours = ilp4.decode_reply(await adapter.send_data(_prepare("test.conn.bob.z", 0, b"z")))
    assert ours == ilp4.IlpFulfill(fulfillment_for(b"z"))
    assert (await conn.wait_event("prepare", host="bob"))["amount"] == "0"

    theirs = await conn.send("alice", PREFIX + "client.app", 0, b"w")
    assert (theirs["type"], theirs["code"]) == ("reject", "F02")
    assert "must be positive" in theirs["message"]
    assert seen == []


async def test_fifty_in_flight_each_way(linked: tuple[ConnectorHarness, V1Adapter]) -> None:
    conn, adapter = linked

    async def fulfil(data: bytes) -> bytes:
        prepare = ilp4.decode_prepare(data)
        return ilp4.encode(ilp4.IlpFulfill(fulfillment_for(prepare.data)))

    adapter.register_data_handler(fulfil)
    payloads = [os.urandom(16) for _ in range(50)]
    async with asyncio.timeout(WAIT):
        ours = await asyncio.gather(
            *(adapter.send_data(_prepare("test.conn.bob.m", 2, p)) for p in payloads)
        )
        theirs = await asyncio.gather(
            *(conn.send("alice", PREFIX + "client.m", 3, p) for p in payloads)
        )
    assert [ilp4.decode_reply(r) for r in ours] == [
        ilp4.IlpFulfill(fulfillment_for(p)) for p in payloads
    ]
    assert [r["type"] for r in theirs] == ["fulfill"] * 50
    assert await adapter.plugin.get_balance() == str(50 * 3 - 50 * 2)
