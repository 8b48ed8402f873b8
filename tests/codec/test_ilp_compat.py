"""The transitional ILP packets (types 9, 10, 11) against ilp-packet 2.2.0, and ilp-compat-plugin
2.0.3's conversions between ILPv4 packets and LPI v1 objects rebuilt from our codecs byte for
byte (tests/vectors/v4/ilp-compat.json)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ilp_paychan.codec import CodecError, decode_ilp, ilp, ilp4, ilp_compat

from ._vectors_v4 import compat_from_json, compat_to_json, load, parse_iso

DOC: dict[str, Any] = load("ilp-compat.json")
VECTORS: list[dict[str, Any]] = DOC["vectors"]
CONVERSIONS: dict[str, dict[str, Any]] = {c["id"]: c for c in DOC["conversions"]}
EDGE: list[dict[str, Any]] = [
    c for c in load("decode-edge-cases.json")["cases"] if c["kind"] == "ilp-compat"
]


def b64(text: str) -> bytes:
    """Base64 or base64url, padded or not: ilp-compat-plugin's base64url strips one '=' only."""
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(
        text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4)
    )


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def test_every_type_is_covered() -> None:
    assert {v["json"]["type"] for v in VECTORS} == {9, 10, 11}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_both_ways(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    assert compat_to_json(ilp_compat.decode_compat(raw)) == vector["json"]
    assert ilp_compat.encode_compat(compat_from_json(vector["json"])) == raw


@pytest.mark.parametrize("case", EDGE, ids=[c["id"] for c in EDGE])
def test_odd_input_reads_as_ilp_packet_2_reads_it(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["hex"])
    if case["js"]["ok"]:
        assert compat_to_json(ilp_compat.decode_compat(raw)) == case["js"]["json"]
    else:
        with pytest.raises(CodecError):
            ilp_compat.decode_compat(raw)


def test_other_types_are_refused_naming_the_field() -> None:
    for raw in (b"", b"\x0c\x00", b"\x01\x00", b"\x08\x00"):
        with pytest.raises(CodecError) as info:
            ilp_compat.decode_compat(raw)
        assert info.value.field == "type"


def test_prepare_to_lpi1_transfer() -> None:
    c = CONVERSIONS["ilpPrepareToLpi1Transfer"]
    prepare = ilp4.decode_prepare(bytes.fromhex(c["inputHex"]))
    forwarded = ilp_compat.IlpForwardedPayment(prepare.destination, prepare.data)
    assert ilp_compat.encode_compat(forwarded).hex() == c["outputIlpHex"]
    out = c["output"]
    assert b64(out["ilp"]).hex() == c["outputIlpHex"]
    assert out["amount"] == str(prepare.amount)
    assert out["executionCondition"] == b64url(prepare.execution_condition)
    assert parse_iso(out["expiresAt"]) == prepare.expires_at


@pytest.mark.parametrize(
    "conversion_id", ["lpi1TransferToIlpPrepare", "lpi1TransferToIlpPrepare-ilp-v1-payment"]
)
def test_lpi1_transfer_to_prepare(conversion_id: str) -> None:
    c = CONVERSIONS[conversion_id]
    transfer = c["input"]
    raw_ilp = b64(transfer["ilp"])
    if raw_ilp[0] == ilp_compat.TYPE_ILP_FORWARDED_PAYMENT:
        forwarded = ilp_compat.decode_compat(raw_ilp)
        assert isinstance(forwarded, ilp_compat.IlpForwardedPayment)
        account, data = forwarded.account, forwarded.data
    else:  # an ILP v1 payment (type 1): its amount is ignored, the transfer's counts
        payment = decode_ilp(raw_ilp)
        assert isinstance(payment, ilp.IlpPayment)
        account, data = payment.account, payment.data
    prepare = ilp4.IlpPrepare(
        int(transfer["amount"]),
        parse_iso(transfer["expiresAt"]),
        b64(transfer["executionCondition"]),
        account,
        data,
    )
    assert ilp4.encode(prepare).hex() == c["outputHex"]


@pytest.mark.parametrize(
    "conversion_id",
    [
        "ilpFulfillToLpi1Fulfillment",
        "ilpFulfillToLpi1Fulfillment-data-empty",
        "ilpFulfillToLpi1Fulfillment-padding",
    ],
)
def test_fulfill_to_lpi1_fulfillment(conversion_id: str) -> None:
    c = CONVERSIONS[conversion_id]
    fulfill = ilp4.decode_fulfill(bytes.fromhex(c["inputHex"]))
    raw_ilp = ilp_compat.encode_compat(ilp_compat.IlpFulfillment(fulfill.data))
    assert raw_ilp.hex() == c["outputIlpHex"]
    assert b64(c["output"]["ilp"]) == raw_ilp
    assert b64(c["output"]["fulfillment"]) == fulfill.fulfillment


def test_compat_base64url_strips_only_one_pad() -> None:
    # What an adapter reading ilp-compat-plugin's strings must accept: "...AA=" (one '=' left).
    ilp_text = CONVERSIONS["ilpFulfillToLpi1Fulfillment"]["output"]["ilp"]
    assert ilp_text.endswith("=")
    assert not ilp_text.endswith("==")


@pytest.mark.parametrize(
    "conversion_id", ["lpi1FulfillmentToIlpFulfill", "lpi1FulfillmentToIlpFulfill-no-ilp"]
)
def test_lpi1_fulfillment_to_fulfill(conversion_id: str) -> None:
    c = CONVERSIONS[conversion_id]
    data = b""
    if c["input"]["ilp"]:
        fulfillment = ilp_compat.decode_compat(b64(c["input"]["ilp"]))
        assert isinstance(fulfillment, ilp_compat.IlpFulfillment)
        data = fulfillment.data
    packet = ilp4.IlpFulfill(b64(c["input"]["fulfillment"]), data)
    assert ilp4.encode(packet).hex() == c["outputHex"]


def test_reject_to_lpi1_rejection() -> None:
    c = CONVERSIONS["ilpRejectToLpi1Rejection"]
    reject = ilp4.decode_reject(bytes.fromhex(c["inputHex"]))
    out = c["output"]
    assert (out["code"], out["message"], out["triggered_by"]) == (
        reject.code,
        reject.message,
        reject.triggered_by,
    )
    assert out["additional_info"] == {"data": b64url(reject.data), "message": reject.message}
    assert out["name"] == DOC["errorNames"][reject.code]


@pytest.mark.parametrize(
    "conversion_id",
    [
        "lpi1RejectionToIlpReject",
        "lpi1RejectionToIlpReject-info-data",
        "lpi1RejectionToIlpReject-info-string",
    ],
)
def test_lpi1_rejection_to_reject(conversion_id: str) -> None:
    c = CONVERSIONS[conversion_id]
    reason = c["input"]
    info = reason["additional_info"]
    if isinstance(info, str):
        info = json.loads(info)
    data = b64(info["data"]) if info.get("data") else b""
    message = reason.get("message") or info.get("message") or ""
    packet = ilp4.IlpReject(reason["code"], reason["triggered_by"], message, data)
    assert ilp4.encode(packet).hex() == c["outputHex"]


def test_compat_error_names_are_the_older_ones() -> None:
    # ilp-compat-plugin names T01/T02 as the ledger era did and has no F08; RFC 27 is newer.
    names = DOC["errorNames"]
    differing = {code for code, name in names.items() if ilp4.ERROR_NAMES[code] != name}
    assert differing == {"T01", "T02"}
    assert set(ilp4.ERROR_NAMES) - set(names) == {"F08"}


@pytest.mark.parametrize(
    ("packet", "field"),
    [
        (ilp_compat.IlpForwardedPayment("g.é"), "account"),
        (ilp_compat.IlpForwardedPayment("g.a", "x"), "data"),  # type: ignore[arg-type]
        (ilp_compat.IlpFulfillment(None), "data"),  # type: ignore[arg-type]
        (ilp_compat.IlpRejection("F0", "g.a"), "code"),
        (ilp_compat.IlpRejection("F00", 5), "triggeredBy"),  # type: ignore[arg-type]
        (ilp_compat.IlpRejection("F00", "g.a", "\ud800"), "message"),
        (ilp4.IlpFulfill(bytes(32)), "type"),
    ],
)
def test_encode_refusals_name_the_field(packet: Any, field: str) -> None:
    with pytest.raises(CodecError) as info:
        ilp_compat.encode_compat(packet)
    assert info.value.field == field
