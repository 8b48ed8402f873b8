"""Behaviour pinned by the probes and transcripts in tests/vectors, at the plugin level.

Where the reference's behaviour is a defect, the fixed behaviour is tested and
the docstring says so.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import Fulfill, Message, ProtocolData, Reject
from ilp_paychan.codec.ilp import IlpError, decode_ilp
from ilp_paychan.errors import (
    FulfillmentPendingError,
    InvalidFieldsError,
    NotAcceptedError,
    PeerError,
    UnreachableError,
)

from .conftest import (
    Pair,
    RawPeer,
    Recorder,
    client_options,
    make_transfer,
    prepare_packet,
    server_options,
    start_pair,
    wait_until,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_unanswered_fulfill_is_kept_and_redelivered_until_acknowledged() -> None:
    """Probe transferlog-keys: the reference fulfilled locally and never retried.
    Here fulfill_condition says the fulfilment is pending (committed, not yet acknowledged), the
    notice survives and the Fulfill is re-sent until the peer acknowledges it, which the
    incoming_fulfill_confirmed event reports."""
    plugin = Plugin(server_options(requestTimeout=0.2))
    events = Recorder(plugin, "incoming_fulfill_confirmed")
    await plugin.connect()
    assert plugin.listener_port is not None
    peer = await RawPeer.open(plugin.listener_port)
    try:
        packet, preimage = prepare_packet(amount=4)
        assert isinstance(await peer.request(packet), btp.Response)
        with pytest.raises(FulfillmentPendingError, match="incoming_fulfill_confirmed"):
            await plugin.fulfill_condition(packet.transfer_id, b64(preimage))
        first = await peer.next_request()
        assert isinstance(first, Fulfill)
        assert len(await plugin.transfer_log.list_peer_notices()) == 1
        again = await peer.next_request()  # the background re-delivery
        assert isinstance(again, Fulfill)
        assert again.transfer_id == packet.transfer_id
        await peer.answer(again)
        await wait_until(lambda: _notices(plugin, 0))
        assert await plugin.get_balance() == "4"
        ((record, fulfillment),) = await events.wait("incoming_fulfill_confirmed")
        assert (record["id"], fulfillment) == (packet.transfer_id, b64(preimage))
    finally:
        await peer.close()
        await plugin.disconnect()


async def _notices(plugin: Plugin, count: int) -> bool:
    return len(await plugin.transfer_log.list_peer_notices()) == count


async def test_reject_without_reason_sends_a_default_f00(listener: Plugin, raw: RawPeer) -> None:
    """Probe reject-without-reason: the reference cancelled, then threw TypeError and never told
    the peer. Our defaults (docs/api.md): F00 Bad Request from the own account."""
    packet, _ = prepare_packet()
    assert isinstance(await raw.request(packet), btp.Response)
    task = asyncio.ensure_future(listener.reject_incoming_transfer(packet.transfer_id))
    reject = await raw.next_request()
    await raw.answer(reject)
    await task
    assert isinstance(reject, Reject)
    error = decode_ilp(reject.protocol_data[0].data)
    assert isinstance(error, IlpError)
    assert (error.code, error.name, error.triggered_by, error.data) == (
        "F00",
        "Bad Request",
        "example.red.server",
        b"",
    )


async def test_reject_with_iso_string_triggered_at_works(listener: Plugin, raw: RawPeer) -> None:
    """Probe reject-without-reason, second half: an ISO string `triggered_at` threw in 1.3.5."""
    packet, _ = prepare_packet()
    assert isinstance(await raw.request(packet), btp.Response)
    reason = {"triggered_at": "2017-12-06T19:09:28.123Z", "additional_info": "why"}
    task = asyncio.ensure_future(listener.reject_incoming_transfer(packet.transfer_id, reason))
    reject = await raw.next_request()
    await raw.answer(reject)
    await task
    error = decode_ilp(reject.protocol_data[0].data)  # type: ignore[union-attr]
    assert isinstance(error, IlpError)
    assert error.triggered_at.isoformat() == "2017-12-06T19:09:28.123000+00:00"


async def test_unencodable_reason_leaves_the_transfer_prepared(
    listener: Plugin, raw: RawPeer
) -> None:
    packet, _ = prepare_packet()
    assert isinstance(await raw.request(packet), btp.Response)
    with pytest.raises(InvalidFieldsError, match="triggered_at"):
        await listener.reject_incoming_transfer(packet.transfer_id, {"triggered_at": "not a date"})
    assert (await listener.transfer_log.get(packet.transfer_id))["state"] == "prepared"
    assert raw.requests.empty()


async def test_zero_amount_and_non_uuid_ids_are_refused_before_sending(listener: Plugin) -> None:
    """Probes zero-amount and non-uuid-transfer-id (the latter produced an undecodable frame)."""
    transfer, _ = make_transfer("example.red.client", amount="0")
    with pytest.raises(InvalidFieldsError, match="amount"):
        await listener.send_transfer(transfer)
    with pytest.raises(InvalidFieldsError, match="id"):
        await listener.send_transfer({**transfer, "amount": "1", "id": "not-a-uuid"})
    assert await listener.transfer_log.get_outgoing_fulfilled_and_prepared() == "0"


async def test_long_expiry_does_not_fire_at_once(listener: Plugin, raw: RawPeer) -> None:
    """Probe long-expiry-timer-overflow: 30 days ahead fired at once in 1.3.5."""
    packet, _ = prepare_packet(expires_in=30 * 24 * 3600)
    assert isinstance(await raw.request(packet), btp.Response)
    await asyncio.sleep(0.05)
    assert (await listener.transfer_log.get(packet.transfer_id))["state"] == "prepared"
    assert listener.in_flight_count() == 1


async def test_request_during_connect_is_held_until_ready() -> None:
    """Probe message-before-connect: the reference answered F00 `TypeError`.
    A peer that sends a Prepare while our connect() still waits for its info answer gets a
    proper Response once we are ready."""
    answers: asyncio.Queue[btp.Packet] = asyncio.Queue()
    packet, _ = prepare_packet(amount=1)

    async def early_peer(ws: ServerConnection) -> None:
        async for frame in ws:
            request = btp.decode(frame)  # type: ignore[arg-type]
            if isinstance(request, btp.Response | btp.Error):
                answers.put_nowait(request)
                continue
            names = [pd.protocol_name for pd in getattr(request, "protocol_data", ())]
            if "auth" in names:
                await ws.send(btp.encode(btp.Response(request.request_id, ())))
            elif "info" in names:
                await ws.send(btp.encode(_with_id(packet, 77)))
                await asyncio.sleep(0.1)
                info = b'{"prefix":"p.","currencyCode":"X","currencyScale":0}'
                await ws.send(
                    btp.encode(btp.Response(request.request_id, (ProtocolData("info", 2, info),)))
                )

    async with serve(early_peer, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = Plugin({"server": f"btp+ws://:x@127.0.0.1:{port}"})
        events = Recorder(client, "incoming_prepare")
        await client.connect()
        try:
            answer = await asyncio.wait_for(answers.get(), 5)
            assert answer == btp.Response(77, ())
            assert len(events["incoming_prepare"]) == 1
        finally:
            await client.disconnect()


def _with_id(packet: btp.Prepare, request_id: int) -> btp.Prepare:
    import dataclasses

    return dataclasses.replace(packet, request_id=request_id)


async def test_connect_retry_after_failure_works() -> None:
    """Probe connect-retry-after-failure: later connect() calls hung in 1.3.5."""
    server = Plugin(server_options())
    await server.connect()
    port = server.listener_port
    assert port is not None
    await server.disconnect()
    client = Plugin(client_options(port, requestTimeout=1))
    for _ in range(2):
        with pytest.raises((UnreachableError, OSError)):
            await client.connect()
        assert not client.is_connected()
    await server.connect()  # same port again
    try:
        await client.connect()
        assert client.is_connected()
        await client.disconnect()
    finally:
        await server.disconnect()


async def test_concurrent_connects_share_one_attempt(listener: Plugin) -> None:
    """Probe concurrent-first-calls-open-two-sockets: one attempt, one event."""
    assert listener.listener_port is not None
    client = Plugin(client_options(listener.listener_port))
    events = Recorder(client, "connect")
    await asyncio.gather(client.connect(), client.connect(), client.connect())
    try:
        assert len(events["connect"]) == 1
    finally:
        await client.disconnect()


async def test_auth_failure_rejects_connect_promptly_and_can_be_retried(listener: Plugin) -> None:
    """Transcript 07: a README-style URL with a username is refused; 1.3.5's connect() then
    never settled."""
    assert listener.listener_port is not None
    client = Plugin(
        {"server": f"btp+ws://username:shared_secret@127.0.0.1:{listener.listener_port}"}
    )
    for _ in range(2):
        with pytest.raises(NotAcceptedError) as caught:
            await client.connect()
        assert isinstance(caught.value, PeerError)
        assert not client.is_connected()


async def test_stateless_client_fulfill_twice_succeeds_once(pair: Pair) -> None:
    """Probe stateless-client-fulfill-twice: the second call raised TransferNotFoundError."""
    transfer, fulfillment = make_transfer("example.red.client", amount="2")
    await pair.server.send_transfer(transfer)
    await pair.client.fulfill_condition(transfer["id"], fulfillment)
    await pair.client.fulfill_condition(transfer["id"], fulfillment)
    assert len(pair.client_events["incoming_fulfill"]) == 1
    await pair.server_events.wait("outgoing_fulfill")
    assert len(pair.server_events["outgoing_fulfill"]) == 1


async def test_side_protocol_answers(raw: RawPeer) -> None:
    """Transcript 09: balance → 8 zero bytes; an empty or unknown Message → a clean F00
    NotAcceptedError (the reference's was `TypeError`)."""
    answer = await raw.request(Message(0, (ProtocolData("balance", 0, b"\x00"),)))
    assert answer == btp.Response(answer.request_id, (ProtocolData("balance", 0, bytes(8)),))
    answer = await raw.request(Message(0, ()))
    assert isinstance(answer, btp.Error)
    assert (answer.code, answer.name) == ("F00", "NotAcceptedError")


async def test_expiry_between_a_stateful_server_and_a_stateless_client(pair: Pair) -> None:
    """Transcript 06, except that the stateless client expires its outgoing transfer
    too, so it reports exactly one of `outgoing_cancel` (own timer) or `outgoing_reject` (the
    server's R00 came first); the server reports `incoming_cancel`."""
    transfer, _ = make_transfer("example.red.server", amount="3", expires_in=0.6)
    await pair.client.send_transfer(transfer)
    await pair.server_events.wait("incoming_cancel")
    await wait_until(
        lambda: (
            len(pair.client_events["outgoing_cancel"]) + len(pair.client_events["outgoing_reject"])
            >= 1
        )
    )
    await asyncio.sleep(0.1)
    assert (
        len(pair.client_events["outgoing_cancel"]) + len(pair.client_events["outgoing_reject"]) == 1
    )
    assert await pair.client.transfer_log.get_outgoing_fulfilled_and_prepared() == "0"
    assert await pair.server.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
    await wait_until(lambda: _notices(pair.server, 0))


async def test_both_stateful_both_directions(stateful_pair: Pair) -> None:
    p = stateful_pair
    to_server, f1 = make_transfer(p.client.get_peer_account(), amount="7")
    to_client, f2 = make_transfer(p.server.get_peer_account(), amount="3")
    await p.client.send_transfer(to_server)
    await p.server.send_transfer(to_client)
    await p.server.fulfill_condition(to_server["id"], f1)
    await p.client.fulfill_condition(to_client["id"], f2)
    await p.client_events.wait("outgoing_fulfill")
    await p.server_events.wait("outgoing_fulfill")
    assert (await p.server.get_balance(), await p.client.get_balance()) == ("4", "-4")
    assert await p.client.get_peer_balance() == "-4"


async def test_events_carry_the_reference_arguments(pair: Pair) -> None:
    transfer, fulfillment = make_transfer(
        "example.red.server", amount="5", ilp="AQID", custom={"x": 1}
    )
    await pair.client.send_transfer(transfer)
    await pair.server.fulfill_condition(transfer["id"], fulfillment, "CQ")
    await pair.client_events.wait("outgoing_fulfill")
    [(incoming,)] = pair.server_events["incoming_prepare"]
    assert incoming["ilp"] == "AQID"
    assert incoming["custom"] == {"x": 1}
    [(record, text, ilp)] = pair.server_events["incoming_fulfill"]
    assert (record["id"], text, ilp) == (transfer["id"], fulfillment, "CQ")  # `ilp` added
    [(record, text, ilp)] = pair.client_events["outgoing_fulfill"]
    assert (record["id"], text, ilp) == (transfer["id"], fulfillment, "CQ")
    assert len(pair.server_events["connect"]) == 0  # registered after connect()


async def test_observers_see_round_trips_and_link_changes(listener: Plugin) -> None:
    seen: list[Any] = []

    class Observer:
        def round_trip(self, kind: str, seconds: float) -> None:
            seen.append((kind, seconds >= 0))

        def link_changed(self, up: bool) -> None:
            seen.append(("link", up))

    listener.add_observer(Observer())
    assert listener.listener_port is not None
    client = Plugin(client_options(listener.listener_port))
    await client.connect()
    await listener.get_peer_balance()
    await client.disconnect()
    await wait_until(lambda: ("link", False) in seen)
    assert seen[:2] == [("link", True), ("balance", True)]


async def test_repeat_prepare_after_the_transfer_was_fulfilled_is_acknowledged(
    listener: Plugin, raw: RawPeer
) -> None:
    """An identical re-send of a fulfilled transfer gets the original result (a Response, where
    RFC 23 Prepare > Idempotency has an Error; the reference counted it again when stateless), no
    new event, nothing counted again."""
    events = Recorder(listener, "incoming_prepare")
    packet, preimage = prepare_packet(amount=6)
    assert isinstance(await raw.request(packet), btp.Response)
    task = asyncio.ensure_future(listener.fulfill_condition(packet.transfer_id, b64(preimage)))
    await raw.answer(await raw.next_request())
    await task
    assert isinstance(await raw.request(packet), btp.Response)
    assert len(events["incoming_prepare"]) == 1
    assert await listener.get_balance() == "6"


async def test_client_reconnects_and_the_plugin_keeps_working() -> None:
    """The reference (1.3.5) never reconnects. The server goes away and comes back on the same
    port; the client's link redials and the plugin works without a new connect()."""
    pair = await start_pair()
    try:
        await pair.server.disconnect()
        await pair.server.connect()
        transfer, fulfillment = make_transfer("example.red.server", amount="1")
        await pair.client.send_transfer(transfer)
        await pair.server.fulfill_condition(transfer["id"], fulfillment)
        assert await pair.server.get_balance() == "1"
    finally:
        await pair.close()


async def test_server_pays_client_reject(pair: Pair) -> None:
    """Transcript 03: the client rejects with an LPI reason; the server's `outgoing_reject`
    carries it (with the whole `forwarded_by` list, not only its last entry)."""
    transfer, _ = make_transfer("example.red.client", amount="3")
    await pair.server.send_transfer(transfer)
    reason = {
        "code": "F06",
        "name": "Unexpected Payment",
        "triggered_by": "example.red.client",
        "forwarded_by": ["example.red.client"],
        "triggered_at": "2026-11-24T03:41:48.806Z",
        "additional_info": {"reason": "not expected"},
    }
    await pair.client.reject_incoming_transfer(transfer["id"], reason)
    [(rejected, emitted)] = await pair.server_events.wait("outgoing_reject")
    assert rejected["id"] == transfer["id"]
    assert emitted["code"] == "F06"
    assert emitted["name"] == "Unexpected Payment"
    assert emitted["forwarded_by"] == ["example.red.client"]
    assert emitted["additional_info"] == {"reason": "not expected"}
    assert emitted["triggered_at"].isoformat() == "2026-11-24T03:41:48.806000+00:00"
    [(record, normal)] = pair.client_events["incoming_reject"]
    assert record["id"] == transfer["id"]
    assert normal["code"] == "F06"
    assert await pair.server.get_balance() == "0"
    assert await pair.server.transfer_log.get_outgoing_fulfilled_and_prepared() == "0"
