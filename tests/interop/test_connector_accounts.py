"""Every kind of connector account the harness offers, with a JavaScript stand-in where our
Python plugin will be: a BTP 2.0 listener account (child and peer) and a mini-accounts account
dialled by a bare ilp-plugin-btp client, a BTP 2.0 client account dialling a bare ilp-plugin-btp
listener, and an LPI v1 account (ilp-plugin-payment-channel-framework 1.3.5 inside the connector,
wrapped by its ilp-compat-plugin) with the reference v1 client on the other end.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from .connector import HarnessFactory, fulfillment_for
from .jspeer import JsPeer, ensure_node_modules

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


def _sender_fulfiller(**accounts: Any) -> dict[str, Any]:
    return {
        "hosts": {"alice": {"kind": "sender"}, "bob": {"kind": "fulfiller"}},
        "accounts": accounts,
    }


async def test_btp_listener_child_account_gets_its_address_and_traffic(
    harnesses: HarnessFactory,
) -> None:
    conn = await harnesses.start(_sender_fulfiller(kid={"type": "btp-server", "secret": "k1"}))
    assert conn.account("kid")["address"] == "test.conn.kid"
    outside = await harnesses.start(
        {"hosts": {"kid": {"kind": "fulfiller", "server": conn.account_url("kid")}}}
    )
    await conn.wait_connected(account="kid")
    assert (await outside.call("ildcp", host="kid"))["clientAddress"] == "test.conn.kid"
    inbound = await conn.send("alice", "test.conn.kid.app", 9, b"to the child")
    outbound = await outside.send("kid", "test.conn.bob", 8, b"from the child")
    assert inbound["type"] == outbound["type"] == "fulfill"


async def test_btp_listener_peer_account_with_a_configured_route(
    harnesses: HarnessFactory,
) -> None:
    conn = await harnesses.start(
        _sender_fulfiller(
            pal={"type": "btp-server", "secret": "p1", "relation": "peer", "routes": ["test.pal"]}
        )
    )
    outside = await harnesses.start(
        {"hosts": {"pal": {"kind": "fulfiller", "server": conn.account_url("pal")}}}
    )
    await conn.wait_connected(account="pal")
    reply = await conn.send("alice", "test.pal.shop", 12, b"to the peer")
    assert reply["type"] == "fulfill"
    assert (await outside.wait_event("prepare", host="pal"))["destination"] == "test.pal.shop"


async def test_mini_accounts_client_is_addressed_by_its_username(
    harnesses: HarnessFactory,
) -> None:
    conn = await harnesses.start(_sender_fulfiller(mini={"type": "mini-accounts"}))
    port = conn.account("mini")["port"]
    outside = await harnesses.start(
        {"hosts": {"m": {"kind": "fulfiller", "server": f"btp+ws://carol:tok@127.0.0.1:{port}"}}}
    )
    info = await outside.call("ildcp", host="m")
    assert info["clientAddress"] == "test.conn.mini.carol"
    inbound = await conn.send("alice", "test.conn.mini.carol.x", 5, b"to carol")
    outbound = await outside.send("m", "test.conn.bob", 6, b"from carol")
    assert inbound["type"] == outbound["type"] == "fulfill"


async def test_btp_client_account_dials_a_listener_peer(harnesses: HarnessFactory) -> None:
    outside = await harnesses.start(
        {"hosts": {"far": {"kind": "fulfiller", "listener": {"secret": "f1"}}}}
    )
    port = outside.host("far")["port"]
    conn = await harnesses.start(
        _sender_fulfiller(
            far={
                "type": "btp-client",
                "server": f"btp+ws://:f1@127.0.0.1:{port}",
                "relation": "peer",
                "routes": ["test.far"],
            }
        )
    )
    await outside.wait_connected(host="far")
    inbound = await conn.send("alice", "test.far.desk", 3, b"over the client account")
    outbound = await outside.send("far", "test.conn.bob", 4, b"back through it")
    assert inbound["type"] == outbound["type"] == "fulfill"


async def test_lpi1_account_carries_ilpv4_to_a_v1_client(harnesses: HarnessFactory) -> None:
    ensure_node_modules()
    conn = await harnesses.start(
        _sender_fulfiller(
            v1={
                "type": "lpi1-server",
                "options": {
                    "prefix": "test.conn.v1.",
                    "incomingSecret": "v1secret",
                    "maxBalance": "100000",
                    "info": {"currencyCode": "XRP", "currencyScale": 9},
                },
            }
        )
    )
    async with await JsPeer.start({"options": {"server": conn.account_url("v1")}}) as peer:
        await peer.call("connect")
        await conn.wait_connected(account="v1")
        data = b"over LPI v1"
        reply_task = asyncio.ensure_future(conn.send("alice", "test.conn.v1.client.app", 50, data))
        transfer = (await peer.wait_event("incoming_prepare"))[0]
        assert transfer["amount"] == "50"
        assert transfer["to"] == "test.conn.v1.client"
        # ilp-compat-plugin's forwarded payment (type 10) carries the ILPv4 destination and data
        assert base64.urlsafe_b64decode(transfer["ilp"] + "==")[0] == 10
        fulfillment = base64.urlsafe_b64encode(fulfillment_for(data)).rstrip(b"=").decode()
        await peer.call("fulfillCondition", transfer["id"], fulfillment)
        reply = await reply_task
        assert reply["type"] == "fulfill"
        assert base64.b64decode(reply["fulfillment"]) == fulfillment_for(data)
