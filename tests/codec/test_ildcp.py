"""ILDCP (RFC 31) against ilp-protocol-ildcp 2.2.3 (tests/vectors/v4/ildcp.json): requests and
responses both ways, what its serve() answers, and which responses it accepts."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from ilp_paychan.codec import CodecError, ildcp, ilp4

from ._vectors_v4 import ilp4_to_json, load, parse_iso

DOC: dict[str, Any] = load("ildcp.json")
NOW = parse_iso(DOC["now"])


def test_the_fixed_condition_is_rfc31s() -> None:
    condition = ildcp.PEER_PROTOCOL_CONDITION
    assert base64.b64encode(condition) == b"Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU="
    fulfillment = ildcp.PEER_PROTOCOL_FULFILLMENT
    assert fulfillment == b"\x00" * 32


@pytest.mark.parametrize("v", DOC["requests"], ids=lambda v: v["id"])
def test_request_both_ways(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["hex"])
    expires_at = parse_iso(v["json"]["expiresAt"])
    data = bytes.fromhex(v["json"]["dataHex"])
    request = ildcp.decode_request(raw, NOW)
    assert request == ildcp.IldcpRequest(expires_at, 0, data)
    assert ildcp.encode_request(request) == raw
    prepare = ilp4.decode_prepare(raw)
    assert ilp4_to_json(prepare)["data"] == v["prepare"]
    assert ildcp.is_request(prepare)


def test_default_expiry_is_ilp_protocol_ildcps() -> None:
    v = next(v for v in DOC["requests"] if v["id"] == "request-default-expiry")
    assert parse_iso(v["json"]["expiresAt"]) == NOW + ildcp.DEFAULT_EXPIRY


@pytest.mark.parametrize("v", DOC["responses"], ids=lambda v: v["id"])
def test_response_both_ways(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["hex"])
    j = v["json"]
    expected = ildcp.IldcpResponse(j["clientAddress"], j["assetScale"], j["assetCode"])
    assert ildcp.decode_response(raw) == expected
    assert ildcp.encode_response(expected) == raw
    assert ildcp.encode_response_data(expected).hex() == v["dataHex"]
    assert ildcp.decode_response_data(bytes.fromhex(v["dataHex"])) == expected


def _serve(request: bytes, info: ildcp.IldcpResponse | None, server: str) -> bytes:
    """What a parent answers, built from the codec the way ilp-protocol-ildcp's serve() does."""
    try:
        ildcp.decode_request(request, NOW)
    except CodecError as exc:
        messages = {
            "destination": "packet is not an IL-DCP request.",
            "executionCondition": "packet does not contain correct condition for a peer "
            "protocol request.",
            "expiresAt": "IL-DCP request packet is expired.",
        }
        return ildcp.encode_error(server, messages[exc.field])
    if info is None:
        return ildcp.encode_error(server, "no account for this child")
    return ildcp.encode_response(info)


@pytest.mark.parametrize("v", DOC["served"], ids=lambda v: v["id"])
def test_serve_answers_as_ilp_protocol_ildcp(v: dict[str, Any]) -> None:
    info = (
        None
        if v["id"] == "serve-handler-fails"
        else ildcp.IldcpResponse("test.parent.child", 9, "XRP")
    )
    reply = _serve(bytes.fromhex(v["requestHex"]), info, "test.parent")
    assert reply.hex() == v["replyHex"]
    assert ilp4_to_json(ilp4.decode_reply(reply)) == v["reply"]


def test_a_request_expiring_exactly_now_is_still_good() -> None:
    v = next(v for v in DOC["served"] if v["id"] == "serve-expires-now")
    assert v["reply"]["type"] == ilp4.TYPE_FULFILL
    assert ildcp.decode_request(bytes.fromhex(v["requestHex"]), NOW).expires_at == NOW
    with pytest.raises(CodecError) as info:
        ildcp.decode_request(bytes.fromhex(v["requestHex"]), NOW + timedelta(milliseconds=1))
    assert info.value.field == "expiresAt"


#: Responses ilp-protocol-ildcp reads but we refuse, and why.
REFUSED_ON_PURPOSE = {
    "response-address-high-bit": "RFC 15: not an address byte; Node clears the high bit",
}


@pytest.mark.parametrize("v", DOC["decodeCases"], ids=lambda v: v["id"])
def test_responses_accepted_and_refused_as_ilp_protocol_ildcp(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["hex"])
    if v["js"]["ok"] and v["id"] not in REFUSED_ON_PURPOSE:
        j = v["js"]["json"]
        expected = ildcp.IldcpResponse(j["clientAddress"], j["assetScale"], j["assetCode"])
        assert ildcp.decode_response(raw) == expected
    else:
        with pytest.raises(CodecError):
            ildcp.decode_response(raw)


@pytest.mark.parametrize(
    ("case_id", "field"),
    [
        ("response-wrong-fulfillment", "fulfillment"),
        ("response-invalid-address", "clientAddress"),
        ("response-address-high-bit", "clientAddress"),
        ("response-no-asset-code", "assetCode"),
        ("response-no-asset-scale", "assetScale"),
        ("response-is-reject", "type"),
    ],
)
def test_refused_responses_name_the_field(case_id: str, field: str) -> None:
    v = next(v for v in DOC["decodeCases"] if v["id"] == case_id)
    with pytest.raises(CodecError) as info:
        ildcp.decode_response(bytes.fromhex(v["hex"]))
    assert info.value.field == field


def test_a_rejected_request_reads_as_a_reject() -> None:
    v = next(v for v in DOC["decodeCases"] if v["id"] == "response-is-reject")
    reply = ilp4.decode_reply(bytes.fromhex(v["hex"]))
    assert isinstance(reply, ilp4.IlpReject)
    assert reply.triggered_by == "test.parent"


@pytest.mark.parametrize(
    ("response", "field"),
    [
        (ildcp.IldcpResponse("nope", 9, "XRP"), "clientAddress"),
        (ildcp.IldcpResponse("g.a", 256, "XRP"), "assetScale"),
        (ildcp.IldcpResponse("g.a", -1, "XRP"), "assetScale"),
        (ildcp.IldcpResponse("g.a", 9.0, "XRP"), "assetScale"),  # type: ignore[arg-type]
        (ildcp.IldcpResponse("g.a", 9, b"XRP"), "assetCode"),  # type: ignore[arg-type]
        (ildcp.IldcpResponse("g.a", 9, "\udc00"), "assetCode"),
    ],
)
def test_encode_response_refusals_name_the_field(response: ildcp.IldcpResponse, field: str) -> None:
    with pytest.raises(CodecError) as info:
        ildcp.encode_response(response)
    assert info.value.field == field


def test_decode_request_needs_an_aware_now() -> None:
    raw = bytes.fromhex(DOC["requests"][0]["hex"])
    with pytest.raises(CodecError) as info:
        ildcp.decode_request(raw, NOW.replace(tzinfo=None))
    assert info.value.field == "now"
    assert ildcp.decode_request(raw).expires_at > NOW


def test_encode_request_refuses_other_objects() -> None:
    with pytest.raises(CodecError) as info:
        ildcp.encode_request(ildcp.IldcpResponse("g.a", 1, "X"))  # type: ignore[arg-type]
    assert info.value.field == "type"
