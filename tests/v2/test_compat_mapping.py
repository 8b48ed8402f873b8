"""compat_mapping: ilp-compat-plugin 2.0.3's conversions against its own outputs
(tests/vectors/v4/ilp-compat.json), round trips through the v1 plugin's own reason encoding,
and what is decided where ilp-compat-plugin would throw."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ilp_paychan.codec import CodecError, ildcp, ilp4
from ilp_paychan.codec.ilp import IlpPayment, decode_ilp, encode_ilp
from ilp_paychan.errors import (
    InvalidFieldsError,
    NotAcceptedError,
    PeerError,
    StoreUnavailableError,
    UnreachableError,
)
from ilp_paychan.plugin.reasons import outgoing_reason, rejection_error
from ilp_paychan.v2 import compat_mapping as cm

V4 = Path(__file__).resolve().parents[1] / "vectors" / "v4"
DOC: dict[str, Any] = json.loads((V4 / "ilp-compat.json").read_text(encoding="utf-8"))
CONVERSIONS: dict[str, dict[str, Any]] = {c["id"]: c for c in DOC["conversions"]}
ACCOUNT = "example.red.server"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------------- against the vectors


def test_prepare_to_transfer_is_ilp_compat_plugins() -> None:
    c = CONVERSIONS["ilpPrepareToLpi1Transfer"]
    prepare = ilp4.decode_prepare(bytes.fromhex(c["inputHex"]))
    out = cm.prepare_to_transfer(
        prepare, "5857d460-2a46-4545-8311-1539d4e7a74e", to="a.b", from_="a.c", ledger="a."
    )
    expected = c["output"]
    assert cm.b64_lenient(out["ilp"]) == bytes.fromhex(c["outputIlpHex"])
    assert out["ilp"].rstrip("=") == expected["ilp"].rstrip("=")
    for key in ("amount", "executionCondition", "expiresAt", "custom"):
        assert out[key] == expected[key], key
    assert (out["to"], out["from"], out["ledger"]) == ("a.b", "a.c", "a.")


@pytest.mark.parametrize(
    "conversion_id", ["lpi1TransferToIlpPrepare", "lpi1TransferToIlpPrepare-ilp-v1-payment"]
)
def test_transfer_to_prepare_is_ilp_compat_plugins(conversion_id: str) -> None:
    c = CONVERSIONS[conversion_id]
    assert ilp4.encode(cm.transfer_to_prepare(c["input"])).hex() == c["outputHex"]


@pytest.mark.parametrize(
    "conversion_id",
    [
        "ilpFulfillToLpi1Fulfillment",
        "ilpFulfillToLpi1Fulfillment-data-empty",
        "ilpFulfillToLpi1Fulfillment-padding",
    ],
)
def test_fulfill_to_fulfillment_is_ilp_compat_plugins(conversion_id: str) -> None:
    c = CONVERSIONS[conversion_id]
    fulfillment, ilp = cm.fulfill_to_fulfillment(ilp4.decode_fulfill(bytes.fromhex(c["inputHex"])))
    assert fulfillment == c["output"]["fulfillment"]
    assert cm.b64_lenient(ilp).hex() == c["outputIlpHex"]


@pytest.mark.parametrize(
    "conversion_id", ["lpi1FulfillmentToIlpFulfill", "lpi1FulfillmentToIlpFulfill-no-ilp"]
)
def test_fulfillment_to_fulfill_is_ilp_compat_plugins(conversion_id: str) -> None:
    c = CONVERSIONS[conversion_id]
    packet = cm.fulfillment_to_fulfill(c["input"]["fulfillment"], c["input"]["ilp"] or None)
    assert ilp4.encode(packet).hex() == c["outputHex"]


def test_reject_to_reason_is_ilp_compat_plugins() -> None:
    c = CONVERSIONS["ilpRejectToLpi1Rejection"]
    now = datetime(2020, 1, 1, tzinfo=UTC)
    reason = cm.reject_to_reason(ilp4.decode_reject(bytes.fromhex(c["inputHex"])), now)
    assert reason == {**c["output"], "triggered_at": now}


@pytest.mark.parametrize(
    "conversion_id",
    [
        "lpi1RejectionToIlpReject",
        "lpi1RejectionToIlpReject-info-data",
        "lpi1RejectionToIlpReject-info-string",
    ],
)
def test_reason_to_reject_is_ilp_compat_plugins(conversion_id: str) -> None:
    c = CONVERSIONS[conversion_id]
    assert ilp4.encode(cm.reason_to_reject(c["input"])).hex() == c["outputHex"]


def test_error_names_are_ilp_compat_plugins_and_fill_its_gaps() -> None:
    for code, name in DOC["errorNames"].items():
        assert cm.error_name(code) == name
    assert cm.error_name("F08") == "Amount Too Large"
    assert cm.error_name("X42") == "Application Error"


# ---------------------------------------------------------------------- round trips

segments = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_~-",
    min_size=1,
    max_size=12,
)
addresses = st.builds(
    lambda scheme, parts: scheme + "." + ".".join(parts),
    st.sampled_from(["g", "example", "private", "test", "peer"]),
    st.lists(segments, min_size=1, max_size=4),
)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
prepares = st.builds(
    ilp4.IlpPrepare,
    st.integers(0, 2**64 - 1),
    times,
    st.binary(min_size=32, max_size=32),
    addresses,
    st.binary(max_size=300),
)
codes = st.one_of(
    st.sampled_from(sorted(ilp4.ERROR_NAMES)),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=3, max_size=3),
)
rejects = st.builds(
    ilp4.IlpReject,
    codes,
    addresses,
    st.text(max_size=200),
    st.binary(max_size=300),
)


@given(prepares)
def test_prepare_transfer_prepare(prepare: ilp4.IlpPrepare) -> None:
    transfer = cm.prepare_to_transfer(prepare, "id", to="t", from_="f", ledger="l")
    assert cm.transfer_to_prepare(transfer) == prepare


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_fulfill_fulfillment_fulfill(preimage: bytes, data: bytes) -> None:
    fulfill = ilp4.IlpFulfill(preimage, data)
    assert cm.fulfillment_to_fulfill(*cm.fulfill_to_fulfillment(fulfill)) == fulfill


def _utf8_safe(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


@given(rejects)
def test_reject_through_the_v1_plugins_ilp_error_and_back(reject: ilp4.IlpReject) -> None:
    """What the receiving v1 plugin encodes from the reason (an ILP v1 error on the wire) and
    what the sending v1 plugin reports from it come back as the same Reject."""
    reject = ilp4.IlpReject(
        reject.code, reject.triggered_by, _utf8_safe(reject.message), reject.data
    )
    reason = cm.reject_to_reason(reject, datetime.now(UTC))
    error, _ = rejection_error(reason, ACCOUNT)
    wire = decode_ilp(encode_ilp(error))
    assert cm.reason_to_reject(outgoing_reason(wire)) == reject  # type: ignore[arg-type]


@given(st.text(max_size=50).map(lambda s: s.encode("utf-8", "replace")))
def test_b64_lenient_reads_every_spelling(raw: bytes) -> None:
    standard = base64.b64encode(raw).decode()
    url = base64.urlsafe_b64encode(raw).decode()
    for text in (
        standard,
        url,
        standard.rstrip("="),
        url.rstrip("="),
        url[:-1] if url.endswith("==") else url,
    ):
        assert cm.b64_lenient(text) == raw


# ---------------------------------------------------------------------- where we decide


def test_an_empty_triggered_by_stays_empty_and_the_v1_plugin_fills_in_its_account() -> None:
    reason = cm.reject_to_reason(ilp4.IlpReject("F99", "", "m"), datetime.now(UTC))
    assert reason["triggered_by"] == ""
    error, _ = rejection_error(reason, ACCOUNT)
    assert error.triggered_by == ACCOUNT


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (None, ilp4.IlpReject("F00", "", "the transfer was rejected without a reason")),
        ({"code": "F0"}, ilp4.IlpReject("F00", "")),
        ({"code": "T04", "triggered_by": "not an address"}, ilp4.IlpReject("T04", "")),
        (
            {"code": "R00", "triggered_by": ACCOUNT, "additional_info": "expired"},
            ilp4.IlpReject("R00", ACCOUNT),
        ),
        (
            {"code": "F99", "triggered_by": ACCOUNT, "message": "m" * 9000},
            ilp4.IlpReject("F99", ACCOUNT, "m" * ilp4.MAX_MESSAGE_LENGTH),
        ),
        (
            {"code": "F99", "additional_info": {"data": "A" * 50000}},
            ilp4.IlpReject("F99", ""),
        ),
        (
            {"code": "F99", "additional_info": {"message": {"nested": 1}}},
            ilp4.IlpReject("F99", "", '{"nested": 1}'),
        ),
        (
            {"code": "F99", "additional_info": b"\xff"},
            ilp4.IlpReject("F99", ""),
        ),
    ],
    ids=[
        "none",
        "short-code",
        "bad-address",
        "text-info",
        "long-message",
        "long-data",
        "object-message",
        "bytes-info",
    ],
)
def test_reason_to_reject_repairs_what_an_ilpv4_reject_cannot_hold(
    reason: Any, expected: ilp4.IlpReject
) -> None:
    reject = cm.reason_to_reject(reason)
    assert reject == expected
    ilp4.encode(reject)


def _peer_error(name: str, code: str) -> PeerError:
    return PeerError.from_btp_error(code=code, name=name, data='{"message":"m"}', triggered_at=None)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (_peer_error("NotAcceptedError", "F00"), "T04"),
        (_peer_error("UnreachableError", "T00"), "T01"),
        (_peer_error("InvalidFieldsError", "F01"), "F01"),
        (_peer_error("SomethingElse", "F07"), "F07"),
        (_peer_error("SomethingElse", "bad code"), "T00"),
        (NotAcceptedError("minBalance"), "T04"),
        (UnreachableError("down"), "T01"),
        (StoreUnavailableError("db"), "T00"),
    ],
)
def test_refusals_become_rejects(error: BaseException, code: str) -> None:
    reject = cm.refusal_to_reject(error, ACCOUNT)
    assert (reject.code, reject.triggered_by) == (code, ACCOUNT)
    ilp4.encode(reject)


def test_transfer_to_prepare_names_what_is_wrong() -> None:
    good = cm.prepare_to_transfer(
        ilp4.IlpPrepare(5, datetime.now(UTC), bytes(32), "g.a"), "i", to="", from_="", ledger=""
    )
    ilp_error = encode_ilp(
        rejection_error({"code": "F00"}, ACCOUNT)[0]  # a type 8 packet, not a payment
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "ilp": None}, "ilp"),
        ({**good, "ilp": ""}, "ilp"),
        ({**good, "ilp": cm.b64url(ilp_error)}, "ilp"),
        ({**good, "ilp": cm.b64url(b"\x63\x00")}, "ilp"),
        ({**good, "ilp": cm.b64url(encode_ilp(IlpPayment(1, "no address", b"")))}, "destination"),
        ({**good, "amount": "1.5"}, "amount"),
        ({**good, "amount": str(2**64)}, "amount"),
        ({**good, "executionCondition": "AAAA"}, "executionCondition"),
        ({**good, "expiresAt": "2020-01-01T00:00:00"}, "expiresAt"),
        ({**good, "expiresAt": "tomorrow"}, "expiresAt"),
    ]
    for transfer, field in cases:
        with pytest.raises(CodecError) as info:
            cm.transfer_to_prepare(transfer)
        assert info.value.field == field, transfer


def test_an_ilp_v1_payment_counts_the_transfers_amount_not_its_own() -> None:
    transfer = cm.prepare_to_transfer(
        ilp4.IlpPrepare(5, datetime.now(UTC), bytes(32), "g.a"), "i", to="", from_="", ledger=""
    )
    transfer["ilp"] = cm.b64url(encode_ilp(IlpPayment(999, "g.b", b"x")))
    prepare = cm.transfer_to_prepare(transfer)
    assert (prepare.amount, prepare.destination, prepare.data) == (5, "g.b", b"x")


def test_a_fulfillment_with_a_foreign_ilp_is_refused_naming_it() -> None:
    with pytest.raises(CodecError) as info:
        cm.fulfillment_to_fulfill(cm.b64url(bytes(32)), cm.b64url(b"\x0a\x03\x01a\x00"))
    assert info.value.field in ("ilp", "account", "data", "length")
    with pytest.raises(CodecError, match="expected 32"):
        cm.fulfillment_to_fulfill("AAAA", None)


@pytest.mark.parametrize(
    ("info", "scale", "code"),
    [
        ({"currencyCode": "USD", "currencyScale": 2}, 2, "USD"),
        ({"currencyCode": "XRP", "currencyScale": 0}, 0, "XRP"),
        ({}, cm.DEFAULT_ASSET_SCALE, ""),
        (None, cm.DEFAULT_ASSET_SCALE, ""),
        ({"currency": "EUR", "currencyScale": True}, cm.DEFAULT_ASSET_SCALE, "EUR"),
    ],
)
def test_ildcp_answer(info: dict[str, Any] | None, scale: int, code: str) -> None:
    answer = ildcp.decode_response(cm.ildcp_answer(ACCOUNT, info))
    assert answer == ildcp.IldcpResponse(ACCOUNT, scale, code)


def test_iso_time_is_javascripts() -> None:
    moment = datetime(2017, 12, 23, 1, 21, 40, 549123, tzinfo=UTC)
    assert cm.iso_time(moment) == "2017-12-23T01:21:40.549Z"
    assert cm.iso_time(moment.astimezone(timezone(timedelta(hours=5)))) == (
        "2017-12-23T01:21:40.549Z"
    )
    with pytest.raises(CodecError):
        cm.iso_time(datetime(2017, 1, 1))


def test_handler_reasons() -> None:
    now = datetime.now(UTC)
    assert cm.no_handler_reason(ACCOUNT, now)["code"] == "T01"
    reason = cm.handler_failure_reason(RuntimeError("boom"), now)
    assert (reason["code"], reason["message"], reason["triggered_by"]) == ("F00", "boom", "")
    error, _ = rejection_error(reason, ACCOUNT)
    assert cm.reason_to_reject(outgoing_reason(error)) == ilp4.IlpReject("F00", ACCOUNT, "boom")
    with pytest.raises(InvalidFieldsError):
        rejection_error({"code": "F00", "name": "é"}, ACCOUNT)
