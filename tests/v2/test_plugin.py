"""BtpPlugin <-> BtpPlugin over real loopback WebSockets (BTP 2.0)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.codec import ilp4
from ilp_paychan.codec.btp import ContentType, Message, ProtocolData
from ilp_paychan.codec.ilp4 import IlpPrepare
from ilp_paychan.errors import (
    NotAcceptedError,
    NotConnectedError,
    PeerError,
    RequestHandlerAlreadyRegisteredError,
)
from ilp_paychan.v2.accounting import PassThrough
from ilp_paychan.v2.errors import (
    DataHandlerAlreadyRegisteredError,
    InvalidInputError,
    MoneyHandlerAlreadyRegisteredError,
)
from ilp_paychan.v2.plugin import BtpPlugin

from .conftest import LOOPBACK, SECRET, Pair, eventually, fulfill, prepare


async def fulfil_all(data: bytes) -> bytes:
    return fulfill(ilp4.decode_prepare(data).data)


def reject_of(raw: bytes) -> ilp4.IlpReject:
    packet = ilp4.decode_reply(raw)
    assert isinstance(packet, ilp4.IlpReject), packet
    return packet


async def test_send_data_is_fulfilled_both_ways(pair: Pair) -> None:
    await pair.start()
    pair.server.register_data_handler(fulfil_all)
    pair.client.register_data_handler(fulfil_all)
    assert await pair.client.send_data(prepare(data=b"up")) == fulfill(b"up")
    assert await pair.server.send_data(prepare(data=b"down")) == fulfill(b"down")


async def test_a_reject_of_the_handler_reaches_the_sender_unchanged(pair: Pair) -> None:
    await pair.start()
    reject = ilp4.encode_reject(ilp4.IlpReject("F99", "test.bob", "no thanks", b"why"))

    async def refuse(_: bytes) -> bytes:
        return reject

    pair.server.register_data_handler(refuse)
    assert await pair.client.send_data(prepare()) == reject


async def test_no_data_handler_is_an_f02_reject(pair: Pair) -> None:
    await pair.start({"address": "test.server"})
    got = reject_of(await pair.client.send_data(prepare()))
    assert (got.code, got.triggered_by) == ("F02", "test.server")
    assert got.message == "no request handler registered"


async def test_a_handler_that_raises_is_a_t00_reject_and_an_error_event(pair: Pair) -> None:
    await pair.start({"address": "test.server"})
    errors: list[BaseException] = []
    pair.server.on("error", errors.append)

    async def broken(_: bytes) -> bytes:
        raise RuntimeError("database on fire")

    pair.server.register_data_handler(broken)
    got = reject_of(await pair.client.send_data(prepare()))
    assert (got.code, got.triggered_by) == ("T00", "test.server")
    assert "database on fire" in got.message
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)


async def test_a_handler_returning_garbage_or_a_wrong_fulfillment_is_caught(pair: Pair) -> None:
    await pair.start()
    answers = [b"nonsense", ilp4.encode_fulfill(ilp4.IlpFulfill(bytes(32)))]

    async def bad(_: bytes) -> bytes:
        return answers.pop(0)

    pair.server.register_data_handler(bad)
    assert reject_of(await pair.client.send_data(prepare())).code == "T00"
    assert reject_of(await pair.client.send_data(prepare())).code == "F05"


async def test_a_handler_returning_a_malformed_reply_is_a_t00_reject_and_an_error_event(
    pair: Pair,
) -> None:
    """Bytes that start like a Reject or a Fulfill but do not decode never reach the peer."""
    await pair.start({"address": "test.server"})
    errors: list[BaseException] = []
    pair.server.on("error", errors.append)
    good_reject = ilp4.encode_reject(ilp4.IlpReject("F99", "test.server", "no thanks"))
    answers = [b"\x0e", b"\x0e\x05junk!", good_reject[:-1] + b"\xff", b"\x0d\x01", b""]
    answers.append(good_reject)
    count = len(answers)

    async def malformed(_: bytes) -> bytes:
        return answers.pop(0)

    pair.server.register_data_handler(malformed)
    for _ in range(count - 1):
        got = reject_of(await pair.client.send_data(prepare()))
        assert (got.code, got.triggered_by) == ("T00", "test.server")
        assert got.message == "the data handler returned no ILP Fulfill or Reject"
    assert await pair.client.send_data(prepare()) == good_reject  # passed on unchanged
    assert len(errors) == count - 1
    assert all(isinstance(error, ValueError) for error in errors)
    assert "no well-formed ILP Fulfill or Reject" in str(errors[0])


async def test_no_answer_before_the_expiry_is_a_local_r00(pair: Pair) -> None:
    await pair.start({"address": "test.server"}, {"address": "test.client"})
    release = asyncio.Event()

    async def slow(data: bytes) -> bytes:
        await release.wait()
        return fulfill()

    pair.server.register_data_handler(slow)
    got = reject_of(await pair.client.send_data(prepare(seconds=0.3)))
    assert (got.code, got.triggered_by) == ("R00", "test.client")
    release.set()
    expired = reject_of(await pair.client.send_data(prepare(seconds=-1)))
    assert expired.code == "R00"
    assert "before it was sent" in expired.message


async def test_send_data_refuses_what_is_no_prepare() -> None:
    plugin = BtpPlugin(server=f"btp+ws://:s@{LOOPBACK}:1")
    with pytest.raises(InvalidInputError) as info:
        await plugin.send_data(fulfill())
    assert info.value.field == "type"
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidInputError, match="destination"):
        await plugin.send_data(prepare().replace(b"test.peer.bob", b"test.peer bob"))
    with pytest.raises(InvalidInputError, match="data"):
        await plugin.send_data("text")  # type: ignore[arg-type]
    with pytest.raises(NotConnectedError):
        await plugin.send_data(prepare())


async def test_a_malformed_incoming_prepare_is_an_f01_reject(pair: Pair) -> None:
    await pair.start()
    assert pair.client._link is not None
    answer = await pair.client._link.request(
        Message(0, (ProtocolData("ilp", ContentType.OCTET_STREAM, b"\x0c\x02\x00\x00"),))
    )
    assert reject_of(answer.protocol_data[0].data).code == "F01"
    empty = await pair.client._link.request(Message(0, ()))
    assert empty.protocol_data == ()


async def test_send_money_reaches_the_money_handler(pair: Pair) -> None:
    await pair.start()
    got: list[str] = []

    async def receive(amount: str) -> None:
        got.append(amount)

    pair.server.register_money_handler(receive)
    await pair.client.send_money("123")
    await pair.client.send_money("0")  # nothing to send
    await pair.client.send_money(str(2**64 - 1))
    assert got == ["123", str(2**64 - 1)]
    with pytest.raises(NotAcceptedError, match="no money handler"):
        await pair.server.send_money("5")
    for bad in ("-1", "1.5", "", str(2**64), 7):
        with pytest.raises(InvalidInputError, match="amount"):
            await pair.client.send_money(bad)  # type: ignore[arg-type]


async def test_handlers_register_once() -> None:
    plugin = BtpPlugin(server=f"btp+ws://:s@{LOOPBACK}:1")
    plugin.register_data_handler(fulfil_all)
    with pytest.raises(DataHandlerAlreadyRegisteredError):
        plugin.register_data_handler(fulfil_all)
    with pytest.raises(RequestHandlerAlreadyRegisteredError):  # what older code catches
        plugin.register_data_handler(fulfil_all)
    plugin.deregister_data_handler()
    plugin.register_data_handler(fulfil_all)
    with pytest.raises(TypeError):
        plugin.register_money_handler("not callable")  # type: ignore[arg-type]

    async def money(amount: str) -> None:
        return None

    plugin.register_money_handler(money)
    with pytest.raises(MoneyHandlerAlreadyRegisteredError):
        plugin.register_money_handler(money)
    with pytest.raises(RequestHandlerAlreadyRegisteredError):
        plugin.register_money_handler(money)


async def test_a_wrong_token_is_refused_at_connect(pair: Pair) -> None:
    server = pair.make({"listener": {"port": 0, "host": LOOPBACK, "secret": SECRET}})
    await server.connect()
    client = pair.make({"server": f"btp+ws://:wrong@{LOOPBACK}:{server.listener_port}"})
    with pytest.raises(NotAcceptedError) as info:
        await client.connect()
    assert isinstance(info.value, PeerError)
    assert not client.is_connected()
    assert not server.is_connected()


async def test_btp_account_and_token_options_authenticate_too(pair: Pair) -> None:
    server = pair.make({"listener": {"port": 0, "host": LOOPBACK, "secret": "a b/c"}})
    await server.connect()
    client = pair.make(
        {
            "server": f"btp+ws://{LOOPBACK}:{server.listener_port}",
            "btpAccount": "alice",
            "btpToken": "a b/c",
        }
    )
    await client.connect()
    assert client.is_connected()


async def test_the_client_reconnects_after_the_listener_restarts(pair: Pair) -> None:
    await pair.start()
    events: list[str] = []
    pair.client.on("connect", lambda: events.append("connect"))
    pair.client.on("disconnect", lambda: events.append("disconnect"))
    pair.server.register_data_handler(fulfil_all)
    await pair.server.disconnect()
    await eventually(lambda: not pair.client.is_connected(), "the client sees the drop")
    await pair.server.connect()  # the same port again
    await eventually(pair.client.is_connected, "the client is back")
    assert await pair.client.send_data(prepare(data=b"again")) == fulfill(b"again")
    assert events == ["disconnect", "connect"]


async def test_the_listener_returns_from_connect_before_any_client(pair: Pair) -> None:
    server = pair.make({"listener": {"port": 0, "host": LOOPBACK, "secret": SECRET}})
    seen: list[str] = []
    server.on("connect", lambda: seen.append("connect"))
    await server.connect()
    assert not server.is_connected()
    assert server.listener_port
    client = pair.make({"server": f"btp+ws://:{SECRET}@{LOOPBACK}:{server.listener_port}"})
    await client.connect()
    await eventually(server.is_connected, "a client authenticated")
    assert seen == ["connect"]


async def test_many_prepares_in_flight_on_one_socket(pair: Pair) -> None:
    await pair.start()
    gate = asyncio.Event()
    arrived = 0

    async def hold(data: bytes) -> bytes:
        nonlocal arrived
        arrived += 1
        if arrived == 300:
            gate.set()
        await gate.wait()
        return fulfill(ilp4.decode_prepare(data).data)

    pair.server.register_data_handler(hold)
    packets = [prepare(data=str(i).encode()) for i in range(300)]
    replies = await asyncio.gather(*(pair.client.send_data(p) for p in packets))
    assert replies == [fulfill(str(i).encode()) for i in range(300)]


async def test_tls_between_two_plugins(pair: Pair, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    await pair.start(
        {"listener": {"cert": str(cert), "key": str(key)}},
        {"ca": str(cert)},
        scheme="btp+wss",
    )
    pair.server.register_data_handler(fulfil_all)
    assert await pair.client.send_data(prepare(data=b"tls")) == fulfill(b"tls")


class Recording(PassThrough):
    """An accounting that records its calls and refuses Prepares above a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls: list[tuple[Any, ...]] = []

    async def incoming_prepare(self, prepare: IlpPrepare) -> bytes | None:
        self.calls.append(("incoming_prepare", prepare.amount))
        if prepare.amount > self.limit:
            return ilp4.encode_reject(ilp4.IlpReject("T04", "", "over the limit"))
        return None

    async def incoming_settled(self, prepare: IlpPrepare, reply: bytes, fulfilled: bool) -> None:
        self.calls.append(("incoming_settled", prepare.amount, fulfilled))

    async def outgoing_settled(
        self, prepare: IlpPrepare, reply: bytes, fulfilled: bool, answered: bool
    ) -> None:
        self.calls.append(("outgoing_settled", prepare.amount, fulfilled, answered))

    async def incoming_money(self, amount: int, protocol_data: tuple[ProtocolData, ...]) -> None:
        self.calls.append(("incoming_money", amount))


async def test_the_accounting_seam_sees_packets_and_money(pair: Pair) -> None:
    server_books = Recording(limit=100)
    client_books = Recording(limit=0)
    await pair.start()
    server = pair.make(
        {"listener": {"port": 0, "host": LOOPBACK, "secret": SECRET}},
        accounting=server_books,
    )
    await server.connect()
    client = pair.make(
        {"server": f"btp+ws://:{SECRET}@{LOOPBACK}:{server.listener_port}"},
        accounting=client_books,
    )
    await client.connect()
    server.register_data_handler(fulfil_all)
    assert await client.send_data(prepare(50)) == fulfill(b"hello")
    assert reject_of(await client.send_data(prepare(500))).code == "T04"
    await client.send_money("7")  # the server's accounting takes it without a money handler
    assert server_books.calls == [
        ("incoming_prepare", 50),
        ("incoming_settled", 50, True),
        ("incoming_prepare", 500),
        ("incoming_money", 7),
    ]
    assert client_books.calls == [
        ("outgoing_settled", 50, True, True),
        ("outgoing_settled", 500, False, True),
    ]


async def test_observers_count_packets_by_type_and_code(pair: Pair) -> None:
    await pair.start()
    counted: list[tuple[str, str, str]] = []
    links: list[bool] = []

    class Observer:
        def packet(self, direction: str, kind: str, code: str) -> None:
            counted.append((direction, kind, code))

        def link_changed(self, up: bool) -> None:
            links.append(up)

    pair.client.add_observer(Observer())
    pair.server.add_observer(Observer())
    await pair.client.send_data(prepare())  # no handler: F02
    await pair.client.send_money("0")
    pair.server.register_data_handler(fulfil_all)
    await pair.client.send_data(prepare())
    assert sorted(counted) == sorted(
        [
            ("outgoing", "prepare", ""),
            ("incoming", "prepare", ""),
            ("incoming", "reject", "F02"),
            ("outgoing", "reject", "F02"),
            ("outgoing", "prepare", ""),
            ("incoming", "prepare", ""),
            ("incoming", "fulfill", ""),
            ("outgoing", "fulfill", ""),
        ]
    )
    await pair.client.disconnect()
    await eventually(lambda: links == [False, False], "both ends saw the link go")
