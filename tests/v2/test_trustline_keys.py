"""Packet keys on the trustline: they sort by the Prepare's expiry and differ for different
Prepares; a Prepare whose key the other direction already holds is refused with F00 (both
directions); the key each packet is hashed to once is forgotten when its answer is recorded
(nothing kept per packet once it is settled)."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ilp_paychan.codec import ilp4
from ilp_paychan.codec.condition import b64url_encode
from ilp_paychan.codec.oer import encode_interledger_time
from ilp_paychan.v2.trustline import expiry_text, packet_key

from .conftest import CONDITION, Pair, fulfill, prepare
from .trustline_helpers import balance_of, trustline_of


async def echo_fulfiller(data: bytes) -> bytes:
    return fulfill()


async def test_incoming_prepare_with_the_key_of_one_we_sent_is_f00(pair: Pair) -> None:
    await pair.start({"store": "memory:"}, None)
    pair.client.register_data_handler(echo_fulfiller)
    pair.server.register_data_handler(echo_fulfiller)
    same = prepare(7, data=os.urandom(8))
    assert (await pair.server.send_data(same))[0] == ilp4.TYPE_FULFILL
    back = ilp4.decode_reply(await pair.client.send_data(same))
    assert isinstance(back, ilp4.IlpReject)
    assert (back.code, back.message) == ("F00", "this Prepare's key is in use by a Prepare we sent")
    state = await balance_of(pair.server)
    assert (state["balance"], state["incomingPrepared"]) == ("-7", "0")


async def test_outgoing_prepare_with_the_key_of_one_we_received_is_f00(pair: Pair) -> None:
    await pair.start(None, {"store": "memory:"})
    pair.client.register_data_handler(echo_fulfiller)
    pair.server.register_data_handler(echo_fulfiller)
    same = prepare(9, data=os.urandom(8))
    assert (await pair.server.send_data(same))[0] == ilp4.TYPE_FULFILL
    back = ilp4.decode_reply(await pair.client.send_data(same))
    assert isinstance(back, ilp4.IlpReject)
    assert (back.code, back.message) == (
        "F00",
        "this Prepare's key is in use by a Prepare we received",
    )
    state = await balance_of(pair.client)
    assert (state["balance"], state["outgoingPrepared"]) == ("9", "0")


async def test_no_key_is_kept_once_packets_are_settled(pair: Pair) -> None:
    await pair.start({"balance": {"maximum": "100"}}, {"store": "memory:"})
    pair.client.register_data_handler(echo_fulfiller)
    answers = iter([True, False] * 10)

    async def half(data: bytes) -> bytes:
        if next(answers):
            return fulfill()
        return ilp4.encode_reject(ilp4.IlpReject("F99", "test.server", "no"))

    pair.server.register_data_handler(half)
    for _ in range(6):
        await pair.client.send_data(prepare(10, data=os.urandom(8)))
    over = ilp4.decode_reply(await pair.client.send_data(prepare(99, data=os.urandom(8))))
    assert isinstance(over, ilp4.IlpReject)
    assert over.code == "T04"
    await pair.server.send_data(prepare(5, data=os.urandom(8)))
    for plugin in (pair.server, pair.client):
        line = trustline_of(plugin)
        assert line._keys == {}
        assert line._handling == {}
    assert (await balance_of(pair.server))["balance"] == "25"


def test_packet_keys_lead_with_the_expiry() -> None:
    moment = datetime(2026, 12, 6, 2, 45, 1, 234567, tzinfo=UTC)

    def key(expires: datetime, data: bytes) -> str:
        return packet_key(ilp4.IlpPrepare(5, expires, CONDITION, "test.peer.bob", data))

    first = key(moment, b"a")
    assert first.startswith("20261206024501234")
    assert len(first) == 60
    assert first == key(moment, b"a")
    assert first != key(moment, b"b")
    later = [key(moment + timedelta(milliseconds=ms), b"a") for ms in (1, 999, 60_000)]
    assert sorted([*later, first]) == [first, *later]


@settings(max_examples=300, deadline=None)
@given(
    amount=st.integers(min_value=0, max_value=2**64 - 1),
    expires=st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ),
    data=st.binary(max_size=400),
    destination=st.sampled_from(["test.a", "g." + "x" * 200]),
)
def test_key_and_expiry_text_read_the_expiry_back_from_the_encoding(
    amount: int, expires: datetime, data: bytes, destination: str
) -> None:
    packet = ilp4.IlpPrepare(amount, expires, CONDITION, destination, data)
    key = packet_key(packet)
    digits = encode_interledger_time(expires).decode("ascii")
    assert key[:17] == digits
    assert key[17:] == b64url_encode(hashlib.sha256(ilp4.encode_prepare(packet)).digest())
    text = expiry_text(expires)
    assert datetime.fromisoformat(text) == expires.replace(
        microsecond=expires.microsecond // 1000 * 1000
    )
    if expires.year >= 1000:
        legacy = expires.strftime("%Y-%m-%dT%H:%M:%S.") + f"{expires.microsecond // 1000:03d}Z"
        assert text == legacy
