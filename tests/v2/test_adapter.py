"""V1Adapter over two real v1 Plugins on loopback BTP 1.0: ILPv4 packets in, ILPv4 packets out.

Each side is a `Plugin` (the listener stateful with a store, the client stateless unless a test
says otherwise) wrapped in a `V1Adapter`; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import Plugin, V1Adapter
from ilp_paychan.codec import ildcp, ilp4
from ilp_paychan.codec.ilp import IlpError, decode_ilp
from ilp_paychan.errors import (
    AlreadyRolledBackError,
    InvalidFieldsError,
    NotConnectedError,
    RequestHandlerAlreadyRegisteredError,
)
from ilp_paychan.v2 import PluginV2
from ilp_paychan.v2.errors import (
    DataHandlerAlreadyRegisteredError,
    InvalidInputError,
    MoneyHandlerAlreadyRegisteredError,
)
from testkit import trustline
from testkit.trustline import PREFIX, client_options
from testkit.waiting import wait_until

WAIT = 15.0


def server_options(**overrides: Any) -> dict[str, Any]:
    return trustline.server_options(**{"maxBalance": "1000000", **overrides})


def prepare(
    amount: int = 10,
    expires_in: float = 30.0,
    destination: str = "example.red.client.app",
    data: bytes = b"",
    preimage: bytes | None = None,
) -> tuple[ilp4.IlpPrepare, bytes]:
    """(a Prepare, its fulfillment)."""
    preimage = os.urandom(32) if preimage is None else preimage
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
    expires_at = expires_at.replace(microsecond=expires_at.microsecond // 1000 * 1000)
    packet = ilp4.IlpPrepare(
        amount, expires_at, hashlib.sha256(preimage).digest(), destination, data
    )
    return packet, preimage


async def send(adapter: V1Adapter, packet: ilp4.IlpPrepare) -> ilp4.IlpFulfill | ilp4.IlpReject:
    async with asyncio.timeout(WAIT):
        return ilp4.decode_reply(await adapter.send_data(ilp4.encode(packet)))


@dataclass
class Sides:
    server: V1Adapter
    client: V1Adapter

    async def close(self) -> None:
        await self.client.disconnect()
        await self.server.disconnect()


async def start(
    server_overrides: dict[str, Any] | None = None,
    client_overrides: dict[str, Any] | None = None,
) -> Sides:
    server = V1Adapter(Plugin(server_options(**(server_overrides or {}))))
    await server.connect()
    port = server.plugin.listener_port
    assert port is not None
    client = V1Adapter(Plugin(client_options(port, **(client_overrides or {}))))
    await client.connect()
    return Sides(server, client)


@pytest.fixture
async def sides() -> AsyncIterator[Sides]:
    s = await start()
    try:
        yield s
    finally:
        await s.close()


def fulfiller(
    preimages: dict[bytes, bytes], seen: list[ilp4.IlpPrepare] | None = None, answer: bytes = b""
) -> Callable[[bytes], Awaitable[bytes]]:
    """A data handler fulfilling every Prepare whose condition it knows (F05 otherwise)."""

    async def handle(data: bytes) -> bytes:
        packet = ilp4.decode_prepare(data)
        if seen is not None:
            seen.append(packet)
        preimage = preimages.get(packet.execution_condition)
        if preimage is None:
            return ilp4.encode(ilp4.IlpReject("F05", "example.red.x", "unknown condition"))
        return ilp4.encode(ilp4.IlpFulfill(preimage, answer))

    return handle


def by_condition(*preimages: bytes) -> dict[bytes, bytes]:
    return {hashlib.sha256(p).digest(): p for p in preimages}


# ---------------------------------------------------------------------- the interface


def test_it_is_a_v2_plugin() -> None:
    adapter = V1Adapter(Plugin(server_options()))
    assert isinstance(adapter, PluginV2)


def test_one_adapter_per_plugin_and_one_handler_each() -> None:
    plugin = Plugin(server_options())
    adapter = V1Adapter(plugin)
    with pytest.raises(RequestHandlerAlreadyRegisteredError):
        V1Adapter(plugin)

    async def handler(data: bytes) -> bytes:
        return data

    async def money(amount: str) -> None:
        return None

    adapter.register_data_handler(handler)
    with pytest.raises(DataHandlerAlreadyRegisteredError):
        adapter.register_data_handler(handler)
    with pytest.raises(RequestHandlerAlreadyRegisteredError):  # what older code catches
        adapter.register_data_handler(handler)
    adapter.deregister_data_handler()
    adapter.register_data_handler(handler)
    adapter.register_money_handler(money)
    with pytest.raises(MoneyHandlerAlreadyRegisteredError):
        adapter.register_money_handler(money)
    with pytest.raises(RequestHandlerAlreadyRegisteredError):
        adapter.register_money_handler(money)
    adapter.deregister_money_handler()
    adapter.deregister_data_handler()
    with pytest.raises(TypeError, match="data handler"):
        adapter.register_data_handler("x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown event"):
        adapter.on("conect", lambda: None)


async def test_send_data_before_connect_is_refused() -> None:
    adapter = V1Adapter(Plugin(server_options()))
    packet, _ = prepare()
    with pytest.raises(NotConnectedError):
        await adapter.send_data(ilp4.encode(packet))


async def test_connect_and_disconnect_events(sides: Sides) -> None:
    seen: list[str] = []
    sides.client.on("disconnect", lambda: seen.append("disconnect"))
    assert sides.client.is_connected()
    await sides.client.disconnect()
    assert seen == ["disconnect"]
    assert not sides.client.is_connected()
    sides.client.on("connect", lambda: seen.append("connect"))
    await sides.client.connect()
    assert seen == ["disconnect", "connect"]


# ---------------------------------------------------------------------- fulfil


@pytest.mark.parametrize("direction", ["client to server", "server to client"])
async def test_a_prepare_is_fulfilled_with_its_data_and_the_handler_sees_it_exactly(
    sides: Sides, direction: str
) -> None:
    forward = direction == "client to server"
    sender, receiver = (sides.client, sides.server) if forward else (sides.server, sides.client)
    packet, preimage = prepare(107, data=b"hello \x00\xff")
    seen: list[ilp4.IlpPrepare] = []
    receiver.register_data_handler(fulfiller(by_condition(preimage), seen, b"thank you"))
    reply = await send(sender, packet)
    assert reply == ilp4.IlpFulfill(preimage, b"thank you")
    assert seen == [packet]
    server_balance = await sides.server.plugin.get_balance()
    assert server_balance == ("107" if forward else "-107")


async def test_the_transfer_on_the_v1_link_is_what_ilp_compat_plugin_sends(sides: Sides) -> None:
    records: list[dict[str, Any]] = []
    sides.server.plugin.on("incoming_prepare", records.append)
    packet, preimage = prepare(5, data=b"d")
    sides.server.register_data_handler(fulfiller(by_condition(preimage)))
    assert isinstance(await send(sides.client, packet), ilp4.IlpFulfill)
    (record,) = records
    assert record["amount"] == "5"
    assert record["expiresAt"] == packet.expires_at.isoformat(timespec="milliseconds")[:-6] + "Z"
    assert record["custom"] == {}
    assert record["from"] == sides.client.plugin.get_account()
    assert record["to"] == sides.server.plugin.get_account()
    # ilp: a type 10 forwarded payment (destination, data), base64url
    from ilp_paychan.codec.ilp_compat import IlpForwardedPayment, decode_compat
    from ilp_paychan.v2.compat_mapping import b64_lenient

    assert decode_compat(b64_lenient(record["ilp"])) == IlpForwardedPayment(
        packet.destination, b"d"
    )


@pytest.mark.parametrize("amount", [1, 2**53 + 1, 2**64 - 1])
async def test_amounts_are_exact(amount: int) -> None:
    s = await start(server_overrides={"maxBalance": str(2**70)})
    try:
        packet, preimage = prepare(amount)
        seen: list[ilp4.IlpPrepare] = []
        s.server.register_data_handler(fulfiller(by_condition(preimage), seen))
        assert isinstance(await send(s.client, packet), ilp4.IlpFulfill)
        assert seen[0].amount == amount
        assert await s.server.plugin.get_balance() == str(amount)
    finally:
        await s.close()


async def test_a_hundred_in_flight_all_fulfilled_and_counted(sides: Sides) -> None:
    packets = [prepare(i + 1, data=i.to_bytes(2, "big")) for i in range(100)]
    release = asyncio.Event()
    preimages = by_condition(*(p for _, p in packets))
    inner = fulfiller(preimages)

    async def handler(data: bytes) -> bytes:
        await release.wait()  # all 100 held at once before any is answered
        return await inner(data)

    sides.server.register_data_handler(handler)
    sending = [asyncio.ensure_future(send(sides.client, p)) for p, _ in packets]
    await wait_until(lambda: sides.server.plugin.in_flight_count() == 100, "100 prepared", WAIT)
    release.set()
    replies = await asyncio.gather(*sending)
    assert replies == [ilp4.IlpFulfill(p, b"") for _, p in packets]
    assert await sides.server.plugin.get_balance() == str(sum(range(1, 101)))
    assert sides.client._pending == {}


# ---------------------------------------------------------------------- reject


@pytest.mark.parametrize(
    "reject",
    [
        ilp4.IlpReject("T04", "example.red.server.app", "exceeds maximum balance"),
        ilp4.IlpReject("F99", "example.red.server.app", "nein ✓ — no", b"\x00\x01\xff" * 50),
        ilp4.IlpReject(
            "F08", "example.red.server", "too much", ilp4.encode_amount_too_large_data(9, 5)
        ),
        ilp4.IlpReject("X42", "example.red.server", "", b""),
        ilp4.IlpReject("F02", "g.somewhere.else", "no route", b"r"),
    ],
    ids=["T04", "F99-data", "F08", "unknown-code", "other-address"],
)
async def test_a_reject_comes_back_with_code_message_and_data(
    sides: Sides, reject: ilp4.IlpReject
) -> None:
    async def handler(data: bytes) -> bytes:
        return ilp4.encode(reject)

    sides.server.register_data_handler(handler)
    packet, _ = prepare(3)
    assert await send(sides.client, packet) == reject
    assert await sides.server.plugin.get_balance() == "0"


async def test_a_reject_with_empty_triggered_by_names_the_rejecting_account(sides: Sides) -> None:
    async def handler(data: bytes) -> bytes:
        return ilp4.encode(ilp4.IlpReject("F99", "", "who?"))

    sides.server.register_data_handler(handler)
    reply = await send(sides.client, prepare()[0])
    assert reply == ilp4.IlpReject("F99", sides.server.plugin.get_account(), "who?")


async def test_no_data_handler_is_t01(sides: Sides) -> None:
    reply = await send(sides.client, prepare()[0])
    assert reply == ilp4.IlpReject(
        "T01", sides.server.plugin.get_account(), "No data handler registered"
    )


async def test_a_handler_that_raises_is_f00_with_its_message(sides: Sides) -> None:
    async def handler(data: bytes) -> bytes:
        raise RuntimeError("database on fire")

    sides.server.register_data_handler(handler)
    reply = await send(sides.client, prepare()[0])
    assert isinstance(reply, ilp4.IlpReject)
    assert (reply.code, reply.message) == ("F00", "database on fire")


@pytest.mark.parametrize("answer", [b"", b"\x0c\x00", b"not a packet", "text"])
async def test_a_handler_answering_with_no_fulfill_or_reject_is_f00(
    sides: Sides, answer: Any
) -> None:
    async def handler(data: bytes) -> Any:
        return answer

    sides.server.register_data_handler(handler)
    reply = await send(sides.client, prepare()[0])
    assert isinstance(reply, ilp4.IlpReject)
    assert reply.code == "F00"


async def test_a_wrong_fulfillment_is_rejected_f05_at_once(sides: Sides) -> None:
    async def handler(data: bytes) -> bytes:
        return ilp4.encode(ilp4.IlpFulfill(bytes(32)))

    sides.server.register_data_handler(handler)
    reply = await send(sides.client, prepare(expires_in=60)[0])
    assert isinstance(reply, ilp4.IlpReject)
    assert reply.code == "F05"
    assert "does not match" in reply.message
    assert await sides.server.plugin.get_balance() == "0"


async def test_a_sync_handler_works_too(sides: Sides) -> None:
    packet, preimage = prepare()
    sides.server.register_data_handler(
        lambda data: ilp4.encode(ilp4.IlpFulfill(preimage))  # type: ignore[arg-type, return-value]
    )
    assert await send(sides.client, packet) == ilp4.IlpFulfill(preimage)


# ---------------------------------------------------------------------- expiry and timeouts


async def test_expiry_is_r00_and_a_late_fulfill_is_refused_and_reported(sides: Sides) -> None:
    packet, preimage = prepare(9, expires_in=1.0)
    expired = asyncio.Event()
    errors: list[BaseException] = []
    sides.server.on("error", errors.append)

    async def handler(data: bytes) -> bytes:
        await expired.wait()
        return ilp4.encode(ilp4.IlpFulfill(preimage))

    sides.server.register_data_handler(handler)
    reply = await send(sides.client, packet)
    assert isinstance(reply, ilp4.IlpReject)
    assert reply.code == "R00"
    expired.set()
    await wait_until(lambda: errors, "the refused Fulfill reported", WAIT)
    assert isinstance(errors[0], AlreadyRolledBackError)
    assert await sides.server.plugin.get_balance() == "0"


async def test_a_prepare_already_expired_is_r00_without_sending(sides: Sides) -> None:
    packet, _ = prepare(expires_in=-1.0)
    reply = await send(sides.client, packet)
    assert isinstance(reply, ilp4.IlpReject)
    assert (reply.code, reply.triggered_by) == ("R00", sides.client.plugin.get_account())
    assert sides.server.plugin.in_flight_count() == 0


async def test_disconnecting_fails_the_calls_in_flight(sides: Sides) -> None:
    release = asyncio.Event()

    async def handler(data: bytes) -> bytes:
        await release.wait()
        return ilp4.encode(ilp4.IlpReject("F99", "", ""))

    sides.server.register_data_handler(handler)
    call = asyncio.ensure_future(send(sides.client, prepare()[0]))
    await wait_until(lambda: sides.server.plugin.in_flight_count() == 1, "prepared", WAIT)
    await sides.client.disconnect()
    with pytest.raises(NotConnectedError):
        await call
    release.set()


# ---------------------------------------------------------------------- refusals


async def test_the_peers_limit_refusal_is_t04_and_nothing_moves() -> None:
    s = await start(server_overrides={"maxBalance": "100"})
    try:
        s.server.register_data_handler(fulfiller({}))
        reply = await send(s.client, prepare(101)[0])
        assert isinstance(reply, ilp4.IlpReject)
        assert (reply.code, reply.triggered_by) == ("T04", s.server.plugin.get_account())
        assert "NotAcceptedError" in reply.message
        assert await s.server.plugin.get_balance() == "0"
        assert s.client._pending == {}
    finally:
        await s.close()


async def test_our_own_minimum_is_t04_before_sending() -> None:
    s = await start(client_overrides={"store": "memory:", "maxBalance": "0", "minBalance": "-10"})
    try:
        reply = await send(s.client, prepare(11)[0])
        assert isinstance(reply, ilp4.IlpReject)
        assert (reply.code, reply.triggered_by) == ("T04", s.client.plugin.get_account())
        assert s.server.plugin.in_flight_count() == 0
    finally:
        await s.close()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"\x0c\x05\x00", "length"),
        (b"\x0c\x04\x00\x00\x00\x00", "amount"),
        (ilp4.encode(prepare()[0])[:-3], "length"),
    ],
    ids=["length", "amount", "truncated"],
)
async def test_a_malformed_prepare_is_invalid_fields_naming_the_field(
    sides: Sides, data: bytes, field: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        await sides.client.send_data(data)
    assert info.value.field == field
    assert isinstance(info.value, InvalidFieldsError)


async def test_send_data_takes_bytes_only(sides: Sides) -> None:
    with pytest.raises(InvalidInputError, match="bytes") as info:
        await sides.client.send_data("0c00")  # type: ignore[arg-type]
    assert info.value.field == "data"


async def test_send_money_checks_its_amount_and_moves_nothing(sides: Sides) -> None:
    await sides.client.send_money("0")
    await sides.client.send_money("123456789012345678901234567890")
    for bad in ("-1", "1.5", "", " 1", 5):
        with pytest.raises(InvalidInputError, match="amount"):
            await sides.client.send_money(bad)  # type: ignore[arg-type]
    assert await sides.server.plugin.get_balance() == "0"


# ---------------------------------------------------------------------- not a paying Prepare


async def test_ildcp_is_answered_from_the_plugins_own_account_and_info(sides: Sides) -> None:
    request = ildcp.encode_request(ildcp.IldcpRequest(datetime.now(UTC) + timedelta(seconds=60)))
    answer = ildcp.decode_response(await sides.client.send_data(request))
    assert answer == ildcp.IldcpResponse(sides.client.plugin.get_account(), 2, "USD")
    assert sides.server.plugin.in_flight_count() == 0


async def test_a_zero_amount_prepare_travels_as_a_message(sides: Sides) -> None:
    packet, preimage = prepare(0, data=b"stream frames")
    seen: list[ilp4.IlpPrepare] = []
    sides.server.register_data_handler(fulfiller(by_condition(preimage), seen, b"more frames"))
    assert await send(sides.client, packet) == ilp4.IlpFulfill(preimage, b"more frames")
    assert seen == [packet]
    assert await sides.server.plugin.get_balance() == "0"


async def test_a_zero_amount_prepare_whose_handler_raises_is_f00(sides: Sides) -> None:
    async def handler(data: bytes) -> bytes:
        raise ValueError("no thanks")

    sides.server.register_data_handler(handler)
    reply = await send(sides.client, prepare(0)[0])
    assert reply == ilp4.IlpReject("F00", sides.server.plugin.get_account(), "no thanks")


async def test_other_packets_go_as_messages_and_their_answer_comes_back(sides: Sides) -> None:
    async def echo(data: bytes) -> bytes:
        return b"echo:" + data

    sides.server.register_data_handler(echo)
    async with asyncio.timeout(WAIT):
        assert await sides.client.send_data(b"\x63hello") == b"echo:\x63hello"


async def test_a_message_without_a_data_handler_gets_an_ilp_v1_error(sides: Sides) -> None:
    """The v1 plugin answers a request handler's failure with an ILP v1 error, as the
    framework does; that is the reply a non-Prepare packet gets."""
    async with asyncio.timeout(WAIT):
        answer = await sides.client.send_data(b"\x63hello")
    error = decode_ilp(answer)
    assert isinstance(error, IlpError)
    assert error.code == "F00"
    assert b"no data handler" in error.data


# ---------------------------------------------------------------------- restarts (SQLite)


def durable_server(tmp_path: Path, port: int = 0, **extra: Any) -> V1Adapter:
    return V1Adapter(
        Plugin(
            server_options(
                store=f"sqlite:///{tmp_path}/server.db",
                listener={"port": port, "host": "127.0.0.1"},
                shutdownTimeout=0.2,
                **extra,
            )
        )
    )


@contextlib.asynccontextmanager
async def running(adapter: V1Adapter) -> AsyncIterator[V1Adapter]:
    await adapter.connect()
    try:
        yield adapter
    finally:
        await adapter.disconnect()


async def test_a_receiver_restarted_before_answering_lets_the_sender_see_r00(
    tmp_path: Path,
) -> None:
    """The handler never answered: after the restart the transfer is not offered again (a
    connector would forward it twice); its expiry cancels it and the sender gets R00."""
    packet, _ = prepare(7, expires_in=3.0)
    never = asyncio.Event()

    async def stuck(data: bytes) -> bytes:
        await never.wait()
        raise AssertionError("unreachable")

    first = durable_server(tmp_path)
    first.register_data_handler(stuck)
    await first.connect()
    port = first.plugin.listener_port
    assert port is not None
    client = V1Adapter(Plugin(client_options(port)))
    await client.connect()
    try:
        call = asyncio.ensure_future(send(client, packet))
        await wait_until(lambda: first.plugin.in_flight_count() == 1, "prepared", WAIT)
        await first.disconnect()
        for task in list(first._handling):
            task.cancel()
        second = durable_server(tmp_path, port)
        offered: list[bytes] = []

        async def record(data: bytes) -> bytes:
            offered.append(data)
            return ilp4.encode(ilp4.IlpReject("F99", "", ""))

        second.register_data_handler(record)
        async with running(second):
            reply = await call
            assert isinstance(reply, ilp4.IlpReject)
            assert reply.code == "R00"
            assert offered == []
            assert await second.plugin.get_balance() == "0"
            assert await second.plugin.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
    finally:
        await client.disconnect()


async def test_a_fulfill_reaches_a_sender_that_restarted_and_both_ledgers_agree(
    tmp_path: Path,
) -> None:
    """The sender's call is gone with its process, but the money is not: the receiver's
    Fulfill is taken by the restarted sender from its stored prepared transfer."""
    packet, preimage = prepare(40, expires_in=20.0)
    release = asyncio.Event()

    async def held(data: bytes) -> bytes:
        await release.wait()
        return ilp4.encode(ilp4.IlpFulfill(preimage, b"late but fine"))

    first = durable_server(tmp_path)
    await first.connect()
    port = first.plugin.listener_port
    assert port is not None
    receiver = V1Adapter(Plugin(client_options(port)))
    receiver.register_data_handler(held)
    confirmed: list[Any] = []
    receiver.plugin.on("incoming_fulfill_confirmed", confirmed.append)
    await receiver.connect()
    try:
        call = asyncio.ensure_future(first.send_data(ilp4.encode(packet)))
        await wait_until(lambda: receiver._handling, "the handler holding the Prepare", WAIT)
        await first.disconnect()
        with pytest.raises(NotConnectedError):
            await call
        async with running(durable_server(tmp_path, port)) as second:
            assert second.plugin.in_flight_count() == 1
            release.set()
            await wait_until(lambda: confirmed, "the Fulfill acknowledged", WAIT)
            assert await second.plugin.get_balance() == "-40"
            record = await second.plugin.transfer_log.get(confirmed[0]["id"])
            assert record["state"] == "fulfilled"
            assert await receiver.plugin.get_balance() == "40"
    finally:
        await receiver.disconnect()


async def test_the_adapter_waits_for_running_handlers_before_disconnecting(sides: Sides) -> None:
    packet, preimage = prepare(2)
    entered = asyncio.Event()

    async def slow(data: bytes) -> bytes:
        entered.set()
        await asyncio.sleep(0.2)
        return ilp4.encode(ilp4.IlpFulfill(preimage))

    sides.server.register_data_handler(slow)
    call = asyncio.ensure_future(send(sides.client, packet))
    async with asyncio.timeout(WAIT):
        await entered.wait()
    await sides.server.disconnect()
    assert await call == ilp4.IlpFulfill(preimage)
    await sides.server.connect()


async def test_an_adapter_made_after_connect_knows_the_accounts() -> None:
    server = Plugin(server_options())
    await server.connect()
    port = server.listener_port
    assert port is not None
    client = Plugin(client_options(port))
    await client.connect()
    a, b = V1Adapter(server), V1Adapter(client)
    try:
        packet, preimage = prepare(4)
        records: list[dict[str, Any]] = []
        server.on("incoming_prepare", records.append)
        a.register_data_handler(fulfiller(by_condition(preimage)))
        assert await send(b, packet) == ilp4.IlpFulfill(preimage)
        assert (records[0]["from"], records[0]["ledger"]) == (client.get_account(), PREFIX)
    finally:
        await b.disconnect()
        await a.disconnect()
