"""ILP v1 packets: every vector of vectors/ilp/ilp-packet-v1.json, and the decoder's strictness."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ilp_paychan.codec import CodecError, b64url_encode, decode_ilp, encode_ilp
from ilp_paychan.codec.ilp import IlpError, IlpPayment, IlqpLiquidityResponse

from ._vectors import ilp_from_input, ilp_to_json, load

VECTORS: list[dict[str, Any]] = load("ilp/ilp-packet-v1.json")["vectors"]
WHEN = datetime(2017, 12, 6, 19, 9, 28, 123000, tzinfo=UTC)


def test_there_are_thirteen_ilp_vectors() -> None:
    assert len(VECTORS) == 13


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_decode_gives_the_recorded_json(v: dict[str, Any]) -> None:
    assert ilp_to_json(decode_ilp(bytes.fromhex(v["hex"]))) == v["json"]


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_encode_gives_the_recorded_bytes(v: dict[str, Any]) -> None:
    raw = encode_ilp(ilp_from_input(v["json"]["type"], v["input"]))
    assert raw.hex() == v["hex"]
    assert b64url_encode(raw) == v["base64url"]


def test_extensions_byte_and_trailing_bytes_are_ignored_like_the_reference() -> None:
    full = bytes.fromhex(VECTORS[0]["hex"])
    without_extensions = bytes((full[0], full[1] - 1)) + full[2:-1]
    assert decode_ilp(without_extensions) == decode_ilp(full)
    assert decode_ilp(full + b"junk") == decode_ilp(full)


def test_error_data_bytes_are_written_unchanged() -> None:
    packet = IlpError("F00", "Bad Request", "g.a", ("g.b",), WHEN, "ünïcode".encode())
    assert decode_ilp(encode_ilp(packet)) == packet


@pytest.mark.parametrize(
    ("raw_hex", "field"),
    [
        ("", "type"),
        ("09020000", "type"),
        ("0a00", "type"),
        ("0105", "length"),
        ("0103000000", "amount"),
        ("080446303001", "name"),
    ],
)
def test_malformed_packet_raises_codec_error(raw_hex: str, field: str) -> None:
    with pytest.raises(CodecError) as info:
        decode_ilp(bytes.fromhex(raw_hex))
    assert info.value.field == field


def test_error_with_unparsable_time_raises_like_ilp_packet() -> None:
    good = bytes.fromhex(VECTORS[3]["hex"])
    bad = good.replace(b"20171206190928.123Z", b"2017120619092x.123Z")
    with pytest.raises(CodecError) as info:
        decode_ilp(bad)
    assert info.value.field == "triggeredAt"


def test_forwarded_by_count_larger_than_the_packet_fails_at_once() -> None:
    contents = b"F00" + b"\x00" + b"\x00" + b"\x04\xff\xff\xff\xff"
    with pytest.raises(CodecError) as info:
        decode_ilp(b"\x08" + bytes((len(contents),)) + contents)
    assert info.value.field == "forwardedBy"


def test_liquidity_point_count_larger_than_the_packet_fails_at_once() -> None:
    contents = b"\x06\xff\xff\xff\xff\xff\xff"
    with pytest.raises(CodecError) as info:
        decode_ilp(b"\x03" + bytes((len(contents),)) + contents)
    assert info.value.field == "liquidityCurve"


@pytest.mark.parametrize(
    ("packet", "field"),
    [
        (IlpPayment(-1, "g.a"), "amount"),
        (IlpPayment(1 << 64, "g.a"), "amount"),
        (IlpPayment(1, "g.ä"), "account"),
        (IlpError("F0", "n", "g.a", (), WHEN), "code"),
        (IlpError("F00", "n", "g.a", (), datetime(2017, 1, 1)), "triggeredAt"),
        (IlqpLiquidityResponse(b"\x00" * 15, "g.", 1, WHEN), "liquidityCurve"),
    ],
)
def test_unencodable_field_is_named(packet: Any, field: str) -> None:
    with pytest.raises(CodecError) as info:
        encode_ilp(packet)
    assert info.value.field == field


def test_unknown_object_is_refused() -> None:
    with pytest.raises(CodecError):
        encode_ilp(object())  # type: ignore[arg-type]


def test_length_claiming_four_gib_in_a_small_packet_fails_at_once() -> None:
    with pytest.raises(CodecError) as info:
        decode_ilp(bytes.fromhex("0184ffffffff") + bytes(14))
    assert info.value.field == "length"
