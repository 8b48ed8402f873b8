"""Connector configurations and connected Python ends that several interop test files share.

The STREAM, SPSP and LPI v1 tests each start ilp-connector 23 (tests/interop/js_connector) with
an account for our side and ilp-protocol-stream hosts on accounts of their own; the pieces of
that set-up that are the same everywhere are built here, so each test file states only what
differs (its packet maximum, its account's balance limit).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ilp_paychan import Plugin, V1Adapter
from ilp_paychan.v2.plugin import BtpPlugin

from .connector import ConnectorHarness, HarnessFactory

#: The ILP address prefix of the connector's LPI v1 account (its client is <prefix>client).
V1_PREFIX = "test.conn.v1."


def lpi1_account(max_balance: str, max_packet: int | None = None) -> dict[str, Any]:
    """The connector's LPI v1 listener account ("v1" in a config) for our adapted v1 client:
    XRP at scale 9, at most `max_balance` owed to it, and `max_packet` as the path's maximum
    packet amount when given."""
    account: dict[str, Any] = {"type": "lpi1-server"}
    if max_packet is not None:
        account["maxPacketAmount"] = str(max_packet)
    account["options"] = {
        "prefix": V1_PREFIX,
        "incomingSecret": "v1secret",
        "maxBalance": max_balance,
        "info": {"currencyCode": "XRP", "currencyScale": 9},
    }
    return account


def stream_hosts(max_packet: int, *, quiet: bool = False) -> dict[str, Any]:
    """An ilp-protocol-stream server host "srv" (`quiet`: it sends nothing unasked) and a client
    host "cli" whose account has `max_packet` as its maximum packet amount."""
    server: dict[str, Any] = {"kind": "stream-server"}
    if quiet:
        server["quiet"] = True
    return {
        "srv": server,
        "cli": {"kind": "stream-client", "account": {"maxPacketAmount": str(max_packet)}},
    }


@contextlib.asynccontextmanager
async def v1_link(
    harnesses: HarnessFactory, config: dict[str, Any]
) -> AsyncIterator[tuple[ConnectorHarness, V1Adapter]]:
    """The connector started with `config` and our adapted v1 client dialling its "v1" account,
    connected both ways; the client disconnects at the end."""
    conn = await harnesses.start(config)
    # stateless, as a v1 client of a stateful listener is: its account is <prefix>client
    adapter = V1Adapter(Plugin({"server": conn.account_url("v1")}))
    await adapter.connect()
    try:
        await conn.wait_connected(account="v1")
        yield conn, adapter
    finally:
        await adapter.disconnect()


@contextlib.asynccontextmanager
async def btp_child(harness: ConnectorHarness, account: str) -> AsyncIterator[BtpPlugin]:
    """Our `BtpPlugin` connected to the connector's BTP 2.0 `account`; disconnected at the end."""
    ours = BtpPlugin({"server": harness.account_url(account)})
    await ours.connect()
    try:
        yield ours
    finally:
        await ours.disconnect()
