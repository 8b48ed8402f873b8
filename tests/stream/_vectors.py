"""The JSON form of STREAM packets in tests/vectors/stream, to and from our dataclasses.

The generator (tests/interop/js_stream/vectors.js) writes a packet as ``{sequence, ilpPacketType,
prepareAmount, frames}`` and each frame as ``{type, name, <field>...}`` with ilp-protocol-stream's
field names: 64-bit numbers as decimal strings, error codes and the asset scale as numbers,
strings as they are, and byte fields as ``<field>Hex``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ilp_paychan.stream import IlpPacketType, StreamPacket
from ilp_paychan.stream import frames as f

# Not `conftest.VECTORS`: under a whole-suite run "conftest" may be another folder's conftest.
STREAM_VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "stream"

#: frame name -> (class, [(JSON field, kind)]) in constructor order; kind is how JSON holds it.
FRAMES: dict[str, tuple[type[Any], list[tuple[str, str]]]] = {
    "ConnectionClose": (f.ConnectionCloseFrame, [("errorCode", "num"), ("errorMessage", "str")]),
    "ConnectionNewAddress": (f.ConnectionNewAddressFrame, [("sourceAccount", "str")]),
    "ConnectionMaxData": (f.ConnectionMaxDataFrame, [("maxOffset", "u64")]),
    "ConnectionDataBlocked": (f.ConnectionDataBlockedFrame, [("maxOffset", "u64")]),
    "ConnectionMaxStreamId": (f.ConnectionMaxStreamIdFrame, [("maxStreamId", "u64")]),
    "ConnectionStreamIdBlocked": (f.ConnectionStreamIdBlockedFrame, [("maxStreamId", "u64")]),
    "ConnectionAssetDetails": (
        f.ConnectionAssetDetailsFrame,
        [("sourceAssetCode", "str"), ("sourceAssetScale", "num")],
    ),
    "StreamClose": (
        f.StreamCloseFrame,
        [("streamId", "u64"), ("errorCode", "num"), ("errorMessage", "str")],
    ),
    "StreamMoney": (f.StreamMoneyFrame, [("streamId", "u64"), ("shares", "u64")]),
    "StreamMaxMoney": (
        f.StreamMaxMoneyFrame,
        [("streamId", "u64"), ("receiveMax", "u64"), ("totalReceived", "u64")],
    ),
    "StreamMoneyBlocked": (
        f.StreamMoneyBlockedFrame,
        [("streamId", "u64"), ("sendMax", "u64"), ("totalSent", "u64")],
    ),
    "StreamData": (f.StreamDataFrame, [("streamId", "u64"), ("offset", "u64"), ("data", "hex")]),
    "StreamMaxData": (f.StreamMaxDataFrame, [("streamId", "u64"), ("maxOffset", "u64")]),
    "StreamDataBlocked": (f.StreamDataBlockedFrame, [("streamId", "u64"), ("maxOffset", "u64")]),
    "StreamReceipt": (f.StreamReceiptFrame, [("streamId", "u64"), ("receipt", "hex")]),
}


def load(name: str) -> Any:
    return json.loads((STREAM_VECTORS / name).read_text(encoding="utf-8"))


def frame_from_json(j: dict[str, Any]) -> f.Frame:
    cls, fields = FRAMES[j["name"]]
    args: list[Any] = []
    for name, kind in fields:
        if kind == "u64":
            args.append(int(j[name]))
        elif kind == "hex":
            args.append(bytes.fromhex(j[name + "Hex"]))
        else:
            args.append(j[name])
    frame: f.Frame = cls(*args)
    assert j["type"] == frame.TYPE
    return frame


def frame_to_json(frame: f.Frame) -> dict[str, Any]:
    _, fields = FRAMES[frame.NAME]
    out: dict[str, Any] = {"type": int(frame.TYPE), "name": frame.NAME}
    values = [getattr(frame, field.name) for field in dataclasses.fields(frame)]
    for (name, kind), value in zip(fields, values, strict=True):
        if kind == "u64":
            out[name] = str(value)
        elif kind == "hex":
            out[name + "Hex"] = value.hex()
        elif kind == "num":
            out[name] = int(value)
        else:
            out[name] = value
    return out


def packet_from_json(j: dict[str, Any]) -> StreamPacket:
    return StreamPacket(
        int(j["sequence"]),
        IlpPacketType(j["ilpPacketType"]),
        int(j["prepareAmount"]),
        tuple(frame_from_json(frame) for frame in j["frames"]),
    )


def packet_to_json(packet: StreamPacket) -> dict[str, Any]:
    return {
        "sequence": str(packet.sequence),
        "ilpPacketType": int(packet.ilp_packet_type),
        "prepareAmount": str(packet.prepare_amount),
        "frames": [frame_to_json(frame) for frame in packet.frames],
    }
