"""Round-trip properties: decode(encode(p)) == p for every BTP and ILP packet type."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from ilp_paychan.codec import btp, decode_ilp, encode_ilp, ilp
from ilp_paychan.codec.condition import b64url_decode, b64url_encode
from ilp_paychan.codec.int64 import INT64_MAX, INT64_MIN, decode_int64, encode_int64
from ilp_paychan.codec.oer import decode_timestamp, encode_timestamp

EXAMPLES = settings(max_examples=200, deadline=None)

ascii_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=40)
addresses = st.from_regex(r"[a-z][a-z0-9.~_-]{0,30}", fullmatch=True)
request_ids = st.integers(0, 2**32 - 1)
uint64 = st.integers(0, 2**64 - 1)
uint32 = st.integers(0, 2**32 - 1)
uuids = st.uuids().map(str)
blobs = st.binary(max_size=300)
# Whole milliseconds, as the wire carries them.
times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999000)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC))
protocol_data = st.lists(
    st.builds(btp.ProtocolData, ascii_text, st.integers(0, 255), blobs), max_size=6
).map(tuple)


def _round_trips(packet: btp.Packet) -> None:
    assert btp.decode(btp.encode(packet)) == packet


@EXAMPLES
@given(st.builds(btp.Response, request_ids, protocol_data))
def test_response_round_trip(packet: btp.Response) -> None:
    _round_trips(packet)


@EXAMPLES
@given(st.builds(btp.Message, request_ids, protocol_data))
def test_message_round_trip(packet: btp.Message) -> None:
    _round_trips(packet)


@EXAMPLES
@given(
    st.builds(
        btp.Error,
        request_ids,
        st.text(alphabet=st.characters(max_codepoint=127), min_size=3, max_size=3),
        ascii_text,
        times,
        st.text(max_size=200).filter(lambda s: not any(0xD800 <= ord(c) < 0xE000 for c in s)),
        protocol_data,
    )
)
def test_error_round_trip(packet: btp.Error) -> None:
    _round_trips(packet)


@EXAMPLES
@given(
    st.builds(
        btp.Prepare,
        request_ids,
        uuids,
        uint64,
        st.binary(min_size=32, max_size=32),
        times,
        protocol_data,
    )
)
def test_prepare_round_trip(packet: btp.Prepare) -> None:
    _round_trips(packet)


@EXAMPLES
@given(
    st.builds(btp.Fulfill, request_ids, uuids, st.binary(min_size=32, max_size=32), protocol_data)
)
def test_fulfill_round_trip(packet: btp.Fulfill) -> None:
    _round_trips(packet)


@EXAMPLES
@given(st.builds(btp.Reject, request_ids, uuids, protocol_data))
def test_reject_round_trip(packet: btp.Reject) -> None:
    _round_trips(packet)


ilp_packets = st.one_of(
    st.builds(ilp.IlpPayment, uint64, addresses, blobs),
    st.builds(
        ilp.IlpError,
        st.text(alphabet=st.characters(max_codepoint=127), min_size=3, max_size=3),
        ascii_text,
        addresses,
        st.lists(addresses, max_size=5).map(tuple),
        times,
        blobs,
    ),
    st.builds(ilp.IlqpLiquidityRequest, addresses, uint32),
    st.builds(
        ilp.IlqpLiquidityResponse,
        st.integers(0, 8).flatmap(lambda n: st.binary(min_size=16 * n, max_size=16 * n)),
        addresses,
        uint32,
        times,
    ),
    st.builds(ilp.IlqpBySourceRequest, addresses, uint64, uint32),
    st.builds(ilp.IlqpBySourceResponse, uint64, uint32),
    st.builds(ilp.IlqpByDestinationRequest, addresses, uint64, uint32),
    st.builds(ilp.IlqpByDestinationResponse, uint64, uint32),
)


@settings(max_examples=250, deadline=None)
@given(ilp_packets)
def test_ilp_round_trip(packet: ilp.IlpPacket) -> None:
    assert decode_ilp(encode_ilp(packet)) == packet


@EXAMPLES
@given(times)
def test_timestamp_round_trip(dt: datetime) -> None:
    assert decode_timestamp(encode_timestamp(dt)) == dt


@EXAMPLES
@given(st.binary(max_size=100))
def test_b64url_round_trip(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


@EXAMPLES
@given(st.integers(INT64_MIN, INT64_MAX))
def test_int64_round_trip(value: int) -> None:
    assert decode_int64(encode_int64(value)) == value
