"""Every STREAM packet vector of ilp-protocol-stream, byte for byte, both ways; and what its
decoder accepts or refuses, compared with ours."""

from __future__ import annotations

from typing import Any

import pytest

from ilp_paychan.codec import CodecError
from ilp_paychan.stream import StreamCodecError, decode_packet, encode_packet

from ._vectors import load, packet_from_json, packet_to_json

PACKETS = load("packets.json")["vectors"]
EDGE_CASES = load("decode-edge-cases.json")["vectors"]

#: Inputs ilp-protocol-stream decodes and we refuse on purpose, with the reason.
REFUSED_ON_PURPOSE = {
    # RFC 29 §5.2: a STREAM packet must be discarded when it is not on the ILP packet type it
    # names; no ILP packet has a type outside 12-14, so such a packet is always discarded (the
    # JS connection answers F06 after decoding it). We refuse it in the codec already.
    "ILP packet type 0": "ilpPacketType",
    "ILP packet type 15": "ilpPacketType",
    "ILP packet type 255": "ilpPacketType",
}


def _id(v: dict[str, Any]) -> str:
    return str(v["name"])


def test_the_vectors_cover_every_frame_type() -> None:
    names = {frame["name"] for v in PACKETS for frame in v["packet"]["frames"]}
    assert len(names) == 15
    assert len(PACKETS) >= 100


@pytest.mark.parametrize("vector", PACKETS, ids=_id)
def test_decode_matches_reference(vector: dict[str, Any]) -> None:
    packet = decode_packet(bytes.fromhex(vector["hex"]))
    assert packet_to_json(packet) == vector["packet"]


@pytest.mark.parametrize("vector", PACKETS, ids=_id)
def test_encode_matches_reference(vector: dict[str, Any]) -> None:
    assert encode_packet(packet_from_json(vector["packet"])).hex() == vector["hex"]


@pytest.mark.parametrize("vector", EDGE_CASES, ids=_id)
def test_decode_edge_case_as_reference(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    result = vector["result"]
    if vector["name"] in REFUSED_ON_PURPOSE:
        assert result["ok"], "the reference accepts this input"
        with pytest.raises(StreamCodecError) as info:
            decode_packet(raw)
        assert info.value.field == REFUSED_ON_PURPOSE[vector["name"]]
    elif result["ok"]:
        assert packet_to_json(decode_packet(raw)) == result["packet"]
    else:
        with pytest.raises(StreamCodecError) as info:
            decode_packet(raw)
        assert isinstance(info.value, CodecError)
        assert info.value.field, "the error names a field"


def test_edge_cases_name_the_field() -> None:
    """A few refusals, with the field a user would look for."""
    by_name = {v["name"]: bytes.fromhex(v["hex"]) for v in EDGE_CASES}
    expected = {
        "version 2 is refused": "version",
        "sequence of 9 bytes is refused": "sequence",
        "prepare amount of 9 bytes is refused": "prepareAmount",
        "totalReceived of 9 bytes is refused": "StreamMaxMoney.totalReceived",
        "empty receiveMax is refused": "StreamMaxMoney.receiveMax",
        "StreamMoney without shares is refused": "StreamMoney.shares",
        "ConnectionAssetDetails without a scale is refused": (
            "ConnectionAssetDetails.sourceAssetScale"
        ),
        "count with a length byte of 0 is refused": "frames",
        "count larger than the frames is refused": "frames",
        "frame length not canonical is refused": "frames",
    }
    for name, field in expected.items():
        with pytest.raises(StreamCodecError) as info:
            decode_packet(by_name[name])
        assert info.value.field == field, name
        assert str(info.value).startswith(field + ": ")
