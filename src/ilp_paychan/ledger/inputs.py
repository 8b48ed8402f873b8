"""Validation and normalisation of what callers hand to the ledger.

Everything here is pure and raises before any store is touched, so bad input can never corrupt
stored state. Money is parsed to `int` here and formatted back to plain decimal text (never
exponential notation, which the reference's BigNumber switched to at 1e21).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ilp_paychan.errors import InvalidFieldsError

_KEY = re.compile(r"^[A-Za-z0-9_-]*$")
_UNSIGNED = re.compile(r"^[0-9]+$")
_SIGNED = re.compile(r"^-?[0-9]+$")
#: One encoder for every `to_json` (json.dumps with options builds a new one per call).
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

INFINITY = "Infinity"
NEG_INFINITY = "-Infinity"


def check_key(key: object, *, required: bool = False) -> str:
    """The key itself, if it uses the base64url alphabet (the store layout relies on it)."""
    if key is None or (required and key == ""):
        raise ValueError("key must be defined")
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"invalid key: {key}")
    return key


def parse_amount(value: object, field: str = "amount") -> int:
    """A non-negative integer amount from an `int` or a decimal digit string."""
    if isinstance(value, bool):
        raise InvalidFieldsError(f"{field} must be a non-negative integer, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise InvalidFieldsError(f"{field} must be a non-negative integer, got {value}")
        return value
    if isinstance(value, str) and _UNSIGNED.match(value):
        return int(value)
    raise InvalidFieldsError(
        f"{field} must be a non-negative integer (int or decimal string), got {value!r}"
    )


def parse_signed(value: object, field: str) -> int:
    """An integer of either sign from an `int` or a decimal string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _SIGNED.match(value):
        return int(value)
    raise InvalidFieldsError(f"{field} must be an integer (int or decimal string), got {value!r}")


def parse_limit(value: object, field: str) -> int | None:
    """A balance limit; `None`, "Infinity" and "-Infinity" mean unlimited.

    The reference's default maximum is +Infinity and its default minimum -Infinity; a limit of the
    wrong infinity (a maximum of "-Infinity") would refuse everything, which nobody means, so it is
    refused as input instead.
    """
    if value is None:
        return None
    unlimited = INFINITY if field == "maximum" else NEG_INFINITY
    if value == unlimited:
        return None
    return parse_signed(value, field)


def format_limit(value: int | None, field: str) -> str:
    """The reference's text for a limit: a decimal, or the matching infinity when unlimited."""
    if value is None:
        return INFINITY if field == "maximum" else NEG_INFINITY
    return str(value)


def parse_timestamp(value: object, field: str = "expiresAt") -> datetime:
    """A UTC datetime from a timezone-aware `datetime` or an ISO 8601 string with a zone.

    A time without a zone is refused, not guessed: JavaScript (the reference) reads
    "2017-01-01T00:00:00" as the local time of whichever host parses it, so the same record
    would name different instants on different machines, and an expiry could move by hours.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidFieldsError(
                f"invalid {field}: expected an ISO 8601 timestamp; got {value!r}"
            ) from None
    else:
        raise InvalidFieldsError(
            f"invalid {field}: expected an ISO 8601 timestamp; got {type(value).__name__}"
        )
    if moment.utcoffset() is None:
        raise InvalidFieldsError(
            f"invalid {field}: the timestamp has no time zone, so its instant depends on the "
            f"host (add Z for UTC or an offset such as +01:00); got {_shown(value)}"
        )
    return moment.astimezone(UTC)


def parse_expiry(value: object) -> datetime | None:
    """The UTC instant of a transfer's `expiresAt` (None when absent); see `parse_timestamp`."""
    if value is None:
        return None
    return parse_timestamp(value, "expiresAt")


def _shown(value: object) -> str:
    return repr(value.isoformat()) if isinstance(value, datetime) else repr(value)


def expiry_sort_key(moment: datetime) -> str:
    """A fixed-width UTC text that sorts like the instant it names (for SQLite's index)."""
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond:06d}Z"
    )


def normalise_transfer(transfer: object) -> tuple[str, dict[str, Any], int]:
    """(id, transfer with its amount as decimal text, amount) for a transfer mapping.

    The stored transfer keeps the caller's fields and key order; only `amount` is rewritten so
    that `5` and `"5"` are the same content (the reference compared with JS `==`).
    """
    if not isinstance(transfer, Mapping):
        raise InvalidFieldsError(f"transfer must be a mapping, got {type(transfer).__name__}")
    transfer_id = transfer.get("id")
    if not isinstance(transfer_id, str) or transfer_id == "":
        raise InvalidFieldsError(f"id must be a non-empty string, got {transfer_id!r}")
    amount = parse_amount(transfer.get("amount"))
    normal = dict(transfer)
    normal["amount"] = str(amount)
    expires = normal.get("expiresAt")
    if isinstance(expires, datetime):
        normal["expiresAt"] = parse_timestamp(expires).isoformat().replace("+00:00", "Z")
    return transfer_id, normal, amount


def to_json(value: Any, field: str) -> str:
    """Compact JSON of a JSON-serialisable value, in the caller's key order."""
    try:
        text = _COMPACT.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise InvalidFieldsError(f"{field} must be JSON-serialisable: {exc}") from None
    if not text.isascii():
        # A lone surrogate (peer JSON may carry one as an escape) has no UTF-8 form, so a store
        # could not write it: keep it as that escape, which reads back as the same string.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def canonical_json(transfer_json: str) -> str:
    """Key-order independent form of a stored transfer, for comparing contents."""
    return json.dumps(json.loads(transfer_json), sort_keys=True, separators=(",", ":"))
