"""Connections coming and going between our plugin and the JS reference.

The reference never reconnects by itself and keeps dead sockets until `disconnect()`:
its user recovers with `disconnect()` + `connect()`, after which a client dials again on
its next request. These tests check that our side copes with exactly that: reconnects, a
server restart on the same SQLite file, a Fulfill that could not be delivered at first, and a
second client login replacing the first.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from testkit.waiting import wait_until as poll_until

from .conftest import SERVER_MAX, SERVER_MIN, Pair, SideFactory, client_url, py_server_options
from .sides import JsSide, PySide, Side, SideError, iso_in, make_transfer, new_fulfillment, pay

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


async def restart_py_server(sides: SideFactory, port: int) -> PySide:
    """A new Python server over the first one's SQLite store, listening on the same port."""
    options = py_server_options(
        sides.store_url("sqlite", "server"), max_balance=SERVER_MAX, min_balance=SERVER_MIN
    )
    options["listener"] = {"port": port, "host": "127.0.0.1"}
    restarted = PySide(options, "server")
    sides.started.append(restarted)
    await restarted.connect()
    return restarted


async def js_redial(client: JsSide) -> None:
    """What a reference user must do after losing the socket: disconnect, connect, then any
    request dials again (here the balance query, which a stateless client sends to the peer)."""
    await client.disconnect()
    await client.connect()
    await client.balance()


async def test_js_client_reconnects_to_py_server(sides: SideFactory) -> None:
    server = await sides.py_server("sqlite")
    client = await sides.js_client(server.port)
    await pay(client, server, "5")
    await js_redial(client)
    await pay(client, server, "6")
    await pay(server, client, "2")
    assert await server.balance() == "9"
    assert int(await client.balance()) == -9


async def test_py_client_reconnects_to_js_server(sides: SideFactory) -> None:
    server = await sides.js_server()
    client = await sides.py_client(server.port)
    await pay(client, server, "5")
    await client.disconnect()
    await client.connect()
    # The reference server keeps the dead socket and every request it sends from now on fails
    # with "not opened", so only what it answers is checked: it accepts the new
    # login and answers queries, messages and prepares on the new socket.
    assert await client.balance() == "-5"
    assert await client.limit() == "-" + SERVER_MAX
    await server.handle_requests("echo")
    answer = await client.send_request({"to": client.peer_account, "custom": {"again": True}})
    assert answer["custom"] == {"again": True}
    _, condition = new_fulfillment()
    transfer = make_transfer(client.peer_account, "6", condition)
    await client.send_transfer(transfer)
    await server.wait_transfer_event("incoming_prepare", transfer["id"])
    assert await server.balance() == "5"


async def test_fulfill_redelivered_after_js_client_returns(sides: SideFactory) -> None:
    # fulfill_condition waits up to requestTimeout for the peer to come back, then says the
    # fulfilment is pending (committed, not yet acknowledged)
    server = await sides.py_server("sqlite", requestTimeout=1)
    client = await sides.js_client(server.port)
    fulfillment, condition = new_fulfillment()
    transfer = make_transfer(client.peer_account, "7", condition)
    await client.send_transfer(transfer)
    await server.wait_transfer_event("incoming_prepare", transfer["id"])

    await client.disconnect()  # the socket is gone when the server fulfils
    with pytest.raises(SideError, match="FulfillmentPendingError"):
        await server.fulfill(transfer["id"], fulfillment)  # ours commits and keeps a notice
    assert await server.balance() == "7"
    assert not client.transfer_events("outgoing_fulfill", transfer["id"])

    await client.connect()
    await client.balance()  # dials again; the server re-sends the Fulfill on the new socket
    await client.wait_transfer_event("outgoing_fulfill", transfer["id"])
    await server.wait_transfer_event("incoming_fulfill_confirmed", transfer["id"])
    assert int(await client.balance()) == -7
    assert int(await server.peer_balance()) == 7


async def _fulfil_while_the_js_sender_is_away(
    sides: SideFactory, *, stateful: bool
) -> tuple[PySide, JsSide, dict[str, Any]]:
    """The reference sends us 7 expiring in 1.5 s and goes away; we fulfil (pending: nobody
    answers); after the expiry it comes back and dials, and our notice re-sends the Fulfill."""
    server = await sides.py_server("sqlite", requestTimeout=1)
    client = await sides.js_client(server.port, stateful=stateful)
    fulfillment, condition = new_fulfillment()
    transfer = make_transfer(client.peer_account, "7", condition, expires_in=1.5)
    await client.send_transfer(transfer)
    await server.wait_transfer_event("incoming_prepare", transfer["id"])
    await client.disconnect()  # the socket is gone when we fulfil
    with pytest.raises(SideError, match="FulfillmentPendingError"):
        await server.fulfill(transfer["id"], fulfillment)
    await asyncio.sleep(max(_seconds_until(transfer["expiresAt"]) + 0.3, 0.0))
    await client.connect()
    await client.peer_balance()  # dials again
    return server, client, transfer


def _seconds_until(iso: str) -> float:
    return (datetime.fromisoformat(iso.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()


async def test_a_fulfill_reaching_the_js_sender_after_its_expiry_is_reverted(
    sides: SideFactory,
) -> None:
    """Our receiver, the reference as a stateless sender (it keeps the transfer prepared: it
    has no expiry timer): it answers our late Fulfill F05 "has already expired", and we roll our
    fulfilment back. Its balance is ours negated, so both say 0."""
    server, client, transfer = await _fulfil_while_the_js_sender_is_away(sides, stateful=False)
    _, reason = await server.wait_transfer_event("incoming_fulfill_reverted", transfer["id"])
    assert reason["code"] == "R00"
    assert reason["additional_info"]["code"] == "F05"
    assert await server.transfer_state(transfer["id"]) == "cancelled"
    assert await server.balance() == "0"
    assert int(await client.balance()) == 0
    assert not client.transfer_events("outgoing_fulfill", transfer["id"])


async def test_a_late_fulfill_to_a_js_sender_that_expired_it_gets_no_usable_answer(
    sides: SideFactory,
) -> None:
    """A known disagreement of mixed pairs: the stateful reference cancels at its expiry, and
    then answers any Fulfill of that transfer F00 TypeError (its settled record reads back as a
    JSON string), the same answer as for a transfer it fulfilled. That says nothing about the
    outcome, so we keep our fulfilment (a warning is logged) while it holds the transfer
    cancelled; only the reference could tell."""
    server, client, transfer = await _fulfil_while_the_js_sender_is_away(sides, stateful=True)
    await client.wait_transfer_event("outgoing_cancel", transfer["id"])

    async def notice_answered() -> bool:
        return await server.plugin.transfer_log.list_peer_notices() == []

    await poll_until(notice_answered, "the reference's answer to our Fulfill", 10.0)
    assert not server.events_named("incoming_fulfill_reverted")
    assert await server.transfer_state(transfer["id"]) == "fulfilled"
    assert await server.balance() == "7"
    assert await client.transfer_state(transfer["id"]) == "cancelled"
    assert int(await client.balance()) == 0


async def test_py_server_restart_keeps_balances_and_prepared_transfers(
    sides: SideFactory,
) -> None:
    server = await sides.py_server("sqlite")
    client = await sides.js_client(server.port)
    port = server.port
    await pay(client, server, "5")
    fulfillment, condition = new_fulfillment()
    pending = make_transfer(client.peer_account, "8", condition)
    await client.send_transfer(pending)
    await server.wait_transfer_event("incoming_prepare", pending["id"])

    await server.close()  # the process goes away; its SQLite file stays
    restarted = await restart_py_server(sides, port)
    pair = Pair(restarted, client, "restarted")

    await js_redial(client)
    assert await restarted.balance() == "5"
    assert await restarted.transfer_state(pending["id"]) == "prepared"
    await restarted.fulfill(pending["id"], fulfillment)
    await client.wait_transfer_event("outgoing_fulfill", pending["id"])
    assert await pair.server.balance() == "13"
    assert int(await pair.client.balance()) == -13
    await pay(client, restarted, "1")
    assert await restarted.balance() == "14"


async def test_second_js_login_replaces_the_first(sides: SideFactory) -> None:
    server = await sides.py_server("memory")
    first = await sides.js_client(server.port)
    await pay(first, server, "3")
    second = await sides.js_client(server.port)
    # requests go to the newest authenticated socket only, never to both
    transfer = await pay(server, second, "2")
    assert not first.transfer_events("incoming_prepare", transfer["id"])
    assert await server.balance() == "1"
    assert int(await second.balance()) == -1


async def test_expiry_while_py_server_is_down_is_told_after_restart(
    sides: SideFactory,
) -> None:
    server = await sides.py_server("sqlite")
    client = await sides.js_client(server.port)
    port = server.port
    _, condition = new_fulfillment()
    doomed = make_transfer(client.peer_account, "8", condition, expires_in=1.0)
    await client.send_transfer(doomed)
    await server.wait_transfer_event("incoming_prepare", doomed["id"])
    await server.close()
    await asyncio.sleep(1.2)  # the transfer expires while no server runs

    restarted = await restart_py_server(sides, port)
    await js_redial(client)
    # the stateless reference client learns of it only through our R00 Reject
    _, reason = await client.wait_transfer_event("outgoing_reject", doomed["id"])
    assert (reason["code"], reason["name"]) == ("R00", "Transfer Timed Out")
    assert await restarted.transfer_state(doomed["id"]) == "cancelled"
    assert await restarted.balance() == "0"
    # and the whole limit is available again
    fulfillment, condition = new_fulfillment()
    full = make_transfer(client.peer_account, SERVER_MAX, condition)
    await client.send_transfer(full)
    await restarted.fulfill(full["id"], fulfillment)
    await client.wait_transfer_event("outgoing_fulfill", full["id"])
    assert await restarted.balance() == SERVER_MAX


@pytest.mark.parametrize("server_kind", ["py", "js"])
async def test_expired_and_rejected_transfers_release_the_limit(
    sides: SideFactory, server_kind: str
) -> None:
    """Ten transfers filling maxBalance expire or are rejected; then the full limit is usable."""
    if server_kind == "py":
        server: Side = await sides.py_server("sqlite")
        client: Side = await sides.js_client(server.port)
    else:
        server = await sides.js_server()
        client = await sides.py_client(server.port)
    _, condition = new_fulfillment()
    share = str(int(SERVER_MAX) // 10)
    batch = [
        make_transfer(client.peer_account, share, condition, expires_in=1.0) for _ in range(10)
    ]
    await asyncio.gather(*(client.send_transfer(t) for t in batch))
    with pytest.raises(SideError) as full:
        await client.send_transfer(make_transfer(client.peer_account, "1", condition))
    assert full.value.name == "NotAcceptedError"
    reason = {
        "code": "F99",
        "name": "Application Error",
        "triggered_by": server.account,
        "triggered_at": iso_in(0),
        "additional_info": {},
    }
    for transfer in batch[:5]:
        await server.reject(transfer["id"], reason)
    for transfer in batch[5:]:
        await server.wait_transfer_event("incoming_cancel", transfer["id"])
    await pay(client, server, SERVER_MAX)
    assert await server.balance() == SERVER_MAX
    assert int(await client.balance()) == -int(SERVER_MAX)


async def test_py_request_to_a_silent_js_handler_times_out(sides: SideFactory) -> None:
    server = await sides.js_server()
    client = PySide({"server": client_url(server.port), "requestTimeout": 1}, "client")
    sides.started.append(client)
    await client.connect()
    await server.handle_requests("hang")
    message = {"to": client.peer_account, "custom": {"q": 1}}
    with pytest.raises(SideError) as silent:
        await client.send_request(message)
    assert silent.value.name == "PeerTimeoutError"
    await server.handle_requests("echo")  # the link is still usable afterwards
    assert (await client.send_request(message))["custom"] == {"q": 1}


async def test_py_client_restart_then_fulfils_for_js_server(sides: SideFactory) -> None:
    server = await sides.js_server()
    client = await sides.py_client(server.port, store="sqlite")
    fulfillment, condition = new_fulfillment()
    transfer = make_transfer(server.peer_account, "9", condition)
    await server.send_transfer(transfer)
    await client.wait_transfer_event("incoming_prepare", transfer["id"])
    await client.close()

    restarted = PySide(dict(client.options), "client")  # same URL and SQLite file
    sides.started.append(restarted)
    await restarted.connect()
    assert await restarted.transfer_state(transfer["id"]) == "prepared"
    await restarted.fulfill(transfer["id"], fulfillment)
    # the reference answers on the socket the Fulfill came in on, so this works despite the dead
    # socket it keeps
    await server.wait_transfer_event("outgoing_fulfill", transfer["id"])
    assert await server.balance() == "-9"
    assert await restarted.balance() == "9"
