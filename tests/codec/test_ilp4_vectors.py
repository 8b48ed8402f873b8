"""ILPv4 packets and error codes against ilp-packet 3.1.3's own bytes (tests/vectors/v4), both
ways, and the odd inputs of decode-edge-cases.json: same result as ilp-packet, except where the
RFCs say such input MUST be refused (listed below with the reason)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ilp_paychan.codec import CodecError, ilp4

from ._vectors_v4 import ilp4_from_vector, ilp4_to_json, load

PACKETS: list[dict[str, Any]] = load("ilp-packet.json")["vectors"]
ERRORS: dict[str, Any] = load("ilp-errors.json")
EDGE: list[dict[str, Any]] = [
    c for c in load("decode-edge-cases.json")["cases"] if c["kind"] == "ilp-packet"
]

#: Inputs ilp-packet reads but we refuse, and why.
REFUSED_ON_PURPOSE = {
    "prepare-time-month-13": "RFC 30: month out of range MUST be rejected (ilp-packet rolls it)",
    "prepare-time-day-32": "RFC 30: not a calendar date",
    "prepare-time-feb-29-non-leap": "RFC 30: not a calendar date",
    "prepare-time-hour-24": "RFC 30: midnight is 000000 of the next day; 24 MUST be rejected",
    "prepare-time-minute-60": "RFC 30: not a time",
    "prepare-time-leap-second": "RFC 30: an unsmeared leap second MUST be rejected",
    "prepare-time-year-0": "not a year (ilp-packet reads it as 1900)",
    "prepare-time-leading-space": "RFC 30: 17 digits; JavaScript's Number() skips the space",
    "prepare-time-trailing-space": "RFC 30: 17 digits",
    "prepare-time-plus-sign": "RFC 30: 17 digits",
    "prepare-time-minus-sign": "RFC 30: 17 digits",
    "prepare-time-hex-year": "RFC 30: 17 digits; Number('0x1F') is 31",
    "prepare-time-high-bit-digit": "RFC 30: 17 digits; Node clears the high bit and reads a 2",
    "prepare-destination-high-bit": "RFC 15: not an address byte; Node clears the bit",
}
#: Inputs ilp-packet refuses but we read, and why.
READ_ON_PURPOSE = {
    "prepare-time-epoch": "a valid time: ilp-packet's test is !date.valueOf(), false for 0",
}


def test_the_vector_files_cover_every_packet_type_and_code() -> None:
    assert {v["json"]["type"] for v in PACKETS} == {12, 13, 14}
    assert len(PACKETS) >= 50
    assert {v["code"] for v in ERRORS["vectors"]} == {c.value for c in ilp4.IlpErrorCode}


@pytest.mark.parametrize("vector", PACKETS, ids=[v["id"] for v in PACKETS])
def test_decode_gives_what_ilp_packet_reads(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    assert ilp4_to_json(ilp4.decode(raw)) == vector["json"]


@pytest.mark.parametrize("vector", PACKETS, ids=[v["id"] for v in PACKETS])
def test_encode_gives_ilp_packets_bytes(vector: dict[str, Any]) -> None:
    assert ilp4.encode(ilp4_from_vector(vector)).hex() == vector["hex"]


@pytest.mark.parametrize("vector", PACKETS, ids=[v["id"] for v in PACKETS])
def test_typed_decoders_take_their_type_only(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    decoders = {12: ilp4.decode_prepare, 13: ilp4.decode_fulfill, 14: ilp4.decode_reject}
    for kind, decoder in decoders.items():
        if kind == vector["json"]["type"]:
            assert decoder(raw) == ilp4.decode(raw)
        else:
            with pytest.raises(CodecError) as info:
                decoder(raw)
            assert info.value.field == "type"
    if vector["json"]["type"] == 12:
        with pytest.raises(CodecError):
            ilp4.decode_reply(raw)
    else:
        assert ilp4.decode_reply(raw) == ilp4.decode(raw)


def test_error_code_table_matches_ilp_packet() -> None:
    codes = ERRORS["codes"]
    assert [(c["constant"], c["code"]) for c in codes] == [
        (member.name, member.value) for member in ilp4.IlpErrorCode
    ]
    assert {c["code"]: c["className"] for c in codes} == dict(ilp4.ERROR_CLASS_NAMES)
    assert set(ilp4.ERROR_NAMES) == {c["code"] for c in codes}
    assert all(ilp4.is_canonical_code(c["code"]) for c in codes)
    assert not ilp4.is_canonical_code("F10")
    assert not ilp4.is_canonical_code(None)


def test_rfc_names_of_the_families() -> None:
    assert ilp4.ERROR_NAMES["F02"] == "Unreachable"
    assert ilp4.ERROR_NAMES["T04"] == "Insufficient Liquidity"
    assert ilp4.ERROR_NAMES["R00"] == "Transfer Timed Out"
    for family in "FTR":
        assert ilp4.ERROR_NAMES[f"{family}99"] == "Application Error"


@pytest.mark.parametrize("vector", ERRORS["vectors"], ids=[v["id"] for v in ERRORS["vectors"]])
def test_every_error_code_as_a_reject_both_ways(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    packet = ilp4.decode_reject(raw)
    assert packet.code == vector["code"]
    assert ilp4_to_json(packet) == vector["json"]
    assert ilp4.encode(ilp4_from_vector(vector)) == raw


@pytest.mark.parametrize("vector", ERRORS["amountTooLargeData"], ids=lambda v: v["hex"])
def test_amount_too_large_data(vector: dict[str, Any]) -> None:
    received, maximum = int(vector["receivedAmount"]), int(vector["maximumAmount"])
    assert ilp4.encode_amount_too_large_data(received, maximum).hex() == vector["hex"]
    assert ilp4.decode_amount_too_large_data(bytes.fromhex(vector["hex"])) == (received, maximum)


def test_amount_too_large_data_errors_name_the_field() -> None:
    with pytest.raises(CodecError) as info:
        ilp4.decode_amount_too_large_data(b"\x00" * 12)
    assert info.value.field == "maximumAmount"
    with pytest.raises(CodecError) as info:
        ilp4.encode_amount_too_large_data(-1, 0)
    assert info.value.field == "receivedAmount"


def test_edge_cases_are_sorted_into_known_groups() -> None:
    ids = {c["id"] for c in EDGE}
    assert set(REFUSED_ON_PURPOSE) <= ids
    assert set(READ_ON_PURPOSE) <= ids
    for case in EDGE:
        if case["id"] in REFUSED_ON_PURPOSE:
            assert case["js"]["ok"], case["id"]
        if case["id"] in READ_ON_PURPOSE:
            assert not case["js"]["ok"], case["id"]


@pytest.mark.parametrize("case", EDGE, ids=[c["id"] for c in EDGE])
def test_odd_input_decodes_as_ilp_packet_does(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["hex"])
    if case["js"]["ok"] and case["id"] not in REFUSED_ON_PURPOSE:
        assert ilp4_to_json(ilp4.decode(raw)) == case["js"]["json"]
    elif case["id"] in READ_ON_PURPOSE:
        ilp4.decode(raw)
    else:
        with pytest.raises(CodecError):
            ilp4.decode(raw)


@pytest.mark.parametrize(
    ("case_id", "field"),
    [
        ("prepare-destination-unknown-scheme", "destination"),
        ("prepare-destination-1024-chars", "destination"),
        ("prepare-destination-high-bit", "destination"),
        ("reject-triggered-by-invalid", "triggeredBy"),
        ("prepare-time-month-13", "expiresAt"),
        ("prepare-time-high-bit-digit", "expiresAt"),
        ("prepare-truncated-condition", "executionCondition"),
        ("prepare-no-data", "data"),
        ("prepare-long-length-non-canonical", "length"),
        ("fulfill-truncated", "fulfillment"),
        ("reject-code-truncated", "code"),
        ("unknown-type-15", "type"),
    ],
)
def test_refusals_name_the_field(case_id: str, field: str) -> None:
    case = next(c for c in EDGE if c["id"] == case_id)
    with pytest.raises(CodecError) as info:
        ilp4.decode(bytes.fromhex(case["hex"]))
    assert info.value.field == field


NOW = datetime(2017, 12, 23, 1, 21, 40, 549000, tzinfo=UTC)
CONDITION = bytes(range(32))


@pytest.mark.parametrize(
    ("packet", "field"),
    [
        (ilp4.IlpPrepare(1, NOW, CONDITION, "g.alice."), "destination"),
        (ilp4.IlpPrepare(1, NOW, CONDITION, ""), "destination"),
        (ilp4.IlpPrepare(1, NOW, CONDITION, "g." + "a" * 1022), "destination"),
        (ilp4.IlpPrepare(1, NOW, CONDITION, "g.alicé"), "destination"),
        (ilp4.IlpPrepare(1, NOW, CONDITION, b"g.alice"), "destination"),  # type: ignore[arg-type]
        (ilp4.IlpPrepare(-1, NOW, CONDITION, "g.a"), "amount"),
        (ilp4.IlpPrepare(2**64, NOW, CONDITION, "g.a"), "amount"),
        (ilp4.IlpPrepare(1.0, NOW, CONDITION, "g.a"), "amount"),  # type: ignore[arg-type]
        (ilp4.IlpPrepare(1, NOW.replace(tzinfo=None), CONDITION, "g.a"), "expiresAt"),
        (ilp4.IlpPrepare(1, "2017", CONDITION, "g.a"), "expiresAt"),  # type: ignore[arg-type]
        (ilp4.IlpPrepare(1, NOW, CONDITION[:31], "g.a"), "executionCondition"),
        (ilp4.IlpPrepare(1, NOW, CONDITION, "g.a", b"x" * 32768), "data"),
        (ilp4.IlpPrepare(1, NOW, CONDITION, "g.a", "text"), "data"),  # type: ignore[arg-type]
        (ilp4.IlpFulfill(b"\x00" * 33), "fulfillment"),
        (ilp4.IlpFulfill(bytes(32), b"x" * 32768), "data"),
        (ilp4.IlpReject("F0", "g.a"), "code"),
        (ilp4.IlpReject("F0é", "g.a"), "code"),
        (ilp4.IlpReject("F00", "nope"), "triggeredBy"),
        (ilp4.IlpReject("F00", "g.a", "m" * 8192), "message"),
        (ilp4.IlpReject("F00", "g.a", "\ud800"), "message"),
        (ilp4.IlpReject("F00", "g.a", 5), "message"),  # type: ignore[arg-type]
    ],
)
def test_encode_refusals_name_the_field(packet: ilp4.IlpV4Packet, field: str) -> None:
    with pytest.raises(CodecError) as info:
        ilp4.encode(packet)
    assert info.value.field == field


def test_encode_refuses_what_is_not_an_ilpv4_packet() -> None:
    for wrong in (None, b"\x0c", ilp4.IlpFulfill):
        with pytest.raises(CodecError) as info:
            ilp4.encode(wrong)  # type: ignore[arg-type]
        assert info.value.field == "type"
    with pytest.raises(CodecError):
        ilp4.encode_prepare(ilp4.IlpFulfill(bytes(32)))  # type: ignore[arg-type]


def test_limits_are_inclusive() -> None:
    packet = ilp4.IlpReject("F00", "g." + "a" * 1021, "m" * 8191, b"d" * 32767)
    assert ilp4.decode(ilp4.encode(packet)) == packet


def test_decoders_accept_bytearray_and_memoryview() -> None:
    raw = bytes.fromhex(PACKETS[0]["hex"])
    assert ilp4.decode(bytearray(raw)) == ilp4.decode(memoryview(raw)) == ilp4.decode(raw)
