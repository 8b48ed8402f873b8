"""reasons.py: rejection reasons ↔ ILP errors, validated before any state change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ilp_paychan.codec.ilp import IlpError, decode_ilp, encode_ilp
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.plugin.reasons import expiry_error, outgoing_reason, rejection_error

ME = "example.red.server"


def test_defaults_are_f00_bad_request_from_own_account() -> None:
    error, normal = rejection_error({}, ME)
    assert (error.code, error.name, error.triggered_by, error.forwarded_by) == (
        "F00",
        "Bad Request",
        ME,
        (ME,),
    )
    assert error.data == b""
    assert normal["additional_info"] is None


def test_full_reason_as_the_reference_test() -> None:
    when = datetime(2017, 12, 6, 19, 9, 28, 123000, tzinfo=UTC)
    error, _ = rejection_error(
        {
            "code": "F06",
            "name": "Unexpected Payment",
            "triggered_by": "example.red.client",
            "forwarded_by": "test.some.connector",
            "triggered_at": when,
            "additional_info": {"extra": "data"},
        },
        ME,
    )
    assert error == IlpError(
        "F06",
        "Unexpected Payment",
        "example.red.client",
        ("test.some.connector",),
        when,
        b'{"extra":"data"}',
    )


def test_iso_string_triggered_at_and_list_forwarded_by() -> None:
    error, _ = rejection_error(
        {"triggered_at": "2017-12-06T19:09:28.123Z", "forwarded_by": ["a.b", "c.d"]}, ME
    )
    assert error.triggered_at == datetime(2017, 12, 6, 19, 9, 28, 123000, tzinfo=UTC)
    assert error.forwarded_by == ("a.b", "c.d")


@pytest.mark.parametrize(
    ("reason", "field"),
    [
        ({"triggered_at": "not a date"}, "triggered_at"),
        ({"code": "F0"}, "code"),
        ({"name": "Bäd"}, "name"),
        ({"forwarded_by": 5}, "forwarded_by"),
        ({"additional_info": {"x": object()}}, "additional_info"),
        ("oops", "reason"),
    ],
)
def test_unusable_reasons_raise_invalid_fields(reason: Any, field: str) -> None:
    with pytest.raises(InvalidFieldsError, match=field):
        rejection_error(reason, ME)


def test_expiry_error_is_the_references_r00() -> None:
    error = expiry_error(ME)
    assert (error.code, error.name, error.triggered_by, error.forwarded_by, error.data) == (
        "R00",
        "Transfer Timed Out",
        ME,
        (),
        b"expired",
    )
    decode_ilp(encode_ilp(error))


def test_received_reason_keeps_the_whole_forwarded_list_and_text_data() -> None:
    """The reference reported only the last forwardedBy and 'not JSON'."""
    when = datetime(2017, 12, 6, tzinfo=UTC)
    reason = outgoing_reason(
        IlpError("R00", "Transfer Timed Out", "a", ("b", "c"), when, b"expired")
    )
    assert reason == {
        "code": "R00",
        "name": "Transfer Timed Out",
        "triggered_by": "a",
        "forwarded_by": ["b", "c"],
        "triggered_at": when,
        "additional_info": "expired",
    }
    assert outgoing_reason(IlpError("F00", "x", "a", (), when, b'{"k":1}'))["additional_info"] == {
        "k": 1
    }
