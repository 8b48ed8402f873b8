"""The JSON form of tests/vectors/v4 (see its README) for our ILPv4, ILDCP, BTP 2.0 and
transitional packets, so a test compares like with like.

Buffers are ``<field>Hex``, or ``<field>Length`` and ``<field>Sha256`` above 4096 bytes; times are
ISO-8601 UTC with milliseconds; amounts are decimal strings.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from ilp_paychan.codec import btp2, ilp4, ilp_compat
from ilp_paychan.codec.oer import encode_length

# From this file's path: in a whole-suite run another folder's conftest may own that module name.
V4 = Path(__file__).resolve().parent.parent / "vectors" / "v4"
BIG = 4096


def load(name: str) -> Any:
    return json.loads((V4 / name).read_text(encoding="utf-8"))


def iso(dt: datetime | None) -> str:
    if dt is None:
        return "Invalid Date"
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def put_bytes(out: dict[str, Any], key: str, value: bytes) -> None:
    if len(value) > BIG:
        out[key + "Length"] = len(value)
        out[key + "Sha256"] = hashlib.sha256(value).hexdigest()
    else:
        out[key + "Hex"] = value.hex()


def ilp4_to_json(packet: ilp4.IlpV4Packet) -> dict[str, Any]:
    data: dict[str, Any]
    if isinstance(packet, ilp4.IlpPrepare):
        kind, name = ilp4.TYPE_PREPARE, "ilp_prepare"
        data = {"amount": str(packet.amount)}
        put_bytes(data, "executionCondition", packet.execution_condition)
        data["expiresAt"] = iso(packet.expires_at)
        data["destination"] = packet.destination
    elif isinstance(packet, ilp4.IlpFulfill):
        kind, name = ilp4.TYPE_FULFILL, "ilp_fulfill"
        data = {}
        put_bytes(data, "fulfillment", packet.fulfillment)
    else:
        kind, name = ilp4.TYPE_REJECT, "ilp_reject"
        data = {"code": packet.code, "triggeredBy": packet.triggered_by, "message": packet.message}
    put_bytes(data, "data", packet.data)
    return {"type": kind, "typeString": name, "data": data}


def ilp4_from_vector(vector: dict[str, Any]) -> ilp4.IlpV4Packet:
    """The packet a vector holds, built from its json and, for big data, from its own bytes."""
    d = vector["json"]["data"]
    if "dataHex" in d:
        data = bytes.fromhex(d["dataHex"])
    else:  # the data are the last dataLength bytes of the packet
        data = bytes.fromhex(vector["hex"])[-d["dataLength"] :]
        assert hashlib.sha256(data).hexdigest() == d["dataSha256"]
    kind = vector["json"]["type"]
    if kind == ilp4.TYPE_PREPARE:
        return ilp4.IlpPrepare(
            int(d["amount"]),
            parse_iso(d["expiresAt"]),
            bytes.fromhex(d["executionConditionHex"]),
            d["destination"],
            data,
        )
    if kind == ilp4.TYPE_FULFILL:
        return ilp4.IlpFulfill(bytes.fromhex(d["fulfillmentHex"]), data)
    assert kind == ilp4.TYPE_REJECT
    return ilp4.IlpReject(d["code"], d["triggeredBy"], d["message"], data)


BTP2_TYPE_NAMES = {1: "TYPE_RESPONSE", 2: "TYPE_ERROR", 6: "TYPE_MESSAGE", 7: "TYPE_TRANSFER"}


def pd_to_json(pd: tuple[btp2.ProtocolData, ...]) -> list[dict[str, Any]]:
    out = []
    for p in pd:
        entry: dict[str, Any] = {"protocolName": p.protocol_name, "contentType": p.content_type}
        put_bytes(entry, "data", p.data)
        if p.content_type in (1, 2) and len(p.data) <= BIG:
            entry["dataText"] = p.data.decode("utf-8", "replace")
        out.append(entry)
    return out


def btp2_to_json(packet: btp2.Packet) -> dict[str, Any]:
    data: dict[str, Any]
    if isinstance(packet, btp2.Transfer):
        kind, data = btp2.TYPE_TRANSFER, {"amount": str(packet.amount)}
    elif isinstance(packet, btp2.Error):
        kind = btp2.TYPE_ERROR
        data = {
            "code": packet.code,
            "name": packet.name,
            "triggeredAt": iso(packet.triggered_at),
            "data": packet.data,
        }
    elif isinstance(packet, btp2.Response):
        kind, data = btp2.TYPE_RESPONSE, {}
    else:
        kind, data = btp2.TYPE_MESSAGE, {}
    data["protocolData"] = pd_to_json(packet.protocol_data)
    return {
        "type": kind,
        "typeName": BTP2_TYPE_NAMES[kind],
        "requestId": packet.request_id,
        "data": data,
    }


def btp2_from_vector(vector: dict[str, Any]) -> btp2.Packet:
    """The packet a vector holds; a big entry's bytes are taken from the frame (digest checked)."""
    j = vector["json"]
    frame = bytes.fromhex(vector["hex"])
    d = j["data"]
    entries = []
    for e in d["protocolData"]:
        if "dataHex" in e:
            raw = bytes.fromhex(e["dataHex"])
        else:  # found in the frame after its name, content type and length prefix
            name = e["protocolName"].encode("ascii")
            n = e["dataLength"]
            marker = encode_length(len(name)) + name + bytes((e["contentType"],)) + encode_length(n)
            start = frame.index(marker) + len(marker)
            raw = frame[start : start + n]
            assert hashlib.sha256(raw).hexdigest() == e["dataSha256"]
        entries.append(btp2.ProtocolData(e["protocolName"], e["contentType"], raw))
    pd = tuple(entries)
    kind, rid = j["type"], j["requestId"]
    if kind == btp2.TYPE_TRANSFER:
        return btp2.Transfer(rid, int(d["amount"]), pd)
    if kind == btp2.TYPE_ERROR:
        return btp2.Error(rid, d["code"], d["name"], parse_iso(d["triggeredAt"]), d["data"], pd)
    if kind == btp2.TYPE_RESPONSE:
        return btp2.Response(rid, pd)
    assert kind == btp2.TYPE_MESSAGE
    return btp2.Message(rid, pd)


COMPAT_TYPE_STRINGS = {9: "ilp_fulfillment", 10: "ilp_forwarded_payment", 11: "ilp_rejection"}


def compat_to_json(packet: ilp_compat.IlpCompatPacket) -> dict[str, Any]:
    data: dict[str, Any]
    if isinstance(packet, ilp_compat.IlpForwardedPayment):
        kind, data = ilp_compat.TYPE_ILP_FORWARDED_PAYMENT, {"account": packet.account}
    elif isinstance(packet, ilp_compat.IlpFulfillment):
        kind, data = ilp_compat.TYPE_ILP_FULFILLMENT, {}
    else:
        kind = ilp_compat.TYPE_ILP_REJECTION
        data = {"code": packet.code, "triggeredBy": packet.triggered_by, "message": packet.message}
    put_bytes(data, "data", packet.data)
    return {"type": kind, "typeString": COMPAT_TYPE_STRINGS[kind], "data": data}


def compat_from_json(j: dict[str, Any]) -> ilp_compat.IlpCompatPacket:
    d = j["data"]
    data = bytes.fromhex(d["dataHex"])
    if j["type"] == ilp_compat.TYPE_ILP_FORWARDED_PAYMENT:
        return ilp_compat.IlpForwardedPayment(d["account"], data)
    if j["type"] == ilp_compat.TYPE_ILP_FULFILLMENT:
        return ilp_compat.IlpFulfillment(data)
    assert j["type"] == ilp_compat.TYPE_ILP_REJECTION
    return ilp_compat.IlpRejection(d["code"], d["triggeredBy"], d["message"], data)
