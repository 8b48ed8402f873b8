"""Our plugin against the JavaScript reference, both pairings.

Each scenario runs for every pairing of `conftest.BASIC_PAIRS` (Python server on memory: and
sqlite: with a stateless JS client; JS server with a stateless Python client), and where it makes
sense also for `STATEFUL_PAIRS` (both sides keep a store). Balances and limits are checked on both
sides after each step. Where the reference itself is known to misbehave, the
assertions say what the JS side does and check that our side does the right thing.
"""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import datetime
from typing import Any

import pytest

from ilp_paychan.codec.ilp import IlpError, decode_ilp

from .conftest import CLIENT_MAX, SERVER_MAX, SERVER_MIN, Pair, SideFactory, client_url
from .sides import (
    INFO,
    PREFIX,
    JsSide,
    PySide,
    Side,
    SideError,
    b64url,
    iso_in,
    make_transfer,
    new_fulfillment,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

ILP_DATA = b64url(b"\x01\x0einterop payload")
FULFILL_DATA = b64url(b"fulfillment data")
CUSTOM = {"k": ["v", 1], "note": "h\u00e9llo \u20ac \U0001f600", "n": None}
EXPIRY = 1.0  # seconds: short enough to keep the suite quick, long enough for a loaded machine


def num(text: str) -> int:
    """A decimal balance as int (the reference's textual negation can yield '-0')."""
    return int(text)


def same_b64(a: str | None, b: str | None) -> bool:
    def raw(s: str | None) -> bytes | None:
        if s is None:
            return None
        return base64.urlsafe_b64decode(s.replace("+", "-").replace("/", "_").rstrip("=") + "==")

    return raw(a) == raw(b)


def same_time(a: str, b: str) -> bool:
    def parse(s: str) -> datetime:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))

    return abs((parse(a) - parse(b)).total_seconds()) < 0.001


async def check_balances(pair: Pair, server_balance: int) -> None:
    """Balances, peer balances and limits as each side reports them, all consistent."""
    server, client = pair.sides()
    answers = {
        "server.balance": await server.balance(),
        "client.balance": await client.balance(),
        "server.peer_balance": await server.peer_balance(),
        "client.peer_balance": await client.peer_balance(),
        "server.limit": await server.limit(),
        "client.limit": await client.limit(),
    }
    for side, what in ((server, "server"), (client, "client")):
        if side.kind == "py":
            for key, value in answers.items():
                if key.startswith(what):
                    assert value != "-0", f"{key} answered '-0'"
    assert num(answers["server.balance"]) == server_balance, answers
    assert num(answers["client.balance"]) == -server_balance, answers
    # getPeerBalance asks the peer for its own balance and negates it
    assert num(answers["server.peer_balance"]) == server_balance, answers
    assert num(answers["client.peer_balance"]) == -server_balance, answers
    assert answers["client.limit"] == "-" + SERVER_MAX, answers
    client_limit = "-" + CLIENT_MAX if client.stateful else "-Infinity"
    assert answers["server.limit"] == client_limit, answers


async def check_state(side: Side, transfer_id: str, expected: str) -> None:
    """The side's own record of a transfer; a stateless reference forgets settled ids."""
    state = await side.transfer_state(transfer_id)
    if side.kind == "js" and not side.stateful and state is None:
        return
    assert state == expected, (side.kind, side.role, state)


def late_refusal(side: Side, error: SideError) -> None:
    """Fulfilling a rejected/expired transfer fails; ours says AlreadyRolledBackError.

    The stateful reference reads settled records back as JSON text and then fails with a plain
    "is outgoing; cannot fulfill" Error; the stateless one has forgotten a rejected id
    (TransferNotFoundError).
    """
    if side.kind == "py":
        assert error.name == "AlreadyRolledBackError", error
    elif not side.stateful:
        assert error.name in ("AlreadyRolledBackError", "TransferNotFoundError"), error


async def check_late_fulfil_refused(
    pair: Pair, receiver: Side, sender: Side, transfer_id: str, fulfillment: str
) -> None:
    """After a reject or expiry: the receiver's fulfil is refused and nothing moves."""
    with pytest.raises(SideError) as late:
        await receiver.fulfill(transfer_id, fulfillment)
    late_refusal(receiver, late.value)
    assert not sender.transfer_events("outgoing_fulfill", transfer_id)
    await check_balances(pair, 0)


def transfer_from(sender: Side, amount: str, condition: str, **extra: Any) -> dict[str, Any]:
    return make_transfer(sender.peer_account, amount, condition, **extra)


def directions(pair: Pair) -> list[tuple[Side, Side, int]]:
    """(sender, receiver, sign of the server's balance change) for both directions."""
    return [(pair.client, pair.server, 1), (pair.server, pair.client, -1)]


# --- connection, info and queries ---------------------------------------------------------------


async def test_connect_info_and_queries(any_pair: Pair) -> None:
    pair = any_pair
    server, client = pair.sides()
    assert await client.info() == INFO  # the client fetched it over the wire (info 02)
    assert await server.info() == INFO
    assert await server.get_account() == server.account
    assert await server.get_peer_account() == server.peer_account
    assert await client.get_account() == client.account
    assert await client.get_peer_account() == client.peer_account
    await check_balances(pair, 0)


async def test_auth_refused_for_js_client(sides: SideFactory) -> None:
    server = await sides.py_server("memory")
    for secret, username in (("wrong_secret", ""), ("interop_secret", "someone")):
        bad = await sides.js_client(server.port, secret=secret, username=username, connect=False)
        # The reference's client never settles connect() after a refusal and
        # reports the server's BTP Error as an unhandled rejection: that is what we check.
        answer = await bad.peer.call_raw("connect", driver_timeout=1.0, wait=5.0)
        assert not answer["ok"]
        assert answer["error"]["name"] == "DriverTimeout"
        await bad.peer.wait_event("unhandled_rejection", wait=5)
        [event] = [e for e in bad.peer.events if e["event"] == "unhandled_rejection"]
        btp_error = json.loads(event["error"]["message"])
        assert btp_error["code"] == "F00"
        assert btp_error["name"] == "NotAcceptedError"
        assert json.loads(btp_error["data"]) == {"message": "invalid auth token and/or username"}
        assert btp_error["protocolData"] == []
        assert not bad.events_named("connect")
        await bad.close()
    # the server is unharmed: a client with the right secret connects and pays
    good = await sides.js_client(server.port)
    await check_still_pays(server, good)


async def check_still_pays(server: Side, good: Side) -> None:
    """After refused connections: a client with the right secret connects and pays 3."""
    pair = Pair(server, good, "after refusals")
    fulfillment, condition = new_fulfillment()
    await server.auto_fulfill([fulfillment])
    transfer = transfer_from(good, "3", condition)
    await good.send_transfer(transfer)
    await good.wait_transfer_event("outgoing_fulfill", transfer["id"])
    await check_balances(pair, 3)


async def test_auth_refused_for_py_client(sides: SideFactory) -> None:
    server = await sides.js_server()
    for secret, username in (("wrong_secret", ""), ("interop_secret", "someone")):
        bad = await sides.py_client(server.port, secret=secret, username=username, connect=False)
        with pytest.raises(SideError) as refused:
            await bad.connect(wait=8.0)
        assert refused.value.name == "NotAcceptedError"
        assert "invalid auth token and/or username" in refused.value.message
        await bad.close()
    good = await sides.py_client(server.port)
    await check_still_pays(server, good)


async def test_clients_with_a_configured_prefix(sides: SideFactory) -> None:
    """ILP Kit sets a client's `prefix` to the ledger key; connect() checks it against the info."""
    py_server = await sides.py_server("memory")
    js_client = await JsSide.start(
        {"options": {"server": client_url(py_server.port), "prefix": PREFIX}}, "client"
    )
    sides.started.append(js_client)
    await js_client.connect()
    assert await js_client.info() == INFO
    await check_balances(Pair(py_server, js_client, "prefixed js client"), 0)

    js_server = await sides.js_server()
    good = PySide({"server": client_url(js_server.port), "prefix": PREFIX}, "client")
    sides.started.append(good)
    await good.connect()
    assert await good.info() == INFO
    await check_balances(Pair(js_server, good, "prefixed py client"), 0)
    wrong = PySide({"server": client_url(js_server.port), "prefix": "other.ledger."}, "client")
    sides.started.append(wrong)
    with pytest.raises(SideError):
        await wrong.connect()
    assert not wrong.plugin.is_connected()


# --- transfers ----------------------------------------------------------------------------------


async def test_transfers_fulfilled_both_directions(any_pair: Pair) -> None:
    pair = any_pair
    expected = 0
    for sender, receiver, sign in directions(pair):
        fulfillment, condition = new_fulfillment()
        amount = 10 if sign > 0 else 7
        transfer = transfer_from(
            sender, str(amount), condition, ilp=ILP_DATA, custom={"field": "some stuff"}
        )
        await sender.send_transfer(transfer)
        [seen] = await receiver.wait_transfer_event("incoming_prepare", transfer["id"])
        assert seen["amount"] == str(amount)
        assert seen["executionCondition"] == condition
        assert same_time(seen["expiresAt"], transfer["expiresAt"])
        assert seen["to"] == receiver.account
        assert seen["from"] == receiver.peer_account
        assert seen["ledger"] == PREFIX
        assert same_b64(seen["ilp"], ILP_DATA)
        assert seen["custom"] == {"field": "some stuff"}
        await sender.wait_transfer_event("outgoing_prepare", transfer["id"])
        # prepared: nothing moves yet
        await check_balances(pair, expected)

        await receiver.fulfill(transfer["id"], fulfillment, FULFILL_DATA)
        incoming = await receiver.wait_transfer_event("incoming_fulfill", transfer["id"])
        assert incoming[1] == fulfillment
        outgoing = await sender.wait_transfer_event("outgoing_fulfill", transfer["id"])
        assert outgoing[1] == fulfillment
        assert same_b64(outgoing[2], FULFILL_DATA)
        expected += sign * amount
        await check_balances(pair, expected)
        await check_state(receiver, transfer["id"], "fulfilled")
        await check_state(sender, transfer["id"], "fulfilled")
    assert expected == 3


async def test_transfers_rejected_both_directions(any_pair: Pair) -> None:
    pair = any_pair
    for sender, receiver, _sign in directions(pair):
        fulfillment, condition = new_fulfillment()
        transfer = transfer_from(sender, "5", condition)
        await sender.send_transfer(transfer)
        await receiver.wait_transfer_event("incoming_prepare", transfer["id"])
        reason = {
            "code": "F99",
            "name": "Application Error",
            "triggered_by": receiver.account,
            "forwarded_by": [PREFIX + "connector1", PREFIX + "connector2"],
            "triggered_at": iso_in(0),
            "additional_info": {"why": "interop test"},
        }
        await receiver.reject(transfer["id"], reason)
        await receiver.wait_transfer_event("incoming_reject", transfer["id"])
        _, got = await sender.wait_transfer_event("outgoing_reject", transfer["id"])
        assert got["code"] == "F99"
        assert got["name"] == "Application Error"
        assert got["triggered_by"] == receiver.account
        # the reference reports only the last forwardedBy entry
        forwarded = got["forwarded_by"]
        last = forwarded[-1] if isinstance(forwarded, list) else forwarded
        assert last == PREFIX + "connector2"
        assert got["additional_info"] == {"why": "interop test"}
        await check_state(receiver, transfer["id"], "cancelled")
        await check_state(sender, transfer["id"], "cancelled")
        await check_balances(pair, 0)
        # a rejected transfer cannot be fulfilled any more
        await check_late_fulfil_refused(pair, receiver, sender, transfer["id"], fulfillment)


async def test_transfer_expired_client_to_server(any_pair: Pair) -> None:
    pair = any_pair
    server, client = pair.sides()
    fulfillment, condition = new_fulfillment()
    transfer = transfer_from(client, "9", condition, expires_in=EXPIRY)
    await client.send_transfer(transfer)
    await server.wait_transfer_event("incoming_prepare", transfer["id"])
    await server.wait_transfer_event("incoming_cancel", transfer["id"])
    if client.kind == "js" and not client.stateful:
        # a stateless reference client learns of the expiry only from the server's R00 Reject
        _, reason = await client.wait_transfer_event("outgoing_reject", transfer["id"])
        assert reason["code"] == "R00"
        assert reason["name"] == "Transfer Timed Out"
        assert reason["triggered_by"] == server.account
    else:
        await _wait_any(
            client,
            ("outgoing_cancel", "outgoing_reject"),
            transfer["id"],
        )
    await check_state(server, transfer["id"], "cancelled")
    await check_balances(pair, 0)
    await check_late_fulfil_refused(pair, server, client, transfer["id"], fulfillment)


async def test_transfer_expired_server_to_client(any_pair: Pair) -> None:
    pair = any_pair
    server, client = pair.sides()
    fulfillment, condition = new_fulfillment()
    transfer = transfer_from(server, "4", condition, expires_in=EXPIRY)
    await server.send_transfer(transfer)
    await client.wait_transfer_event("incoming_prepare", transfer["id"])
    # The server's own timer cancels it (outgoing_cancel), unless the client's expiry Reject
    # (R00, which ours sends as receiver, as RFC 23 asks) arrives first (outgoing_reject).
    seen = await _wait_any(server, ("outgoing_cancel", "outgoing_reject"), transfer["id"])
    if seen == "outgoing_reject":
        [(_, reason)] = server.transfer_events("outgoing_reject", transfer["id"])
        assert (reason["code"], reason["name"]) == ("R00", "Transfer Timed Out")
        assert reason["triggered_by"] == client.account
    # whatever the client did meanwhile, fulfilling after the expiry is refused
    with pytest.raises(SideError) as late:
        await client.fulfill(transfer["id"], fulfillment)
    late_refusal(client, late.value)
    assert not client.transfer_events("incoming_fulfill", transfer["id"])
    assert not server.transfer_events("outgoing_fulfill", transfer["id"])
    await check_state(server, transfer["id"], "cancelled")
    if client.kind == "py":
        # ours expires incoming transfers in every mode, stateless too
        await client.wait_transfer_event("incoming_cancel", transfer["id"])
        await check_state(client, transfer["id"], "cancelled")
    await check_balances(pair, 0)


async def _wait_any(
    side: Side, names: tuple[str, ...], transfer_id: str, wait: float = 10.0
) -> str:
    """The first of `names` seen for that transfer."""

    def check() -> str | None:
        return next((n for n in names if side.transfer_events(n, transfer_id)), None)

    return str(await side.until(check, wait=wait))


# --- limits -------------------------------------------------------------------------------------


async def test_limits_enforced_with_the_reference_error(any_pair: Pair) -> None:
    pair = any_pair
    server, client = pair.sides()
    fulfillment, condition = new_fulfillment()

    # over maxBalance at once: the server refuses with the reference's F00 NotAcceptedError
    over = transfer_from(client, str(int(SERVER_MAX) + 1), condition)
    with pytest.raises(SideError) as refused:
        await client.send_transfer(over)
    assert refused.value.remote
    assert refused.value.code == "F00"
    assert refused.value.name == "NotAcceptedError"
    assert refused.value.message.startswith(
        "balanceIncomingFulfilledAndPrepared exceeds greatest allowed value"
    )
    assert not server.transfer_events("incoming_prepare", over["id"])
    await check_balances(pair, 0)
    if server.kind == "py" and client.kind == "js" and not client.stateful:
        # The stateless reference re-sends an identical transfer it still holds; our
        # server keeps no trace of a refused prepare, so the retry is refused again.
        with pytest.raises(SideError) as again:
            await client.send_transfer(over)
        assert again.value.code == "F00"
        assert not server.transfer_events("incoming_prepare", over["id"])

    # prepared amounts reserve headroom: 600 prepared + 500 > 1000
    first = transfer_from(client, "600", condition)
    await client.send_transfer(first)
    await server.wait_transfer_event("incoming_prepare", first["id"])
    second = transfer_from(client, "500", condition)
    with pytest.raises(SideError) as reserved:
        await client.send_transfer(second)
    assert (reserved.value.code, reserved.value.name) == ("F00", "NotAcceptedError")
    await check_balances(pair, 0)

    await server.fulfill(first["id"], fulfillment)
    await client.wait_transfer_event("outgoing_fulfill", first["id"])
    await check_balances(pair, 600)
    rest = transfer_from(client, "400", condition)
    await client.send_transfer(rest)
    await server.wait_transfer_event("incoming_prepare", rest["id"])
    await server.fulfill(rest["id"], fulfillment)
    await client.wait_transfer_event("outgoing_fulfill", rest["id"])
    await check_balances(pair, 1000)
    with pytest.raises(SideError) as full:
        await client.send_transfer(transfer_from(client, "1", condition))
    assert (full.value.code, full.value.name) == ("F00", "NotAcceptedError")
    await check_balances(pair, 1000)

    # the server's own minBalance bounds what it may owe: 1000 - 1501 < -500 is refused locally
    too_much = transfer_from(server, str(1000 - int(SERVER_MIN) + 1), condition)
    with pytest.raises(SideError) as owe:
        await server.send_transfer(too_much)
    assert owe.value.name == "NotAcceptedError"
    assert not owe.value.remote
    assert "balanceOutgoingFulfilledAndPrepared" in owe.value.message
    assert not client.transfer_events("incoming_prepare", too_much["id"])
    await check_balances(pair, 1000)


# --- duplicate ids ------------------------------------------------------------------------------


async def test_duplicate_id_with_other_content_refused(any_pair: Pair) -> None:
    pair = any_pair
    server, client = pair.sides()
    fulfillment, condition = new_fulfillment()
    expected = 0
    for sender, receiver, sign in directions(pair):
        # same id, other content, while the first is prepared: refused by the sender's own log
        transfer = transfer_from(sender, "6", condition)
        await sender.send_transfer(transfer)
        await receiver.wait_transfer_event("incoming_prepare", transfer["id"])
        with pytest.raises(SideError) as dup:
            await sender.send_transfer(dict(transfer, amount="60"))
        assert dup.value.name == "DuplicateIdError"
        # an identical re-send is acknowledged and counted once
        await sender.send_transfer(transfer)
        await receiver.fulfill(transfer["id"], fulfillment)
        await sender.wait_transfer_event("outgoing_fulfill", transfer["id"])
        expected += sign * 6
        await check_balances(pair, expected)
        if receiver.kind == "py":
            assert len(receiver.transfer_events("incoming_prepare", transfer["id"])) == 1

        # same id, other content, after settlement: the reference forgets settled ids (stateless)
        # or accepts them unchecked (stateful) and sends the Prepare; ours refuses it
        # locally as sender and with F04 DuplicateIdError as receiver
        if sender.kind == receiver.kind == "js":
            continue  # harness self-check only: two references accept it (the defect above)
        with pytest.raises(SideError) as settled_dup:
            await sender.send_transfer(dict(transfer, amount="61"))
        assert settled_dup.value.name == "DuplicateIdError"
        if settled_dup.value.remote:
            assert settled_dup.value.code == "F04"
            assert receiver.kind == "py"
        else:
            assert sender.kind == "py"
        assert len(receiver.transfer_events("incoming_fulfill", transfer["id"])) == 1
        await check_balances(pair, expected)

        # an identical re-send after settlement (a stateless reference forgets settled ids and
        # sends it again) may be acknowledged or refused, but is never counted twice
        with contextlib.suppress(SideError):
            await sender.send_transfer(transfer)
        assert len(receiver.transfer_events("incoming_fulfill", transfer["id"])) == 1
        await check_balances(pair, expected)
    assert expected == 0
    del server, client


# --- messages -----------------------------------------------------------------------------------


async def test_messages_and_responses_both_ways(any_pair: Pair) -> None:
    pair = any_pair
    for asker, answerer, _sign in directions(pair):
        message = {"to": asker.peer_account, "ilp": ILP_DATA, "custom": CUSTOM}

        await answerer.handle_requests("none")
        with pytest.raises(SideError) as unhandled:
            await asker.send_request(message)
        assert (unhandled.value.code, unhandled.value.name) == ("F00", "NotAcceptedError")
        assert unhandled.value.message == "no request handler registered"

        await answerer.handle_requests("echo")
        response = await asker.send_request(message)
        assert response["to"] == asker.account
        assert response["from"] == asker.peer_account
        assert response["ledger"] == PREFIX
        assert same_b64(response["ilp"], ILP_DATA)
        assert response["custom"] == CUSTOM
        [request] = await answerer.wait_event(
            "incoming_request", lambda a: same_b64(a[0].get("ilp"), ILP_DATA)
        )
        assert request["to"] == answerer.account
        assert request["from"] == answerer.peer_account
        assert request["custom"] == CUSTOM
        await answerer.wait_event("outgoing_response")
        await asker.wait_event("outgoing_request")
        await asker.wait_event("incoming_response")

        # custom only (no ilp) also reaches the handler
        only_custom = await asker.send_request({"to": asker.peer_account, "custom": {"x": 1}})
        assert only_custom["custom"] == {"x": 1}

        # a failing handler yields a Response carrying an ILP F00 error, not a BTP Error
        await answerer.handle_requests("reject", {"message": "handler says no"})
        refused = await asker.send_request(message)
        error = decode_ilp(base64.urlsafe_b64decode(refused["ilp"] + "=="))
        assert isinstance(error, IlpError)
        assert (error.code, error.name) == ("F00", "Bad Request")
        assert error.triggered_by == answerer.account
        assert json.loads(error.data) == {"message": "handler says no"}
        await answerer.handle_requests("none")
    await check_balances(pair, 0)


# --- edge values ----------------------------------------------------------------------------------


async def test_large_amounts_and_balances(sides: SideFactory) -> None:
    """Amounts near the int64 range of the `balance` side protocol, both pairings."""
    big = "9000000000000000000"  # < 2**63 - 1, the largest balance the int64 answer can carry
    for make in ("py", "js"):
        if make == "py":
            server: Side = await sides.py_server("sqlite", max_balance=big + "0", min_balance=None)
            client: Side = await sides.js_client(server.port)
        else:
            server = await sides.js_server(max_balance=big + "0", min_balance=None)
            client = await sides.py_client(server.port)
        fulfillment, condition = new_fulfillment()
        transfer = transfer_from(client, big, condition)
        await client.send_transfer(transfer)
        [seen] = await server.wait_transfer_event("incoming_prepare", transfer["id"])
        assert seen["amount"] == big
        await server.fulfill(transfer["id"], fulfillment)
        await client.wait_transfer_event("outgoing_fulfill", transfer["id"])
        assert await server.balance() == big
        assert await client.balance() == "-" + big
        assert await server.peer_balance() == big
        assert await client.peer_balance() == "-" + big
        assert await client.limit() == "-" + big + "0"


async def test_minimal_rejection_reason_from_py(sides: SideFactory) -> None:
    """Our defaults for a sparse reason, as the reference receives them."""
    server = await sides.py_server("memory")
    client = await sides.js_client(server.port)
    _, condition = new_fulfillment()
    transfer = transfer_from(client, "2", condition)
    await client.send_transfer(transfer)
    await server.wait_transfer_event("incoming_prepare", transfer["id"])
    await server.reject(transfer["id"], {"code": "F02", "name": "Unreachable"})
    _, reason = await client.wait_transfer_event("outgoing_reject", transfer["id"])
    assert (reason["code"], reason["name"]) == ("F02", "Unreachable")
    assert reason["triggered_by"] == server.account  # defaults to the own account
    assert reason["additional_info"] == "not JSON"  # empty data, which the reference can't parse
    assert reason["triggered_at"]
    await check_balances(Pair(server, client, "minimal reason"), 0)
