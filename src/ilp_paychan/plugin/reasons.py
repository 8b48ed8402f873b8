"""Rejection reasons (LPI) ↔ ILP error packets (RFC 3, "ILP Error Format").

What this module is for: building the ILP error a Reject carries from a caller's reason — fully
validated and encoded before the plugin changes any state (a reason that cannot be sent must
not leave the transfer cancelled here and prepared at the peer) — and reading a received
one back into the reason the `outgoing_reject` event reports. Pure functions, no I/O.

Reason rules: `code`/`name` default to F00 "Bad Request"; `triggered_by` to the own
account; `forwarded_by` may be a string or a list and defaults to `[own account]` (as the
reference); `triggered_at` may be a datetime or an ISO 8601 string and defaults to now; a missing
`additional_info` is empty data, anything else travels as its JSON (bytes as they are).

Received reasons: `forwarded_by` is the whole list (the reference reported only its
last element), `additional_info` is the parsed JSON of the data, else its UTF-8 text (the reference
said 'not JSON'), else the raw bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ilp_paychan.codec.errors import CodecError
from ilp_paychan.codec.ilp import IlpError, encode_ilp
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.plugin.protocol_data import dump_json
from ilp_paychan.plugin.validate import parse_timestamp


def expiry_error(account: str, now: datetime | None = None) -> IlpError:
    """The R00 error of an expiry Reject, exactly as the reference sends it."""
    return IlpError("R00", "Transfer Timed Out", account, (), now or datetime.now(UTC), b"expired")


def reverted_reason(
    peer_account: str, code: str, name: str, message: str, triggered_at: datetime | None
) -> dict[str, Any]:
    """The reason `incoming_fulfill_reverted` reports: the sender had cancelled the transfer.

    It reads as the expiry it almost always is (R00, triggered by the sender), with the sender's
    BTP answer in `additional_info`.
    """
    return {
        "code": "R00",
        "name": "Transfer Timed Out",
        "triggered_by": peer_account,
        "forwarded_by": [],
        "triggered_at": triggered_at or datetime.now(UTC),
        "additional_info": {
            "message": f"the sender refused the fulfillment: {code} {name}: {message}",
            "code": code,
            "name": name,
        },
    }


def _ascii(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.isascii():
        raise InvalidFieldsError(f"invalid reason.{field}: expected an ASCII string; got {value!r}")
    return value


def rejection_error(
    reason: Mapping[str, Any] | None, account: str
) -> tuple[IlpError, dict[str, Any]]:
    """(the ILP error to send, the reason `incoming_reject` reports); InvalidFieldsError."""
    if reason is None:
        reason = {}
    if not isinstance(reason, Mapping):
        raise InvalidFieldsError(f"invalid reason: expected a mapping; got {type(reason).__name__}")
    code = _ascii(reason.get("code") or "F00", "code")
    if len(code) != 3:
        raise InvalidFieldsError(f"invalid reason.code: expected 3 characters; got {code!r}")
    name = _ascii(reason.get("name") or "Bad Request", "name")
    triggered_by = _ascii(reason.get("triggered_by") or account, "triggered_by")
    forwarded = reason.get("forwarded_by")
    if forwarded is None:
        forwarded_by: tuple[str, ...] = (account,)
    elif isinstance(forwarded, str):
        forwarded_by = (_ascii(forwarded, "forwarded_by"),)
    elif isinstance(forwarded, list | tuple):
        forwarded_by = tuple(_ascii(item, "forwarded_by") for item in forwarded)
    else:
        raise InvalidFieldsError(
            f"invalid reason.forwarded_by: expected a string or a list; got {forwarded!r}"
        )
    raw_time = reason.get("triggered_at")
    triggered_at = (
        datetime.now(UTC) if raw_time is None else parse_timestamp(raw_time, "reason.triggered_at")
    )
    info = reason.get("additional_info")
    if info is None:
        data = b""
    elif isinstance(info, bytes | bytearray):
        data = bytes(info)
    else:
        try:
            data = dump_json(info)
        except InvalidFieldsError:
            raise InvalidFieldsError(
                "invalid reason.additional_info: not JSON-serialisable"
            ) from None
    error = IlpError(code, name, triggered_by, forwarded_by, triggered_at, data)
    try:
        encode_ilp(error)
    except CodecError as exc:
        raise InvalidFieldsError(f"invalid reason.{exc.field}: {exc}") from None
    normal = {
        "code": code,
        "name": name,
        "triggered_by": triggered_by,
        "forwarded_by": list(forwarded_by),
        "triggered_at": triggered_at,
        "additional_info": info,
    }
    return error, normal


def outgoing_reason(error: IlpError) -> dict[str, Any]:
    """The reason of a received ILP error, as `outgoing_reject` / `*_cancel` report it."""
    info: Any
    try:
        text = error.data.decode("utf-8")
    except UnicodeDecodeError:
        info = error.data
    else:
        try:
            info = json.loads(text)
        except (ValueError, RecursionError):  # too deeply nested to parse: keep the text
            info = text
    return {
        "code": error.code,
        "name": error.name,
        "triggered_by": error.triggered_by,
        "forwarded_by": list(error.forwarded_by),
        "triggered_at": error.triggered_at,
        "additional_info": info,
    }
