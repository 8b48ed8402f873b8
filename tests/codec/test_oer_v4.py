"""OER of the ILPv4 generation (RFC 30) against oer-utils 5.1.2 and ilp-packet 3.1.3
(tests/vectors/v4/oer.json): var-uints up to 8 bytes, length prefixes, UInt64, and the 17-digit
Interledger timestamp, read as strictly as RFC 30 asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ilp_paychan.codec import CodecError
from ilp_paychan.codec.oer import (
    UINT64_MAX,
    Reader,
    Writer,
    decode_interledger_time,
    encode_interledger_time,
    encode_length,
    encode_var_uint64,
)

from ._vectors_v4 import iso, load, parse_iso

OER: dict[str, Any] = load("oer.json")


@pytest.mark.parametrize("v", OER["varUInts"], ids=lambda v: v["value"])
def test_var_uint64_both_ways(v: dict[str, Any]) -> None:
    value = int(v["value"])
    raw = bytes.fromhex(v["hex"])
    assert encode_var_uint64(value) == raw
    assert Reader(raw).read_var_uint64("x") == value == int(v["read"])
    w = Writer()
    w.write_var_uint64(value, "x")
    assert w.getvalue() == raw


@pytest.mark.parametrize("v", OER["varUIntReads"], ids=lambda v: v["hex"])
def test_var_uint64_reads_what_oer_utils_reads(v: dict[str, Any]) -> None:
    r = Reader(bytes.fromhex(v["hex"]))
    if v["js"]["ok"]:
        assert r.read_var_uint64("x") == int(v["js"]["json"])
    else:
        with pytest.raises(CodecError) as info:
            r.read_var_uint64("x")
        assert info.value.field == "x"


@pytest.mark.parametrize("value", [-1, UINT64_MAX + 1, 1.0, True, "1"])
def test_var_uint64_refuses_what_is_not_a_uint64(value: Any) -> None:
    with pytest.raises(CodecError):
        encode_var_uint64(value)
    w = Writer()
    with pytest.raises(CodecError) as info:
        w.write_var_uint64(value, "sequence")
    assert info.value.field == "sequence"


@pytest.mark.parametrize("v", OER["lengths"], ids=lambda v: str(v["length"]))
def test_length_prefix_as_oer_utils_5(v: dict[str, Any]) -> None:
    assert encode_length(v["length"]).hex() == v["prefixHex"]


@pytest.mark.parametrize("v", OER["uint64"], ids=lambda v: v["value"])
def test_uint64(v: dict[str, Any]) -> None:
    w = Writer()
    w.write_uint64(int(v["value"]), "amount")
    assert w.getvalue().hex() == v["hex"]
    assert Reader(bytes.fromhex(v["hex"])).read_uint64("amount") == int(v["value"])


@pytest.mark.parametrize("v", OER["timestamps"], ids=lambda v: v["iso"])
def test_interledger_time_both_ways(v: dict[str, Any]) -> None:
    dt = parse_iso(v["iso"])
    assert encode_interledger_time(dt) == v["text"].encode("ascii")
    assert bytes.fromhex(v["hex"]) == v["text"].encode("ascii")
    assert iso(decode_interledger_time(v["text"].encode("ascii"))) == v["iso"]


#: The examples RFC 30 "Fixed-length Timestamps" says a parser MUST reject (ilp-packet's
#: interledgerTimeToDate reads every one of them: it slices digits and hands them to Date.UTC).
RFC30_INVALID = {
    "201712242153124318",
    "20171324161432200",
    "20171224230000000.",
    "20171224240000000",
    "20171224215300",
    "2017122421531",
    "201712242153",
    "2017122421",
    "20161231235960852",
}


@pytest.mark.parametrize("v", OER["rfc30Examples"], ids=lambda v: v["text"])
def test_rfc30_examples(v: dict[str, Any]) -> None:
    raw = v["text"].encode("ascii")
    if v["text"] in RFC30_INVALID:
        with pytest.raises(CodecError) as info:
            decode_interledger_time(raw, "expiresAt")
        assert info.value.field == "expiresAt"
    else:
        assert iso(decode_interledger_time(raw)) == v["js"]["json"]


def test_rfc30_examples_are_all_there_and_ilp_packet_reads_them_all() -> None:
    texts = {v["text"] for v in OER["rfc30Examples"]}
    assert texts > RFC30_INVALID
    assert len(texts - RFC30_INVALID) == 7
    assert all(v["js"]["ok"] for v in OER["rfc30Examples"])


def test_rfc30_leap_second_neighbour_reads_as_written() -> None:
    # RFC 30: 20161231235959852 is "nearly a leap second"; smeared times are ordinary ones.
    assert decode_interledger_time(b"20161231235959852") == datetime(
        2016, 12, 31, 23, 59, 59, 852000, tzinfo=UTC
    )


def test_encode_interledger_time_converts_to_utc_and_drops_microseconds() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert encode_interledger_time(datetime(2017, 12, 24, 18, 14, 32, tzinfo=plus2)) == (
        b"20171224161432000"
    )
    assert encode_interledger_time(datetime(2017, 12, 24, 16, 14, 32, 279999, tzinfo=UTC)) == (
        b"20171224161432279"
    )
    assert encode_interledger_time(datetime(1, 1, 1, tzinfo=UTC)) == b"00010101000000000"


@pytest.mark.parametrize(
    "value", [datetime(2017, 1, 1), "2017-01-01T00:00:00Z", 0, datetime.max.replace(tzinfo=UTC)]
)
def test_encode_interledger_time_refusals(value: Any) -> None:
    if isinstance(value, datetime) and value.tzinfo is not None:
        assert len(encode_interledger_time(value)) == 17  # year 9999 still fits
        return
    with pytest.raises(CodecError) as info:
        encode_interledger_time(value, "expiresAt")
    assert info.value.field == "expiresAt"


def test_encode_interledger_time_overflowing_conversion() -> None:
    ahead = timezone(timedelta(hours=-5))
    with pytest.raises(CodecError):
        encode_interledger_time(datetime(9999, 12, 31, 23, 0, tzinfo=ahead))
