"""vectors/btp/decode-edge-cases.json, and what encoding refuses.

Decoding accepts what btp-packet accepts; the documented deviations are types 0 and 7 (the
framework never answers them, so we refuse them outright) and timestamps with fewer than three
fraction digits (we read them, being liberal in what we accept; the reference makes them Invalid
Date).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ilp_paychan.codec import btp
from ilp_paychan.codec.errors import CodecError

from ._vectors import btp_to_json, load

CASES: dict[str, dict[str, Any]] = {c["id"]: c for c in load("btp/decode-edge-cases.json")["cases"]}
TID = "5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1"
WHEN = datetime(2017, 12, 6, 19, 9, 28, 123000, tzinfo=UTC)


def _frame(case_id: str) -> bytes:
    return bytes.fromhex(CASES[case_id]["hex"])


@pytest.mark.parametrize(
    "case_id",
    [
        "trailing-bytes-after-envelope",
        "trailing-bytes-inside-contents",
        "count-with-zero-length",
        "unknown-content-type",
    ],
)
def test_accepted_like_the_reference(case_id: str) -> None:
    expected = CASES[case_id]["btp-packet@1.2.1"]["decoded"]
    assert btp_to_json(btp.decode(_frame(case_id))) == expected


@pytest.mark.parametrize(
    ("case_id", "field"),
    [
        ("truncated-envelope", "length"),
        ("non-canonical-length-prefix", "length"),
        ("short-fulfillment", "fulfillment"),
    ],
)
def test_refused_like_the_reference(case_id: str, field: str) -> None:
    assert "throws" in CASES[case_id]["btp-packet@1.2.1"]
    with pytest.raises(CodecError) as info:
        btp.decode(_frame(case_id))
    assert info.value.field == field


@pytest.mark.parametrize("case_id", ["type-0-ack", "type-7-transfer"])
def test_types_outside_btp_1_0_are_refused(case_id: str) -> None:
    with pytest.raises(CodecError) as info:
        btp.decode(_frame(case_id))
    assert info.value.field == "type"


def test_timestamp_without_milliseconds_is_read_as_whole_seconds() -> None:
    packet = btp.decode(_frame("bad-timestamp"))
    assert isinstance(packet, btp.Prepare)
    assert packet.expires_at == datetime(2017, 12, 6, 19, 9, 38, tzinfo=UTC)
    reference = CASES["bad-timestamp"]["btp-packet@1.2.1"]["decoded"]["data"]
    assert reference["expiresAt"] == "Invalid Date"  # the deliberate superset


def test_unparsable_expiry_decodes_to_none() -> None:
    frame = _frame("bad-timestamp").replace(b"20171206190938Z", b"2017120619093xZ")
    packet = btp.decode(frame)
    assert isinstance(packet, btp.Prepare)
    assert packet.expires_at is None
    assert packet.transfer_id == TID


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"2017120619093x.123Z", None),
        (b"20171306190938.123Z", None),
        (b"00000101000000.000Z", None),
        (b"20170230000000.000Z", datetime(2017, 3, 2, tzinfo=UTC)),
        (b"20171206240000.000Z", datetime(2017, 12, 7, tzinfo=UTC)),
        (b"20171206190938.1Z", datetime(2017, 12, 6, 19, 9, 38, 100000, tzinfo=UTC)),
    ],
)
def test_expiry_forms(text: bytes, expected: datetime | None) -> None:
    frame = btp.encode(btp.Prepare(1, TID, 10, bytes(32), WHEN))
    frame = frame.replace(b"\x1320171206190928.123Z", bytes((len(text),)) + text)
    frame = frame[:5] + bytes((len(frame) - 6,)) + frame[6:]
    packet = btp.decode(frame)
    assert isinstance(packet, btp.Prepare)
    assert packet.expires_at == expected


def test_unparsable_error_time_decodes_to_none() -> None:
    raw = btp.encode(btp.Error(7, "F00", "NotAcceptedError", WHEN, "{}"))
    packet = btp.decode(raw.replace(b"20171206190928.123Z", b"20171306190928.123Z"))
    assert isinstance(packet, btp.Error)
    assert packet.triggered_at is None


def test_invalid_utf8_in_error_data_is_replaced_not_raised() -> None:
    raw = btp.encode(btp.Error(7, "F00", "E", WHEN, "ab"))
    packet = btp.decode(raw.replace(b"\x02ab", b"\x02a\xff"))
    assert isinstance(packet, btp.Error)
    assert packet.data == "a\ufffd"


def test_length_prefix_claiming_four_gib_in_a_twenty_byte_frame_fails_at_once() -> None:
    frame = bytes.fromhex("0600000001" + "84ffffffff") + bytes(10)
    with pytest.raises(CodecError) as info:
        btp.decode(frame)
    assert info.value.field == "length"


@pytest.mark.parametrize(
    "packet", [btp.Fulfill(1, TID, bytes(32)), btp.Response(1), btp.Message(1), btp.Reject(1, TID)]
)
def test_fields_are_never_read_from_bytes_after_the_envelope(packet: btp.Packet) -> None:
    frame = btp.encode(packet)
    assert frame.endswith(b"\x01\x00")
    # Contents shortened by one byte; the missing count byte follows the envelope instead.
    cut = frame[:5] + bytes((frame[5] - 1,)) + frame[6:]
    with pytest.raises(CodecError):
        btp.decode(cut)


def test_entry_count_larger_than_the_frame_fails_at_once() -> None:
    frame = bytes.fromhex("0600000001" + "07" + "06ffffffffffff")
    with pytest.raises(CodecError) as info:
        btp.decode(frame)
    assert info.value.field == "protocolData"


def test_entry_data_length_beyond_the_contents_fails() -> None:
    # Message contents: count 1, name "a", type 0, data claiming 0x7f bytes (only 1 present).
    frame = bytes.fromhex("0600000001" + "07" + "0101016100" + "7f00")
    with pytest.raises(CodecError) as info:
        btp.decode(frame)
    assert info.value.field == "protocolData"


VALID = btp.Prepare(1, TID, 10, bytes(32), WHEN)


@pytest.mark.parametrize(
    ("packet", "field"),
    [
        (btp.Prepare(1, TID.upper(), 10, bytes(32), WHEN), "transferId"),
        (btp.Prepare(1, TID.replace("-", ""), 10, bytes(32), WHEN), "transferId"),
        (btp.Prepare(1, "not-a-uuid", 10, bytes(32), WHEN), "transferId"),
        (btp.Prepare(1, TID[:-1] + "g", 10, bytes(32), WHEN), "transferId"),
        (btp.Prepare(1, TID, -1, bytes(32), WHEN), "amount"),
        (btp.Prepare(1, TID, 1 << 64, bytes(32), WHEN), "amount"),
        (btp.Prepare(1, TID, "10", bytes(32), WHEN), "amount"),  # type: ignore[arg-type]
        (btp.Prepare(1, TID, 10, bytes(31), WHEN), "executionCondition"),
        (btp.Prepare(1, TID, 10, "AAAA", WHEN), "executionCondition"),  # type: ignore[arg-type]
        (btp.Prepare(1, TID, 10, bytes(32), None), "expiresAt"),
        (btp.Prepare(1, TID, 10, bytes(32), datetime(2017, 1, 1)), "expiresAt"),
        (btp.Prepare(-1, TID, 10, bytes(32), WHEN), "requestId"),
        (btp.Prepare(1 << 32, TID, 10, bytes(32), WHEN), "requestId"),
        (btp.Fulfill(1, TID, bytes(33)), "fulfillment"),
        (btp.Reject(1, "x"), "transferId"),
        (btp.Error(1, "F0", "n", WHEN, ""), "code"),
        (btp.Error(1, "F00", "nä", WHEN, ""), "name"),
        (btp.Error(1, "F00", "n", None, ""), "triggeredAt"),
        (btp.Error(1, "F00", "n", WHEN, "\ud800"), "data"),
        (btp.Message(1, (btp.ProtocolData("ä", 0, b""),)), "protocolName"),
        (btp.Message(1, (btp.ProtocolData("a", 256, b""),)), "contentType"),
        (btp.Message(1, (btp.ProtocolData("a", 0, "text"),)), "protocolData"),  # type: ignore[arg-type]
        (btp.Message(1, ("a",)), "protocolData"),  # type: ignore[arg-type]
    ],
)
def test_unencodable_field_is_named(packet: btp.Packet, field: str) -> None:
    with pytest.raises(CodecError) as info:
        btp.encode(packet)
    assert info.value.field == field


def test_unknown_object_is_refused() -> None:
    with pytest.raises(CodecError) as info:
        btp.encode(object())  # type: ignore[arg-type]
    assert info.value.field == "type"


def test_valid_prepare_encodes() -> None:
    assert btp.decode(btp.encode(VALID)) == VALID


def test_list_protocol_data_is_accepted_for_encoding() -> None:
    pd = [btp.ProtocolData("a", 1, b"x")]
    assert btp.encode(btp.Message(1, pd)) == btp.encode(btp.Message(1, tuple(pd)))  # type: ignore[arg-type]


def test_256_entries_use_a_two_byte_count() -> None:
    pd = tuple(btp.ProtocolData("p", 0, b"") for _ in range(256))
    raw = btp.encode(btp.Response(1, pd))
    assert raw[8:11] == b"\x02\x01\x00"
    assert btp.decode(raw) == btp.Response(1, pd)


def test_frame_a_js_peer_builds_from_a_non_uuid_id_is_undecodable() -> None:
    probes = load("probes.json")["probes"]
    probe = next(p for p in probes if p["id"] == "non-uuid-transfer-id")
    frame_hex = probe["observed"][0].split(": ", 1)[1]
    with pytest.raises(CodecError):
        btp.decode(bytes.fromhex(frame_hex))
