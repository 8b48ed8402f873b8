"""The balance side protocol's 8-byte two's complement against vectors/int64-balance.json."""

from __future__ import annotations

from typing import Any

import pytest

from ilp_paychan.codec import CodecError, decode_int64, encode_int64

from ._vectors import load

DATA = load("int64-balance.json")


@pytest.mark.parametrize("v", DATA["vectors"], ids=[v["decimal"] for v in DATA["vectors"]])
def test_vector(v: dict[str, Any]) -> None:
    assert encode_int64(int(v["decimal"])).hex() == v["hex"]
    assert str(decode_int64(bytes.fromhex(v["hex"]))) == v["roundTrip"]


def test_two_to_the_63_is_refused_instead_of_wrapping() -> None:
    quirk = next(q for q in DATA["quirks"] if q.get("input") == "9223372036854775808")
    assert quirk["hex"] == "0000000000000000"  # what the reference does
    with pytest.raises(CodecError) as info:
        encode_int64(int(quirk["input"]))
    assert info.value.field == "balance"
    with pytest.raises(CodecError):
        encode_int64(-(1 << 63) - 1)


def test_short_input_is_read_unsigned_like_the_reference() -> None:
    quirk = next(q for q in DATA["quirks"] if "inputHex" in q)
    assert str(decode_int64(bytes.fromhex(quirk["inputHex"]))) == quirk["decoded"]
    assert decode_int64(b"\xff") == 255


@pytest.mark.parametrize("raw", [b"", bytes(9)])
def test_empty_or_long_input_is_refused(raw: bytes) -> None:
    with pytest.raises(CodecError):
        decode_int64(raw)


def test_non_int_is_refused() -> None:
    with pytest.raises(CodecError):
        encode_int64("5")  # type: ignore[arg-type]
