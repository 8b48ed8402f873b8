"""One rule for `expiresAt`, in the ledger and the plugin alike: a zone is required."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger import open_backend
from ilp_paychan.ledger.inputs import parse_expiry, parse_timestamp
from ilp_paychan.plugin.validate import parse_timestamp as plugin_timestamp

NO_ZONE = "invalid expiresAt: the timestamp has no time zone, so its instant depends on the host"


def transfer(expires_at: Any) -> dict[str, Any]:
    return {"id": "5857d460-2a46-4545-8311-1539d99e78e8", "amount": "5", "expiresAt": expires_at}


@pytest.mark.parametrize("value", ["2017-12-06T20:09:28", datetime(2017, 12, 6, 20, 9, 28)])
async def test_the_log_refuses_a_time_without_a_zone(value: Any) -> None:
    log = (await open_backend("memory:")).get_transfer_log()
    with pytest.raises(InvalidFieldsError) as caught:
        await log.prepare(transfer(value), True)
    assert str(caught.value).startswith(NO_ZONE)
    assert await log.get_incoming_fulfilled_and_prepared() == "0"


@pytest.mark.parametrize("value", ["2017-12-06T20:09:28", datetime(2017, 12, 6, 20, 9, 28)])
def test_ledger_and_plugin_refuse_the_same_way(value: Any) -> None:
    with pytest.raises(InvalidFieldsError) as in_ledger:
        parse_expiry(value)
    with pytest.raises(InvalidFieldsError) as in_plugin:
        plugin_timestamp(value)
    assert str(in_ledger.value) == str(in_plugin.value)
    assert str(in_ledger.value).startswith(NO_ZONE)


def test_the_message_names_the_field_given() -> None:
    with pytest.raises(InvalidFieldsError, match=r"^invalid reason\.triggered_at: the timestamp"):
        parse_timestamp("2017-12-06T20:09:28", "reason.triggered_at")


@pytest.mark.parametrize(
    "value",
    [
        "2017-12-06T21:09:28.5+01:00",
        "2017-12-06T20:09:28.500Z",
        datetime(2017, 12, 6, 21, 9, 28, 500000, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_zoned_times_become_utc(value: Any) -> None:
    assert parse_timestamp(value) == datetime(2017, 12, 6, 20, 9, 28, 500000, tzinfo=UTC)
    assert parse_timestamp(value).tzinfo is UTC


async def test_a_zoned_datetime_is_stored_as_utc_text() -> None:
    log = (await open_backend("memory:")).get_transfer_log()
    moment = datetime(2030, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    await log.prepare(transfer(moment), True)
    stored = await log.get(transfer(None)["id"])
    assert stored["transfer"]["expiresAt"] == "2030-01-01T00:00:00Z"


@pytest.mark.parametrize("value", ["tomorrow", 5, ""])
def test_what_is_no_timestamp_names_the_field(value: Any) -> None:
    with pytest.raises(InvalidFieldsError, match=r"^invalid expiresAt: expected an ISO 8601"):
        parse_expiry(value)
