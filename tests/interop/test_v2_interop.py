"""Our `BtpPlugin` (BTP 2.0, LPI v2) against the real JavaScript packages, pinned in
js_connector/: a stand-alone ilp-plugin-btp 1.5.0 in either role, and ilp-connector 23.0.2 with
our plugin as its child (an ilp-plugin-btp listener account, and ilp-plugin-mini-accounts 4.2.0)
and as its peer (a BTP 2.0 client account dialling our listener). Our durable trustline
(`balance`, `store` on SQLite) is checked against them too: T04 at our maximum for a JS sender,
directly and through the connector, our minimum refusing before sending, a restart keeping it.

Every JS end host fulfils a Prepare whose condition is sha256(sha256(data)) with sha256(data)
(`connector.fulfillment_for`); our end hosts here answer the same way.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.codec import ilp4
from ilp_paychan.errors import NotAcceptedError, PeerError
from ilp_paychan.v2 import ildcp
from ilp_paychan.v2.plugin import BtpPlugin
from ilp_paychan.v2.trustline import Trustline
from testkit.waiting import wait_until

from .connector import (
    ConnectorHarness,
    HarnessDied,
    HarnessFactory,
    b64,
    condition_for,
    fulfillment_for,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

LOOPBACK = "127.0.0.1"
SECRET = "v2_interop_secret"
JS_ADDRESS = "test.js"
PY_ADDRESS = "test.py"
NO_MONEY = "No sendMoney functionality is included in this module"


def free_port() -> int:
    """A loopback port nobody listens on now, for a listener that must come back on it."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def prepare(
    data: bytes,
    destination: str,
    amount: int = 10,
    *,
    condition: bytes | None = None,
    seconds: float = 30.0,
) -> bytes:
    """An ILPv4 Prepare carrying `data`, with the condition the JS end hosts fulfil."""
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    cond = condition_for(data) if condition is None else condition
    return ilp4.encode_prepare(ilp4.IlpPrepare(amount, expires, cond, destination, data))


def as_fulfill(raw: bytes) -> ilp4.IlpFulfill:
    packet = ilp4.decode_reply(raw)
    assert isinstance(packet, ilp4.IlpFulfill), packet
    return packet


def as_reject(raw: bytes) -> ilp4.IlpReject:
    packet = ilp4.decode_reply(raw)
    assert isinstance(packet, ilp4.IlpReject), packet
    return packet


class Fulfiller:
    """Our end host: fulfils with sha256(data) (F05 when the condition is another), or rejects
    with a set Reject; remembers every Prepare it saw."""

    def __init__(self, address: str = PY_ADDRESS, fulfill_data: bytes = b"") -> None:
        self.address = address
        self.fulfill_data = fulfill_data
        self.reject: bytes | None = None
        self.seen: list[ilp4.IlpPrepare] = []

    async def __call__(self, raw: bytes) -> bytes:
        packet = ilp4.decode_prepare(raw)
        self.seen.append(packet)
        if self.reject is not None:
            return self.reject
        fulfillment = fulfillment_for(packet.data)
        if condition_for(packet.data) != packet.execution_condition:
            return ilp4.encode_reject(
                ilp4.IlpReject("F05", self.address, "condition is not sha256(sha256(data))")
            )
        return ilp4.encode_fulfill(ilp4.IlpFulfill(fulfillment, self.fulfill_data))


@dataclass
class Link:
    """One of ours and one ilp-plugin-btp, connected to each other; `js` is the JS host's name."""

    ours: BtpPlugin
    harness: ConnectorHarness
    handler: Fulfiller
    ours_is_listener: bool
    port: int
    js: str = "js"


class Links:
    """Starts our plugins and JS harnesses for a test; everything ends at teardown."""

    def __init__(self, harnesses: HarnessFactory) -> None:
        self.harnesses = harnesses
        self.plugins: list[BtpPlugin] = []

    def plugin(self, options: dict[str, Any]) -> BtpPlugin:
        made = BtpPlugin(options)
        self.plugins.append(made)
        return made

    async def js_listener(self, port: int, **host: Any) -> ConnectorHarness:
        """A stand-alone ilp-plugin-btp listener host `js` on `port`, fulfilling by default."""
        spec = {
            "kind": "plugin",
            "listener": {"secret": SECRET, "port": port},
            "address": JS_ADDRESS,
            **host,
        }
        return await self.harnesses.start({"hosts": {"js": spec}})

    async def js_client(self, url: str, **host: Any) -> ConnectorHarness:
        """A stand-alone ilp-plugin-btp client host `js` dialling `url`."""
        spec = {"kind": "plugin", "server": url, "address": JS_ADDRESS, **host}
        return await self.harnesses.start({"hosts": {"js": spec}, "connectTimeoutMs": 8000})

    async def py_client_to_js_listener(
        self, ours_options: dict[str, Any] | None = None, **host: Any
    ) -> Link:
        port = free_port()
        harness = await self.js_listener(port, **host)
        ours = self.plugin(
            {
                "server": f"btp+ws://py:{SECRET}@{LOOPBACK}:{port}",
                "reconnectInterval": 100,
                "address": PY_ADDRESS,
                **(ours_options or {}),
            }
        )
        handler = Fulfiller()
        ours.register_data_handler(handler)
        await ours.connect()
        await harness.wait_connected(host="js")
        return Link(ours, harness, handler, False, port)

    async def py_listener_to_js_client(
        self, ours_options: dict[str, Any] | None = None, **host: Any
    ) -> Link:
        ours = self.plugin(
            {
                "listener": {"port": 0, "host": LOOPBACK, "secret": SECRET},
                "address": PY_ADDRESS,
                "ildcp": {"addressPrefix": PY_ADDRESS, "assetCode": "USD", "assetScale": 6},
                **(ours_options or {}),
            }
        )
        handler = Fulfiller()
        ours.register_data_handler(handler)
        await ours.connect()
        port = ours.listener_port
        assert port is not None
        harness = await self.js_client(f"btp+ws://kid:{SECRET}@{LOOPBACK}:{port}", **host)
        await wait_until(ours.is_connected, "our listener sees the JS client", 10)
        return Link(ours, harness, handler, True, port)

    async def close(self) -> None:
        for made in reversed(self.plugins):
            await made.disconnect()


@pytest.fixture
async def links(harnesses: HarnessFactory) -> AsyncIterator[Links]:
    made = Links(harnesses)
    try:
        yield made
    finally:
        await made.close()


ROLES = ["py-client", "py-listener"]


async def start(
    links: Links, role: str, ours_options: dict[str, Any] | None = None, **host: Any
) -> Link:
    if role == "py-client":
        return await links.py_client_to_js_listener(ours_options, **host)
    return await links.py_listener_to_js_client(ours_options, **host)


# --------------------------------------------------------------------------------------------
# a stand-alone ilp-plugin-btp 1.5.0, each role


@pytest.mark.parametrize("role", ROLES)
async def test_send_data_is_fulfilled_both_ways(links: Links, role: str) -> None:
    link = await start(links, role, fulfillData=b64(b"from js"))
    link.handler.fulfill_data = b"from py"

    data = b"py to js " + role.encode()
    reply = as_fulfill(await link.ours.send_data(prepare(data, "test.js.shop", 700)))
    assert (reply.fulfillment, reply.data) == (fulfillment_for(data), b"from js")
    seen = await link.harness.wait_event("prepare", host="js")
    assert (seen["amount"], seen["destination"]) == ("700", "test.js.shop")
    assert base64.b64decode(seen["executionCondition"]) == condition_for(data)
    assert base64.b64decode(seen["data"]) == data

    back = b"js to py " + role.encode()
    answer = await link.harness.send("js", "test.py.desk", 300, back)
    assert answer["type"] == "fulfill", answer
    assert base64.b64decode(answer["fulfillment"]) == fulfillment_for(back)
    assert base64.b64decode(answer["data"]) == b"from py"
    (got,) = link.handler.seen
    assert (got.amount, got.destination, got.data) == (300, "test.py.desk", back)


@pytest.mark.parametrize("role", ROLES)
async def test_rejects_keep_code_triggered_by_message_and_data_both_ways(
    links: Links, role: str
) -> None:
    link = await start(links, role)
    await link.harness.set_mode(
        "js", "reject", code="F99", message="js says no", rejectData=b64(b"\x00why\xff")
    )
    got = as_reject(await link.ours.send_data(prepare(b"refused", "test.js.x")))
    assert (got.code, got.triggered_by, got.message, got.data) == (
        "F99",
        JS_ADDRESS,
        "js says no",
        b"\x00why\xff",
    )

    link.handler.reject = ilp4.encode_reject(
        ilp4.IlpReject("T04", "test.py.deep", "py is full", bytes(range(40)))
    )
    answer = await link.harness.send("js", "test.py.x", 5, b"refused too")
    assert answer["type"] == "reject", answer
    assert (answer["code"], answer["triggeredBy"], answer["message"]) == (
        "T04",
        "test.py.deep",
        "py is full",
    )
    assert base64.b64decode(answer["data"]) == bytes(range(40))


@pytest.mark.parametrize("role", ROLES)
async def test_a_wrong_fulfillment_from_js_is_turned_into_f05(links: Links, role: str) -> None:
    """A JS fulfiller answers the fulfillment of the data; a condition of something else makes
    that Fulfill wrong, and our send_data does not pass a Fulfill that fulfils nothing."""
    link = await start(links, role)
    got = as_reject(
        await link.ours.send_data(prepare(b"data", "test.js.x", condition=condition_for(b"other")))
    )
    assert got.code == "F05"


@pytest.mark.parametrize("role", ROLES)
async def test_many_prepares_in_flight_each_way(links: Links, role: str) -> None:
    link = await start(links, role, quiet=True)
    datas = [f"burst {i}".encode() for i in range(300)]
    replies = await asyncio.gather(
        *(link.ours.send_data(prepare(d, "test.js.burst", 1)) for d in datas)
    )
    assert [as_fulfill(r).fulfillment for r in replies] == [fulfillment_for(d) for d in datas]
    counts = await link.harness.call("counts", host="js")
    assert counts["fulfilled"] == 300

    bulk = await link.harness.call(
        "send_many",
        host="js",
        destination="test.py.burst",
        amount="1",
        count=500,
        inFlight=100,
        wait=60,
    )
    assert (bulk["fulfill"], bulk["reject"], bulk["error"]) == (500, 0, 0), bulk
    assert len(link.handler.seen) == 500
    assert len({p.data for p in link.handler.seen}) == 500


async def test_ildcp_our_client_asks_a_js_listener(links: Links) -> None:
    link = await links.py_client_to_js_listener(
        ildcp={"clientAddress": "test.js.child", "assetCode": "EUR", "assetScale": 4}
    )
    info = await ildcp.fetch(link.ours)
    assert (info.client_address, info.asset_code, info.asset_scale) == ("test.js.child", "EUR", 4)


async def test_ildcp_our_listener_answers_a_js_client(links: Links) -> None:
    link = await links.py_listener_to_js_client()
    info = await link.harness.call("ildcp", host="js")
    # the JS client dialled as user "kid"; our listener assigns PREFIX.USERNAME
    assert info == {"clientAddress": "test.py.kid", "assetScale": 6, "assetCode": "USD"}
    assert not link.handler.seen  # answered by the listener itself, not the data handler


@pytest.mark.parametrize("role", ROLES)
async def test_send_money_with_ilp_plugin_btp(links: Links, role: str) -> None:
    """ilp-plugin-btp 1.5.0 carries no money: its `sendMoney` does nothing at all, and it
    answers a BTP Transfer with a BTP Error. Ours toward it therefore raises PeerError carrying
    its text; its `sendMoney` toward us sends nothing, so our money handler is never called."""
    link = await start(links, role)
    with pytest.raises(PeerError, match=NO_MONEY):
        await link.ours.send_money("1000")
    assert link.ours.is_connected()  # a refused Transfer leaves the link up

    received: list[str] = []

    async def money(amount: str) -> None:
        received.append(amount)

    link.ours.register_money_handler(money)
    assert await link.harness.call("send_money", host="js", amount="500") == {}
    # a round trip after it: anything it had sent would have arrived before this answer
    answer = await link.harness.send("js", "test.py.after", 1, b"after money")
    assert answer["type"] == "fulfill"
    assert received == []
    await link.ours.send_money("0")  # nothing to send: no Transfer, no error


# our durable trustline (`balance`, `store`) against a peer that keeps none


def _trustline(store: Path, **balance: str) -> dict[str, Any]:
    return {"balance": balance, "store": f"sqlite:///{store}"}


async def _balance(plugin: BtpPlugin) -> dict[str, str]:
    accounting = plugin.accounting
    assert isinstance(accounting, Trustline)
    return await accounting.get_balance()


@pytest.mark.parametrize("role", ROLES)
async def test_a_js_sender_over_our_maximum_gets_t04_with_the_amounts(
    links: Links, role: str, tmp_path: Path
) -> None:
    link = await start(links, role, _trustline(tmp_path / "py.sqlite", maximum="1000"))
    assert (await link.harness.send("js", "test.py.a", 600, b"owe 600"))["type"] == "fulfill"
    over = await link.harness.send("js", "test.py.b", 500, b"owe 500 more")
    assert (over["type"], over["code"], over["triggeredBy"], over["message"]) == (
        "reject",
        "T04",
        PY_ADDRESS,
        "exceeded maximum balance.",
    )
    assert json.loads(base64.b64decode(over["data"])) == {
        "balance": "600",
        "amount": "500",
        "maximum": "1000",
    }
    assert len(link.handler.seen) == 1  # the data handler never saw the refused one
    assert (await _balance(link.ours))["balance"] == "600"

    # paying the JS peer 200 lowers what it owes us: 600 more fits exactly, 1 more does not
    as_fulfill(await link.ours.send_data(prepare(b"we pay 200", "test.js.x", 200)))
    assert (await _balance(link.ours))["balance"] == "400"
    assert (await link.harness.send("js", "test.py.c", 600, b"to the limit"))["type"] == "fulfill"
    one_more = await link.harness.send("js", "test.py.d", 1, b"one more")
    assert (one_more["type"], one_more["code"]) == ("reject", "T04")
    assert (await _balance(link.ours))["balance"] == "1000"


@pytest.mark.parametrize("role", ROLES)
async def test_our_send_data_below_our_minimum_is_refused_before_the_js_peer(
    links: Links, role: str, tmp_path: Path
) -> None:
    options = _trustline(tmp_path / "py.sqlite", maximum="0", minimum="-1000")
    link = await start(links, role, options, quiet=True)
    as_fulfill(await link.ours.send_data(prepare(b"we pay 700", "test.js.x", 700)))
    refused = as_reject(await link.ours.send_data(prepare(b"and 400", "test.js.x", 400)))
    assert (refused.code, refused.triggered_by) == ("T04", PY_ADDRESS)
    assert refused.message == "insufficient funds. oldBalance=-700 proposedBalance=-1100"
    assert (await link.harness.call("counts", host="js"))["prepares"] == 1
    assert (await _balance(link.ours))["balance"] == "-700"


async def test_our_limit_holds_across_a_restart_of_our_listener(
    links: Links, tmp_path: Path
) -> None:
    store = tmp_path / "py.sqlite"
    link = await links.py_listener_to_js_client(_trustline(store, maximum="1000"))
    assert (await link.harness.send("js", "test.py.a", 700, b"owe 700"))["type"] == "fulfill"
    await link.ours.disconnect()
    again = links.plugin(
        {
            "listener": {"port": link.port, "host": LOOPBACK, "secret": SECRET},
            "address": PY_ADDRESS,
            **_trustline(store, maximum="1000"),
        }
    )
    again.register_data_handler(Fulfiller())
    await again.connect()
    await wait_until(again.is_connected, "the JS client redialled our listener", 20)
    await link.harness.wait_connected(host="js")
    assert (await _balance(again))["balance"] == "700"
    over = await link.harness.send("js", "test.py.b", 301, b"301 more")
    assert (over["type"], over["code"]) == ("reject", "T04")
    assert (await link.harness.send("js", "test.py.c", 300, b"300 more"))["type"] == "fulfill"


async def test_our_client_with_a_wrong_token_is_refused_clearly(links: Links) -> None:
    port = free_port()
    harness = await links.js_listener(port)
    ours = links.plugin({"server": f"btp+ws://py:wrong-token@{LOOPBACK}:{port}"})
    with pytest.raises(NotAcceptedError, match="invalid auth_token"):
        await ours.connect()
    assert not ours.is_connected()
    status = await harness.call("status")
    assert status["hosts"]["js"]["connected"] is False


async def test_a_js_client_with_a_wrong_token_is_refused(links: Links) -> None:
    ours = links.plugin({"listener": {"port": 0, "host": LOOPBACK, "secret": SECRET}})
    seen: list[str] = []
    ours.on("connect", lambda: seen.append("connect"))
    await ours.connect()
    # our listener answers the auth message with ilp-plugin-btp's own refusal and closes the
    # socket; ilp-plugin-btp's connect() then fails with "connection aborted"
    with pytest.raises(HarnessDied, match="connection aborted"):
        await links.js_client(f"btp+ws://kid:wrong-token@{LOOPBACK}:{ours.listener_port}")
    assert not ours.is_connected()
    assert seen == []


async def _round_trip(link: Link, tag: str) -> None:
    """A Prepare each way, both fulfilled."""
    data = f"py {tag}".encode()
    assert as_fulfill(await link.ours.send_data(prepare(data, "test.js.r"))).fulfillment == (
        fulfillment_for(data)
    )
    answer = await link.harness.send("js", "test.py.r", 1, f"js {tag}".encode())
    assert answer["type"] == "fulfill", answer


async def test_our_client_reconnects_after_the_js_listener_restarts(links: Links) -> None:
    link = await links.py_client_to_js_listener()
    await _round_trip(link, "before")
    await link.harness.close()
    await wait_until(lambda: not link.ours.is_connected(), "our client sees the drop", 10)
    down = as_reject(await link.ours.send_data(prepare(b"while down", "test.js.r", seconds=0.5)))
    assert down.code in ("T01", "R00")
    link.harness = await links.js_listener(link.port)  # a new node process, same port
    await wait_until(link.ours.is_connected, "our client redialled", 20)
    await link.harness.wait_connected(host="js")
    await _round_trip(link, "after")


async def test_a_js_listener_takes_our_client_again_after_it_restarts(links: Links) -> None:
    link = await links.py_client_to_js_listener()
    await _round_trip(link, "before")
    await link.ours.disconnect()
    await link.ours.connect()
    await link.harness.wait_connected(host="js")
    await _round_trip(link, "after")


async def test_a_js_client_redials_our_listener_after_it_restarts(links: Links) -> None:
    link = await links.py_listener_to_js_client()
    await _round_trip(link, "before")
    await link.ours.disconnect()
    replacement = links.plugin(
        {"listener": {"port": link.port, "host": LOOPBACK, "secret": SECRET}, "address": PY_ADDRESS}
    )
    link.handler = Fulfiller()
    replacement.register_data_handler(link.handler)
    link.ours = replacement
    await replacement.connect()
    # ilp-plugin-btp's client redials on its own (its reconnector's intervals: 0.1 s, 0.5 s, ...)
    await wait_until(replacement.is_connected, "the JS client redialled our listener", 20)
    await link.harness.wait_connected(host="js")
    await _round_trip(link, "after")


async def test_our_listener_takes_a_restarted_js_client(links: Links) -> None:
    link = await links.py_listener_to_js_client()
    await _round_trip(link, "before")
    await link.harness.close()
    await wait_until(lambda: not link.ours.is_connected(), "our listener sees the drop", 10)
    link.harness = await links.js_client(f"btp+ws://kid:{SECRET}@{LOOPBACK}:{link.port}")
    await wait_until(link.ours.is_connected, "the new JS client is in", 10)
    await _round_trip(link, "after")


# --------------------------------------------------------------------------------------------
# ilp-connector 23: our client as a child, our listener as a peer

CHILD_MAX_PACKET = 1000
CONNECTOR_BALANCE_MAX = 1000


def _connector_config(kind: str) -> dict[str, Any]:
    account: dict[str, Any]
    if kind == "btp":
        account = {"type": "btp-server", "secret": SECRET}
    else:
        account = {"type": "mini-accounts"}
    account["maxPacketAmount"] = str(CHILD_MAX_PACKET)
    return {
        "accounts": {"py": account},
        "hosts": {
            "alice": {"kind": "sender"},
            "bob": {"kind": "fulfiller", "fulfillData": b64(b"bob thanks")},
        },
    }


def _child_url(conn: ConnectorHarness, kind: str) -> str:
    if kind == "btp":
        return conn.account_url("py")
    return f"btp+ws://carol:anything@{LOOPBACK}:{conn.account('py')['port']}"


CHILD_ADDRESS = {"btp": "test.conn.py", "mini": "test.conn.py.carol"}


@dataclass
class Child:
    conn: ConnectorHarness
    ours: BtpPlugin
    handler: Fulfiller
    address: str


async def _child(links: Links, kind: str, config: dict[str, Any] | None = None) -> Child:
    conn = await links.harnesses.start(config or _connector_config(kind))
    ours = links.plugin({"server": _child_url(conn, kind), "reconnectInterval": 100})
    await ours.connect()
    info = await ildcp.fetch(ours)
    handler = Fulfiller(info.client_address)
    ours.register_data_handler(handler)
    return Child(conn, ours, handler, info.client_address)


@pytest.mark.parametrize("kind", ["btp", "mini"])
async def test_child_of_the_connector_gets_its_address_from_ildcp(links: Links, kind: str) -> None:
    child = await _child(links, kind)
    info = await ildcp.fetch(child.ours)
    assert (info.client_address, info.asset_code, info.asset_scale) == (
        CHILD_ADDRESS[kind],
        "XRP",
        9,
    )


@pytest.mark.parametrize("kind", ["btp", "mini"])
async def test_child_prepares_are_routed_and_fulfilled_both_ways(links: Links, kind: str) -> None:
    child = await _child(links, kind)

    data = f"to bob via {kind}".encode()
    reply = as_fulfill(await child.ours.send_data(prepare(data, "test.conn.bob.inbox", 600)))
    assert (reply.fulfillment, reply.data) == (fulfillment_for(data), b"bob thanks")
    seen = await child.conn.wait_event("prepare", host="bob")
    # one-to-one rate, no spread: the amount arrives unchanged
    assert (seen["amount"], seen["destination"]) == ("600", "test.conn.bob.inbox")

    back = f"to the {kind} child".encode()
    answer = await child.conn.send("alice", child.address + ".app", 400, back)
    assert answer["type"] == "fulfill", answer
    assert base64.b64decode(answer["fulfillment"]) == fulfillment_for(back)
    (got,) = child.handler.seen
    assert (got.amount, got.destination, got.data) == (400, child.address + ".app", back)


@pytest.mark.parametrize("kind", ["btp", "mini"])
async def test_child_rejects_through_the_connector(links: Links, kind: str) -> None:
    child = await _child(links, kind)

    lost = as_reject(await child.ours.send_data(prepare(b"lost", "test.nowhere.at.all")))
    assert (lost.code, lost.triggered_by) == ("F02", "test.conn")

    over = CHILD_MAX_PACKET + 1
    big = as_reject(await child.ours.send_data(prepare(b"too big", "test.conn.bob", over)))
    assert (big.code, big.triggered_by) == ("F08", "test.conn")
    assert ilp4.decode_amount_too_large_data(big.data) == (over, CHILD_MAX_PACKET)
    assert not child.conn.events_named("prepare", host="bob")

    await child.conn.set_mode("bob", "reject", code="F99", message="bob says no")
    theirs = as_reject(await child.ours.send_data(prepare(b"refused", "test.conn.bob")))
    assert (theirs.code, theirs.triggered_by, theirs.message) == (
        "F99",
        "test.conn.bob",
        "bob says no",
    )

    child.handler.reject = ilp4.encode_reject(
        ilp4.IlpReject("F99", child.address, "py says no", b"details")
    )
    answer = await child.conn.send("alice", child.address, 3, b"to py, refused")
    assert (answer["type"], answer["code"], answer["triggeredBy"], answer["message"]) == (
        "reject",
        "F99",
        child.address,
        "py says no",
    )
    assert base64.b64decode(answer["data"]) == b"details"


async def test_connector_balance_limit_rejects_our_prepare_with_t04(links: Links) -> None:
    """The connector's balance middleware: what our account owes it (fulfilled Prepares from us,
    plus those in flight) may not pass `balance.maximum`; a Prepare that would is T04. Prepares
    it pays us (fulfilled toward us) lower the balance again."""
    config = _connector_config("btp")
    config["accounts"]["py"]["balance"] = {"maximum": str(CONNECTOR_BALANCE_MAX)}
    child = await _child(links, "btp", config)

    first = await child.ours.send_data(prepare(b"first 600", "test.conn.bob", 600))
    as_fulfill(first)
    refused = as_reject(await child.ours.send_data(prepare(b"then 500", "test.conn.bob", 500)))
    assert (refused.code, refused.triggered_by) == ("T04", "test.conn")
    assert "exceeded maximum balance" in refused.message
    assert len(child.conn.events_named("prepare", host="bob")) == 1  # never forwarded

    paid = await child.conn.send("alice", child.address, 200, b"pays py 200")
    assert paid["type"] == "fulfill"
    # 600 - 200 = 400 owed now: 500 fits, and one more unit above the maximum does not
    as_fulfill(await child.ours.send_data(prepare(b"now 500", "test.conn.bob", 500)))
    last = as_reject(await child.ours.send_data(prepare(b"and 101", "test.conn.bob", 101)))
    assert last.code == "T04"
    as_fulfill(await child.ours.send_data(prepare(b"but 100", "test.conn.bob", 100)))


async def test_a_js_sender_through_the_connector_meets_our_maximum(
    links: Links, tmp_path: Path
) -> None:
    """Our child keeps a durable trustline with the connector: Prepares the connector forwards
    to us are what it owes us, and past our `maximum` we answer T04, which reaches the JS
    sender through the connector unchanged."""
    conn = await links.harnesses.start(_connector_config("btp"))
    ours = links.plugin(
        {
            "server": conn.account_url("py"),
            "reconnectInterval": 100,
            "address": "test.conn.py",
            **_trustline(tmp_path / "child.sqlite", maximum="1000"),
        }
    )
    handler = Fulfiller("test.conn.py")
    ours.register_data_handler(handler)
    await ours.connect()
    assert (await conn.send("alice", "test.conn.py.a", 800, b"800 to py"))["type"] == "fulfill"
    over = await conn.send("alice", "test.conn.py.b", 300, b"300 more to py")
    assert (over["type"], over["code"], over["triggeredBy"], over["message"]) == (
        "reject",
        "T04",
        "test.conn.py",
        "exceeded maximum balance.",
    )
    assert json.loads(base64.b64decode(over["data"]))["maximum"] == "1000"
    assert len(handler.seen) == 1
    assert (await _balance(ours))["balance"] == "800"


async def test_our_listener_as_a_peer_of_the_connector(links: Links) -> None:
    ours = links.plugin(
        {"listener": {"port": 0, "host": LOOPBACK, "secret": SECRET}, "address": PY_ADDRESS}
    )
    handler = Fulfiller()
    ours.register_data_handler(handler)
    await ours.connect()
    config = _connector_config("btp")
    config["accounts"] = {
        "pal": {
            "type": "btp-client",
            "server": f"btp+ws://conn:{SECRET}@{LOOPBACK}:{ours.listener_port}",
            "relation": "peer",
            "routes": [PY_ADDRESS],
        }
    }
    conn = await links.harnesses.start(config)
    await conn.wait_connected(account="pal")
    await wait_until(ours.is_connected, "the connector's client account dialled us", 10)

    data = b"alice pays the py peer"
    answer = await conn.send("alice", "test.py.shop", 250, data)
    assert answer["type"] == "fulfill", answer
    assert base64.b64decode(answer["fulfillment"]) == fulfillment_for(data)
    (got,) = handler.seen
    assert (got.amount, got.destination) == (250, "test.py.shop")

    out = b"py peer pays bob"
    reply = as_fulfill(await ours.send_data(prepare(out, "test.conn.bob.till", 80)))
    assert reply.fulfillment == fulfillment_for(out)
    seen = await conn.wait_event("prepare", host="bob")
    assert (seen["amount"], seen["destination"]) == ("80", "test.conn.bob.till")

    lost = as_reject(await ours.send_data(prepare(b"lost", "test.elsewhere")))
    assert (lost.code, lost.triggered_by) == ("F02", "test.conn")


async def test_many_child_prepares_in_flight_through_the_connector(links: Links) -> None:
    child = await _child(links, "btp")
    await child.conn.call("set_mode", host="bob", mode="fulfil")
    datas = [f"through {i}".encode() for i in range(200)]
    replies = await asyncio.gather(
        *(child.ours.send_data(prepare(d, "test.conn.bob", 1)) for d in datas)
    )
    assert [as_fulfill(r).fulfillment for r in replies] == [fulfillment_for(d) for d in datas]
    bulk = await child.conn.call(
        "send_many",
        host="alice",
        destination=child.address + ".bulk",
        amount="1",
        count=300,
        inFlight=50,
        wait=60,
    )
    assert (bulk["fulfill"], bulk["reject"], bulk["error"]) == (300, 0, 0), bulk
