"""Conversions between codec packets and the JSON form of the vector files in tests/vectors.

The vector files (see tests/vectors/README.md) write BTP packets as
``{type, typeName, requestId, data}`` with camelCase fields, base64url conditions, decimal-string
amounts and ISO-8601 dates; these helpers apply the same normalisation so a test compares like
with like.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from conftest import VECTORS
from ilp_paychan.codec import btp, ilp
from ilp_paychan.codec.condition import b64url_decode, b64url_encode

TYPE_NAMES = {1: "RESPONSE", 2: "ERROR", 3: "PREPARE", 4: "FULFILL", 5: "REJECT", 6: "MESSAGE"}
BTP_FILES = ("message", "response", "error", "prepare", "fulfill", "reject")


def load(relative: str) -> Any:
    return json.loads((VECTORS / relative).read_text(encoding="utf-8"))


def btp_vectors() -> list[dict[str, Any]]:
    return [v for name in BTP_FILES for v in load(f"btp/{name}.json")["vectors"]]


def transcript_files() -> list[Path]:
    return sorted((VECTORS / "transcripts").glob("*.json"))


def iso(dt: datetime | None) -> str:
    if dt is None:
        return "Invalid Date"
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def pd_to_json(pd: tuple[btp.ProtocolData, ...]) -> list[dict[str, Any]]:
    out = []
    for p in pd:
        entry: dict[str, Any] = {
            "protocolName": p.protocol_name,
            "contentType": p.content_type,
            "dataHex": p.data.hex(),
        }
        if p.content_type in (1, 2):
            entry["dataText"] = p.data.decode("utf-8", "replace")
        out.append(entry)
    return out


def pd_from_json(entries: list[dict[str, Any]]) -> tuple[btp.ProtocolData, ...]:
    return tuple(
        btp.ProtocolData(e["protocolName"], e["contentType"], bytes.fromhex(e["dataHex"]))
        for e in entries
    )


def btp_to_json(packet: btp.Packet) -> dict[str, Any]:
    data: dict[str, Any]
    if isinstance(packet, btp.Prepare):
        kind = btp.TYPE_PREPARE
        data = {
            "transferId": packet.transfer_id,
            "amount": str(packet.amount),
            "executionCondition": b64url_encode(packet.execution_condition),
            "expiresAt": iso(packet.expires_at),
        }
    elif isinstance(packet, btp.Fulfill):
        kind = btp.TYPE_FULFILL
        data = {
            "transferId": packet.transfer_id,
            "fulfillment": b64url_encode(packet.fulfillment),
        }
    elif isinstance(packet, btp.Reject):
        kind = btp.TYPE_REJECT
        data = {"transferId": packet.transfer_id}
    elif isinstance(packet, btp.Error):
        kind = btp.TYPE_ERROR
        data = {
            "code": packet.code,
            "name": packet.name,
            "triggeredAt": iso(packet.triggered_at),
            "data": packet.data,
        }
    elif isinstance(packet, btp.Response):
        kind, data = btp.TYPE_RESPONSE, {}
    else:
        kind, data = btp.TYPE_MESSAGE, {}
    data["protocolData"] = pd_to_json(packet.protocol_data)
    return {
        "type": kind,
        "typeName": TYPE_NAMES[kind],
        "requestId": packet.request_id,
        "data": data,
    }


def btp_from_json(j: dict[str, Any]) -> btp.Packet:
    kind, rid, d = j["type"], j["requestId"], j["data"]
    pd = pd_from_json(d["protocolData"])
    if kind == btp.TYPE_PREPARE:
        return btp.Prepare(
            rid,
            d["transferId"],
            int(d["amount"]),
            b64url_decode(d["executionCondition"]),
            parse_iso(d["expiresAt"]),
            pd,
        )
    if kind == btp.TYPE_FULFILL:
        return btp.Fulfill(rid, d["transferId"], b64url_decode(d["fulfillment"]), pd)
    if kind == btp.TYPE_REJECT:
        return btp.Reject(rid, d["transferId"], pd)
    if kind == btp.TYPE_ERROR:
        return btp.Error(rid, d["code"], d["name"], parse_iso(d["triggeredAt"]), d["data"], pd)
    if kind == btp.TYPE_RESPONSE:
        return btp.Response(rid, pd)
    assert kind == btp.TYPE_MESSAGE
    return btp.Message(rid, pd)


ILP_TYPE_STRINGS = {
    1: "ilp_payment",
    2: "ilqp_liquidity_request",
    3: "ilqp_liquidity_response",
    4: "ilqp_by_source_request",
    5: "ilqp_by_source_response",
    6: "ilqp_by_destination_request",
    7: "ilqp_by_destination_response",
    8: "ilp_error",
}


def _b64(data: bytes) -> str:
    """ilp-packet shows payment data as base64url without padding."""
    return b64url_encode(data)


def ilp_to_json(p: ilp.IlpPacket) -> dict[str, Any]:
    data: dict[str, Any]
    if isinstance(p, ilp.IlpPayment):
        kind, data = 1, {"amount": str(p.amount), "account": p.account, "data": _b64(p.data)}
    elif isinstance(p, ilp.IlqpLiquidityRequest):
        kind, data = (
            2,
            {
                "destinationAccount": p.destination_account,
                "destinationHoldDuration": p.destination_hold_duration,
            },
        )
    elif isinstance(p, ilp.IlqpLiquidityResponse):
        kind, data = (
            3,
            {
                "liquidityCurve": {"hex": p.liquidity_curve.hex()},
                "appliesToPrefix": p.applies_to_prefix,
                "sourceHoldDuration": p.source_hold_duration,
                "expiresAt": iso(p.expires_at),
            },
        )
    elif isinstance(p, ilp.IlqpBySourceRequest):
        kind, data = (
            4,
            {
                "destinationAccount": p.destination_account,
                "sourceAmount": str(p.source_amount),
                "destinationHoldDuration": p.destination_hold_duration,
            },
        )
    elif isinstance(p, ilp.IlqpBySourceResponse):
        kind, data = (
            5,
            {
                "destinationAmount": str(p.destination_amount),
                "sourceHoldDuration": p.source_hold_duration,
            },
        )
    elif isinstance(p, ilp.IlqpByDestinationRequest):
        kind, data = (
            6,
            {
                "destinationAccount": p.destination_account,
                "destinationAmount": str(p.destination_amount),
                "destinationHoldDuration": p.destination_hold_duration,
            },
        )
    elif isinstance(p, ilp.IlqpByDestinationResponse):
        kind, data = (
            7,
            {
                "sourceAmount": str(p.source_amount),
                "sourceHoldDuration": p.source_hold_duration,
            },
        )
    else:
        kind, data = (
            8,
            {
                "code": p.code,
                "name": p.name,
                "triggeredBy": p.triggered_by,
                "forwardedBy": list(p.forwarded_by),
                "triggeredAt": iso(p.triggered_at),
                "data": p.data.decode("ascii"),
            },
        )
    return {"type": kind, "typeString": ILP_TYPE_STRINGS[kind], "data": data}


def _from_b64(text: str) -> bytes:
    """ilp-packet's input ``data`` is standard base64; its output is base64url."""
    import base64

    return base64.b64decode(text + "=" * (-len(text) % 4))


def ilp_from_input(kind: int, d: dict[str, Any]) -> ilp.IlpPacket:
    if kind == 1:
        return ilp.IlpPayment(int(d["amount"]), d["account"], _from_b64(d["data"]))
    if kind == 2:
        return ilp.IlqpLiquidityRequest(d["destinationAccount"], d["destinationHoldDuration"])
    if kind == 3:
        return ilp.IlqpLiquidityResponse(
            bytes.fromhex(d["liquidityCurve"]["hex"]),
            d["appliesToPrefix"],
            d["sourceHoldDuration"],
            parse_iso(d["expiresAt"]),
        )
    if kind == 4:
        return ilp.IlqpBySourceRequest(
            d["destinationAccount"], int(d["sourceAmount"]), d["destinationHoldDuration"]
        )
    if kind == 5:
        return ilp.IlqpBySourceResponse(int(d["destinationAmount"]), d["sourceHoldDuration"])
    if kind == 6:
        return ilp.IlqpByDestinationRequest(
            d["destinationAccount"], int(d["destinationAmount"]), d["destinationHoldDuration"]
        )
    if kind == 7:
        return ilp.IlqpByDestinationResponse(int(d["sourceAmount"]), d["sourceHoldDuration"])
    assert kind == 8
    return ilp.IlpError(
        d["code"],
        d["name"],
        d["triggeredBy"],
        tuple(d["forwardedBy"]),
        parse_iso(d["triggeredAt"]),
        d["data"].encode("ascii"),
    )
