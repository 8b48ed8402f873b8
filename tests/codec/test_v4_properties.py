"""Round trips of every ILPv4, ILDCP, BTP 2.0 and transitional packet type, and RFC 27's promise
that a connector can rewrite amount and expiry in place."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from ilp_paychan.codec import btp2, ildcp, ilp4, ilp_compat
from ilp_paychan.codec.oer import (
    Reader,
    decode_interledger_time,
    encode_interledger_time,
    encode_var_uint64,
)

EXAMPLES = settings(max_examples=200, deadline=None)

SCHEMES = ("g", "private", "example", "peer", "self", "test", "test1", "test2", "test3", "local")
segments = st.from_regex(r"[a-zA-Z0-9_~-]{1,20}", fullmatch=True)
addresses = st.builds(
    lambda scheme, parts: ".".join((scheme, *parts)),
    st.sampled_from(SCHEMES),
    st.lists(segments, min_size=1, max_size=6),
)
long_addresses = st.builds(lambda n: "g." + "x" * n, st.integers(100, 1021))
any_address = st.one_of(addresses, long_addresses)
uint64 = st.integers(0, 2**64 - 1)
times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999000)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC))
bytes32 = st.binary(min_size=32, max_size=32)
# Near-maximal data built from a short pattern: drawing 32 KB at random makes every example slow.
big_data = st.builds(
    lambda n, unit: (unit * (n // len(unit) + 1))[:n],
    st.integers(32000, 32767),
    st.binary(min_size=1, max_size=16),
)
data = st.one_of(st.binary(max_size=300), big_data)
small_data = st.binary(max_size=300)
codes = st.one_of(
    st.sampled_from(list(ilp4.IlpErrorCode)).map(str),
    st.text(alphabet=st.characters(max_codepoint=127), min_size=3, max_size=3),
)
messages = st.text(max_size=200).filter(lambda s: not any(0xD800 <= ord(c) < 0xE000 for c in s))
ascii_text = st.text(alphabet=st.characters(max_codepoint=127), max_size=40)
protocol_data = st.lists(
    st.builds(btp2.ProtocolData, ascii_text, st.integers(0, 255), small_data), max_size=6
).map(tuple)


@EXAMPLES
@given(st.builds(ilp4.IlpPrepare, uint64, times, bytes32, any_address, data))
def test_prepare_round_trip(packet: ilp4.IlpPrepare) -> None:
    raw = ilp4.encode(packet)
    assert ilp4.decode(raw) == ilp4.decode_prepare(raw) == packet


@EXAMPLES
@given(st.builds(ilp4.IlpFulfill, bytes32, data))
def test_fulfill_round_trip(packet: ilp4.IlpFulfill) -> None:
    raw = ilp4.encode(packet)
    assert ilp4.decode(raw) == ilp4.decode_reply(raw) == packet


@EXAMPLES
@given(st.builds(ilp4.IlpReject, codes, st.one_of(st.just(""), any_address), messages, data))
def test_reject_round_trip(packet: ilp4.IlpReject) -> None:
    raw = ilp4.encode(packet)
    assert ilp4.decode(raw) == ilp4.decode_reply(raw) == packet


@EXAMPLES
@given(
    st.builds(ilp4.IlpPrepare, uint64, times, bytes32, addresses, small_data),
    uint64,
    times,
)
def test_amount_and_expiry_rewrite_in_place(
    packet: ilp4.IlpPrepare, amount: int, expires_at: datetime
) -> None:
    before = ilp4.encode(packet)
    after = ilp4.encode(dataclasses.replace(packet, amount=amount, expires_at=expires_at))
    assert len(before) == len(after)
    start = 1 + (1 if before[1] < 0x80 else 1 + (before[1] & 0x7F))  # type, length prefix
    assert before[:start] == after[:start]
    assert before[start + 25 :] == after[start + 25 :]
    assert after[start : start + 8] == amount.to_bytes(8, "big")


@EXAMPLES
@given(st.builds(ildcp.IldcpRequest, times, uint64, small_data))
def test_ildcp_request_round_trip(request: ildcp.IldcpRequest) -> None:
    raw = ildcp.encode_request(request)
    assert ildcp.decode_request(raw) == request
    assert ildcp.is_request(ilp4.decode_prepare(raw))


@EXAMPLES
@given(st.builds(ildcp.IldcpResponse, any_address, st.integers(0, 255), messages))
def test_ildcp_response_round_trip(response: ildcp.IldcpResponse) -> None:
    assert ildcp.decode_response(ildcp.encode_response(response)) == response


@EXAMPLES
@given(st.builds(btp2.Transfer, st.integers(0, 2**32 - 1), uint64, protocol_data))
def test_btp2_transfer_round_trip(packet: btp2.Transfer) -> None:
    assert btp2.decode(btp2.encode(packet)) == packet


@EXAMPLES
@given(
    st.one_of(
        st.builds(btp2.Message, st.integers(0, 2**32 - 1), protocol_data),
        st.builds(btp2.Response, st.integers(0, 2**32 - 1), protocol_data),
        st.builds(
            btp2.Error,
            st.integers(0, 2**32 - 1),
            st.text(alphabet=st.characters(max_codepoint=127), min_size=3, max_size=3),
            ascii_text,
            times,
            messages,
            protocol_data,
        ),
    )
)
def test_btp2_shared_types_round_trip(packet: btp2.Packet) -> None:
    assert btp2.decode(btp2.encode(packet)) == packet


@EXAMPLES
@given(
    st.one_of(
        st.builds(ilp_compat.IlpForwardedPayment, ascii_text, small_data),
        st.builds(ilp_compat.IlpFulfillment, small_data),
        st.builds(ilp_compat.IlpRejection, codes, ascii_text, messages, small_data),
    )
)
def test_compat_round_trip(packet: ilp_compat.IlpCompatPacket) -> None:
    assert ilp_compat.decode_compat(ilp_compat.encode_compat(packet)) == packet


@EXAMPLES
@given(uint64)
def test_var_uint64_round_trip(value: int) -> None:
    raw = encode_var_uint64(value)
    assert raw[0] == max(1, (value.bit_length() + 7) // 8) == len(raw) - 1
    assert Reader(raw).read_var_uint64("x") == value


@EXAMPLES
@given(times)
def test_interledger_time_round_trip(dt: datetime) -> None:
    raw = encode_interledger_time(dt)
    assert len(raw) == 17
    assert decode_interledger_time(raw) == dt
