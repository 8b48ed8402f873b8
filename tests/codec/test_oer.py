"""OER primitives against vectors/oer/primitives.json and the reference's reader strictness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ilp_paychan.codec import CodecError
from ilp_paychan.codec.oer import (
    Reader,
    Writer,
    decode_timestamp,
    decode_timestamp_or_none,
    encode_length,
    encode_pd_count,
    encode_timestamp,
    encode_var_octets,
    encode_var_uint,
)

from ._vectors import load, parse_iso

PRIMITIVES: list[dict[str, Any]] = load("oer/primitives.json")["vectors"]


def _of_kind(prefix: str) -> list[dict[str, Any]]:
    return [v for v in PRIMITIVES if v["kind"].startswith(prefix)]


@pytest.mark.parametrize("v", _of_kind("length-prefix"), ids=lambda v: str(v["length"]))
def test_length_prefix_matches_vector(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["prefixHex"])
    assert encode_length(v["length"]) == raw
    r = Reader(raw + b"\x00" * v["length"])
    assert r.read_length("x") == v["length"]
    assert r.pos == len(raw)


@pytest.mark.parametrize("v", _of_kind("var-uint"), ids=lambda v: str(v["value"]))
def test_var_uint_matches_vector(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["hex"])
    assert encode_var_uint(v["value"]) == raw
    assert Reader(raw).read_var_uint("x") == v["value"]


@pytest.mark.parametrize("v", _of_kind("btp protocolData count"), ids=lambda v: str(v["count"]))
def test_pd_count_matches_vector(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["hex"])
    assert encode_pd_count(v["count"]) == raw
    assert Reader(raw).read_pd_count() == v["count"]


def test_generalized_time_matches_vector() -> None:
    (v,) = _of_kind("GeneralizedTime")
    dt = parse_iso(v["date"])
    assert encode_timestamp(dt) == v["asciiOnWire"].encode()
    w = Writer()
    w.write_timestamp(dt, "t")
    assert w.getvalue().hex() == v["varOctetHex"]
    assert decode_timestamp(Reader(bytes.fromhex(v["varOctetHex"])).read_var_octets("t")) == dt


@pytest.mark.parametrize(
    ("hex_prefix", "length"),
    [("8500000000c8", 200), ("850000000080", 128), ("86000000000100", 256)],
)
def test_five_and_six_byte_lengths_use_the_reference_minimum(hex_prefix: str, length: int) -> None:
    assert Reader(bytes.fromhex(hex_prefix) + bytes(length)).read_length("x") == length


@pytest.mark.parametrize(
    "hex_prefix",
    ["80", "817f", "820080", "8200ff", "8300ffff", "8400ffffff", "86000000000080", "87" + "00" * 7],
)
def test_non_canonical_or_oversized_length_prefix_is_refused(hex_prefix: str) -> None:
    with pytest.raises(CodecError) as info:
        Reader(bytes.fromhex(hex_prefix) + bytes(300)).read_length("name")
    assert info.value.field == "name"


def test_var_octets_claiming_four_gib_in_a_small_buffer_fails_at_once() -> None:
    with pytest.raises(CodecError, match="claims 4294967295 bytes"):
        Reader(bytes.fromhex("84ffffffff") + bytes(15)).read_var_octets("data")


def test_var_uint_rejects_empty_and_seven_bytes() -> None:
    with pytest.raises(CodecError):
        Reader(b"\x00").read_var_uint("n")
    with pytest.raises(CodecError):
        Reader(b"\x07" + bytes(7)).read_var_uint("n")
    assert Reader(b"\x02\x00\x01").read_var_uint("n") == 1  # non-minimal is accepted


def test_pd_count_accepts_zero_length_and_non_minimal_forms() -> None:
    assert Reader(b"\x00").read_pd_count() == 0
    assert Reader(b"\x03\x00\x00\x02").read_pd_count() == 2
    with pytest.raises(CodecError):
        Reader(b"\x07" + bytes(7)).read_pd_count()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"20171206190928.123Z", datetime(2017, 12, 6, 19, 9, 28, 123000, tzinfo=UTC)),
        (b"20171206190928.12Z", datetime(2017, 12, 6, 19, 9, 28, 120000, tzinfo=UTC)),
        (b"20171206190928.1Z", datetime(2017, 12, 6, 19, 9, 28, 100000, tzinfo=UTC)),
        (b"20171206190928Z", datetime(2017, 12, 6, 19, 9, 28, tzinfo=UTC)),
        # V8 rolls a day up to 31 into the next month and reads 24:00 as the next midnight.
        (b"20170230000000.000Z", datetime(2017, 3, 2, tzinfo=UTC)),
        (b"20171206240000.000Z", datetime(2017, 12, 7, tzinfo=UTC)),
    ],
)
def test_timestamp_reads_zero_to_three_fraction_digits(raw: bytes, expected: datetime) -> None:
    assert decode_timestamp(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"20171306190928.123Z",
        b"20171200190928.123Z",
        b"20171232190928.123Z",
        b"20171206196028.123Z",
        b"20171206190960.123Z",
        b"20171206240000.001Z",
        b"20171206190928.1234Z",
        b"20171206190928.Z",
        b"20171206190928.123",
        b"2017-12-06T19:09:28.123Z",
        b"00000101000000.000Z",
        b"\xff" * 19,
    ],
)
def test_unparsable_timestamp_is_none_or_codec_error(raw: bytes) -> None:
    assert decode_timestamp_or_none(raw) is None
    with pytest.raises(CodecError) as info:
        decode_timestamp(raw, "expiresAt")
    assert info.value.field == "expiresAt"


def test_timestamp_is_written_in_utc_with_milliseconds_truncated() -> None:
    dt = datetime(2017, 12, 6, 20, 9, 28, 123999, tzinfo=timezone(timedelta(hours=1)))
    assert encode_timestamp(dt) == b"20171206190928.123Z"
    assert encode_timestamp(datetime(5, 1, 2, tzinfo=UTC)) == b"00050102000000.000Z"


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(CodecError, match="timezone-aware"):
        encode_timestamp(datetime(2017, 1, 1), "expiresAt")


def test_writer_range_checks_name_the_field() -> None:
    w = Writer()
    for method, value in [(w.write_uint8, 256), (w.write_uint32, -1), (w.write_uint64, 1 << 64)]:
        with pytest.raises(CodecError) as info:
            method(value, "amount")
        assert info.value.field == "amount"
    w.write_uint64((1 << 64) - 1, "amount")
    assert w.getvalue() == b"\xff" * 8


def test_ia5_reading_clears_the_high_bit_like_node() -> None:
    assert Reader(b"\x03\xe9\x61\x62").read_ia5("name") == "iab"


def test_fixed_and_var_octets() -> None:
    w = Writer()
    w.write_fixed(bytes(16), 16, "transferId")
    w.write_var_octets(b"ab")
    assert w.getvalue() == bytes(16) + b"\x02ab"
    assert encode_var_octets(bytes(200)) == b"\x81\xc8" + bytes(200)
    with pytest.raises(CodecError) as info:
        w.write_fixed(bytes(15), 16, "transferId")
    assert info.value.field == "transferId"


@pytest.mark.parametrize("value", ["é", 5])
def test_ia5_writing_refuses_non_ascii_and_non_text(value: Any) -> None:
    with pytest.raises(CodecError) as info:
        Writer().write_ia5(value, "account")
    assert info.value.field == "account"


def test_reader_underflow_names_the_field() -> None:
    r = Reader(b"\x01\x02\x03")
    for method in (r.read_uint32, r.read_uint64):
        with pytest.raises(CodecError) as info:
            method("amount")
        assert info.value.field == "amount"
    assert r.read_uint8("a") == 1
    assert r.remaining() == 2
    with pytest.raises(CodecError):
        r.read(3, "data")
    assert Reader(b"", 0).remaining() == 0
    with pytest.raises(CodecError):
        Reader(b"").read_uint8("type")


@pytest.mark.parametrize("value", [-1, 1 << 48])
def test_var_uint_and_count_range(value: int) -> None:
    with pytest.raises(CodecError):
        encode_var_uint(value)
    with pytest.raises(CodecError):
        encode_pd_count(value)


def test_length_beyond_what_a_peer_can_read_is_refused() -> None:
    with pytest.raises(CodecError):
        encode_length(1 << 48)
    with pytest.raises(CodecError):
        encode_length(-1)
