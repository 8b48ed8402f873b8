"""BTP 2.0 (RFC 23) against btp-packet 2.2.1 (tests/vectors/v4/btp.json) both ways, and the odd
frames of decode-edge-cases.json read as btp-packet reads them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ilp_paychan.codec import CodecError, btp, btp2, ilp4

from ._vectors_v4 import btp2_from_vector, btp2_to_json, load

VECTORS: list[dict[str, Any]] = load("btp.json")["vectors"]
EDGE: list[dict[str, Any]] = [
    c for c in load("decode-edge-cases.json")["cases"] if c["kind"] == "btp"
]

#: Frames btp-packet 2.2.1 reads with an Invalid Date that we read as a time, and why.
TIME_READ_ON_PURPOSE = {
    "btp-error-time-no-fraction": "GeneralizedTime without milliseconds is valid (RFC 30); "
    "codec.btp reads 0-3 fraction digits for BTP 1.0 too",
}


def test_every_btp2_type_and_rfc23_error_code_is_covered() -> None:
    assert {v["json"]["type"] for v in VECTORS} == {1, 2, 6, 7}
    codes = {v["json"]["data"]["code"] for v in VECTORS if v["id"].startswith("error-")}
    assert codes >= {"T00", "F00", "F01", "F03", "F04", "F05", "F06", "F07", "F08"}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_decode_gives_what_btp_packet_reads(vector: dict[str, Any]) -> None:
    assert btp2_to_json(btp2.decode(bytes.fromhex(vector["hex"]))) == vector["json"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_encode_gives_btp_packets_bytes(vector: dict[str, Any]) -> None:
    assert btp2.encode(btp2_from_vector(vector)).hex() == vector["hex"]


@pytest.mark.parametrize(
    "vector",
    [v for v in VECTORS if v["json"]["type"] != btp2.TYPE_TRANSFER],
    ids=lambda v: v["id"],
)
def test_shared_types_are_the_same_bytes_in_btp_1(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    assert btp.decode(raw) == btp2.decode(raw)


def test_ilp_packets_ride_in_the_ilp_entry() -> None:
    message = btp2.decode(bytes.fromhex(_vector("message-ilp-prepare")["hex"]))
    assert isinstance(message, btp2.Message)
    entry = btp2.protocol_data_map(message.protocol_data)["ilp"]
    prepare = ilp4.decode_prepare(entry.data)
    assert prepare.destination == "example.alice"
    response = btp2.decode(bytes.fromhex(_vector("response-ilp-reject")["hex"]))
    reply = ilp4.decode_reply(response.protocol_data[0].data)
    assert isinstance(reply, ilp4.IlpReject)
    assert reply.code == "T04"


def _vector(vector_id: str) -> dict[str, Any]:
    return next(v for v in VECTORS if v["id"] == vector_id)


@pytest.mark.parametrize("case", EDGE, ids=[c["id"] for c in EDGE])
def test_odd_frames_read_as_btp_packet_reads_them(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["hex"])
    if case["id"] in TIME_READ_ON_PURPOSE:
        packet = btp2.decode(raw)
        assert isinstance(packet, btp2.Error)
        assert packet.triggered_at == datetime(2017, 12, 24, 16, 14, 32, tzinfo=UTC)
        assert case["js"]["json"]["data"]["triggeredAt"] == "Invalid Date"
    elif case["js"]["ok"]:
        assert btp2_to_json(btp2.decode(raw)) == case["js"]["json"]
    else:
        with pytest.raises(CodecError):
            btp2.decode(raw)


def test_count_of_length_zero_differs_from_btp_1() -> None:
    raw = bytes.fromhex(next(c for c in EDGE if c["id"] == "btp-count-length-0")["hex"])
    with pytest.raises(CodecError) as info:
        btp2.decode(raw)
    assert info.value.field == "protocolData"
    assert btp.decode(raw) == btp.Message(1, ())  # btp-packet 1.x (oer-utils 1.3.3) reads it


@pytest.mark.parametrize(
    ("case_id", "field"),
    [
        ("btp-type-3", "type"),
        ("btp-type-8", "type"),
        ("btp-count-length-7", "protocolData"),
        ("btp-length-beyond-end", "length"),
        ("btp-envelope-truncated", "envelope"),
        ("btp-transfer-truncated-amount", "amount"),
        ("btp-transfer-no-protocol-data", "protocolData"),
        ("btp-error-truncated-name", "name"),
    ],
)
def test_refusals_name_the_field(case_id: str, field: str) -> None:
    case = next(c for c in EDGE if c["id"] == case_id)
    with pytest.raises(CodecError) as info:
        btp2.decode(bytes.fromhex(case["hex"]))
    assert info.value.field == field


T = datetime(2017, 12, 23, 1, 21, 40, 549000, tzinfo=UTC)
CONDITION = bytes(32)


@pytest.mark.parametrize(
    ("packet", "field"),
    [
        (btp.Prepare(1, "5857d460-2a46-4545-8311-1539d4e7a74e", 1, CONDITION, T), "type"),
        (btp.Fulfill(1, "5857d460-2a46-4545-8311-1539d4e7a74e", CONDITION), "type"),
        (btp.Reject(1, "5857d460-2a46-4545-8311-1539d4e7a74e"), "type"),
        (btp2.Transfer(1, -1), "amount"),
        (btp2.Transfer(1, 2**64), "amount"),
        (btp2.Transfer(1, "5"), "amount"),  # type: ignore[arg-type]
        (btp2.Transfer(2**32, 5), "requestId"),
        (btp2.Transfer(1, 5, (btp2.ProtocolData("é", 0, b""),)), "protocolName"),
        (btp2.Transfer(1, 5, (btp2.ProtocolData("x", 256, b""),)), "contentType"),
        (btp2.Transfer(1, 5, ("x",)), "protocolData"),  # type: ignore[arg-type]
        (btp2.Error(1, "F0", "X", T, ""), "code"),
        (btp2.Error(1, "F00", "X", None, ""), "triggeredAt"),
        (btp2.Message(-1), "requestId"),
    ],
)
def test_encode_refusals_name_the_field(packet: Any, field: str) -> None:
    with pytest.raises(CodecError) as info:
        btp2.encode(packet)
    assert info.value.field == field


def test_transfer_round_trip_at_the_limits() -> None:
    for amount in (0, 2**64 - 1):
        packet = btp2.Transfer(2**32 - 1, amount, (btp2.ProtocolData("claim", 2, b"{}"),))
        assert btp2.decode(btp2.encode(packet)) == packet


def test_decode_accepts_bytearray_and_memoryview() -> None:
    raw = bytes.fromhex(_vector("transfer-claim")["hex"])
    assert btp2.decode(bytearray(raw)) == btp2.decode(memoryview(raw)) == btp2.decode(raw)
