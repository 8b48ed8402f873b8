"""Every BTP vector and transcript frame, byte for byte, both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ilp_paychan.codec import btp

from ._vectors import btp_from_json, btp_to_json, btp_vectors, load, transcript_files

VECTORS = btp_vectors()


def _frames() -> list[Any]:
    out = []
    for path in transcript_files():
        for i, entry in enumerate(json.loads(path.read_text(encoding="utf-8"))["log"]):
            if entry.get("kind") == "frame":
                out.append(pytest.param(entry, id=f"{path.stem}-{i}"))
    return out


def test_there_are_fifty_btp_vectors() -> None:
    assert len(VECTORS) == 50


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_decode_gives_the_recorded_json(vector: dict[str, Any]) -> None:
    assert btp_to_json(btp.decode(bytes.fromhex(vector["hex"]))) == vector["json"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_encode_gives_the_recorded_bytes(vector: dict[str, Any]) -> None:
    assert btp.encode(btp_from_json(vector["json"])).hex() == vector["hex"]


@pytest.mark.parametrize("entry", _frames())
def test_transcript_frame_decodes_and_reencodes_identically(entry: dict[str, Any]) -> None:
    packet = btp.decode(bytes.fromhex(entry["hex"]))
    assert btp_to_json(packet) == entry["decoded"]
    assert btp.encode(packet).hex() == entry["hex"]


def test_transcripts_hold_frames() -> None:
    assert len(_frames()) >= 50


def test_decode_accepts_memoryview_and_bytearray() -> None:
    raw = bytes.fromhex(VECTORS[0]["hex"])
    assert btp.decode(memoryview(raw)) == btp.decode(raw) == btp.decode(bytearray(raw))


def test_protocol_data_map_last_entry_wins() -> None:
    cases = load("lpi-protocol-data.json")["fromProtocolData"]
    case = next(c for c in cases if c["id"] == "duplicate-names")
    pd = tuple(
        btp.ProtocolData(e["protocolName"], e["contentType"], bytes.fromhex(e["dataHex"]))
        for e in case["protocolData"]
    )
    mapped = btp.protocol_data_map(pd)
    assert list(mapped) == ["a"]
    assert mapped["a"].data.decode() == case["result"]["protocolMap"]["a"]
