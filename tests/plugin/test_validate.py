"""validate.py: the LPI field rules, stricter than the reference's; its validatorSpec.js tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.plugin.validate import (
    Validator,
    canonical_id,
    format_timestamp,
    parse_amount,
    parse_base64,
    parse_hash32,
    parse_timestamp,
)

from .conftest import VECTORS

OWN = "example.red.server"
PEER = "example.red.client"
validator = Validator(OWN, PEER, "example.red.")


def transfer(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1",
        "to": PEER,
        "amount": "5",
        "executionCondition": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
        "expiresAt": "2030-01-01T00:00:00.000Z",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


# -- the reference's validatorSpec.js


def test_assert_outgoing_should_accept_matching_accounts() -> None:
    validator.outgoing_transfer(transfer(**{"from": OWN}))


def test_assert_outgoing_should_accept_accounts_with_subledger_components() -> None:
    validator.outgoing_transfer(transfer(to=PEER + ".subledger"))


def test_assert_outgoing_should_reject_accounts_that_do_not_match() -> None:
    with pytest.raises(InvalidFieldsError, match="to"):
        validator.outgoing_transfer(transfer(to="example.blue.someone"))


def test_assert_incoming_should_accept_matching_accounts() -> None:
    validator.check_incoming({"to": OWN, "from": PEER})


def test_assert_incoming_should_accept_accounts_with_subledger_components() -> None:
    validator.check_incoming({"to": OWN + ".subledger", "from": PEER})


def test_assert_incoming_should_reject_accounts_that_do_not_match() -> None:
    with pytest.raises(InvalidFieldsError, match="from"):
        validator.check_incoming({"to": OWN, "from": "example.blue.mallory"})


# -- ids, amounts, conditions, timestamps (one canonical form each)


def test_ids_are_canonicalised_to_lowercase() -> None:
    assert (
        canonical_id("5709E97E-FFB5-5454-5C53-CFAA5A0CD4C1")
        == "5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1"
    )


@pytest.mark.parametrize("value", [666, "abc", "5709e97effb554545c53cfaa5a0cd4c1", "", None])
def test_non_uuid_ids_are_refused(value: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="id"):
        canonical_id(value)


@pytest.mark.parametrize(("value", "amount"), [("1", 1), (7, 7), (str(2**64 - 1), 2**64 - 1)])
def test_amounts_in_range_are_accepted(value: Any, amount: int) -> None:
    assert parse_amount(value) == amount


@pytest.mark.parametrize(
    "value", ["0", 0, "5.0", "-5.0", "1.5", "bogus", "1e3", str(2**64), True, None, " 5"]
)
def test_other_amounts_are_refused(value: Any) -> None:
    """`"5.0"` was accepted by the reference: refused here, as the docs say."""
    with pytest.raises(InvalidFieldsError, match="amount"):
        parse_amount(value)


def test_condition_vectors_round_trip_as_bytes() -> None:
    vectors = json.loads((VECTORS / "conditions.json").read_text())["vectors"]
    assert vectors
    for vector in vectors:
        condition = parse_hash32(vector["condition"], "executionCondition")
        assert condition.hex() == vector["conditionHex"]
        assert parse_hash32(vector["fulfillment"], "fulfillment").hex() == vector["preimageHex"]


@pytest.mark.parametrize(
    "value",
    [
        "Garbage",
        "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFV",
        "47DEQpj8HBSa+/TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
        5,
    ],
)
def test_bad_or_non_canonical_conditions_are_refused(value: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="executionCondition"):
        parse_hash32(value, "executionCondition")


def test_timestamps_keep_milliseconds_and_print_like_the_reference() -> None:
    moment = parse_timestamp("2017-12-06T20:09:28.123456+01:00")
    assert moment == datetime(2017, 12, 6, 19, 9, 28, 123000, tzinfo=UTC)
    assert format_timestamp(moment) == "2017-12-06T19:09:28.123Z"
    assert parse_timestamp(datetime(2020, 1, 1, tzinfo=timezone(timedelta(hours=2)))).hour == 22


@pytest.mark.parametrize("value", ["not a date", "2017-12-06T19:09:28", 5, datetime(2020, 1, 1)])
def test_timestamps_without_zone_or_unparsable_are_refused(value: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="expiresAt"):
        parse_timestamp(value)


def test_ilp_accepts_base64url_and_padded_standard_base64() -> None:
    assert parse_base64("-_8") == parse_base64("+/8=") == b"\xfb\xff"
    with pytest.raises(InvalidFieldsError, match="ilp"):
        parse_base64("a")
    with pytest.raises(InvalidFieldsError, match="ilp"):
        parse_base64("ab$d")


# -- the whole record


def test_outgoing_record_is_the_callers_plus_ledger_with_canonical_fields() -> None:
    checked = validator.outgoing_transfer(
        transfer(id="5709E97E-FFB5-5454-5C53-CFAA5A0CD4C1", amount=5, noteToSelf={"a": 1})
    )
    assert checked.record == {
        "id": "5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1",
        "to": PEER,
        "amount": "5",
        "executionCondition": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
        "expiresAt": "2030-01-01T00:00:00.000Z",
        "noteToSelf": {"a": 1},
        "ledger": "example.red.",
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": None}, "id"),
        ({"to": None}, "to"),
        ({"to": 42}, "to"),
        ({"data": 9000}, "data"),
        ({"amount": None}, "amount"),
        ({"executionCondition": None}, "executionCondition"),
        ({"expiresAt": None}, "expiresAt"),
        ({"ledger": "bogus."}, "ledger"),
        ({"from": "example.red.client"}, "from"),
        ({"custom": "x"}, "custom"),
    ],
)
def test_outgoing_transfer_field_errors_name_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFieldsError, match=field):
        validator.outgoing_transfer(transfer(**fields))


def test_account_field_skips_the_account_checks_as_the_reference() -> None:
    validator.outgoing_transfer(transfer(to="elsewhere.x", account="elsewhere.x"))


def test_messages_need_to_and_a_matching_ledger() -> None:
    with pytest.raises(InvalidFieldsError, match="must have a destination"):
        validator.outgoing_message({"ilp": "AA"})
    with pytest.raises(InvalidFieldsError, match="must match ILP prefix"):
        validator.outgoing_message({"to": PEER, "ledger": "bogus"})
    assert validator.outgoing_message({"to": PEER, "ilp": "AQID"}).ilp == b"\x01\x02\x03"
