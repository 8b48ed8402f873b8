"""LPI field validation (RFC 4), stricter where the reference was unsafe.

What this module is for: turning the caller's loosely typed LPI records into canonical values
before anything is stored or sent, so that bad input never reaches the ledger or the wire. It
raises only `InvalidFieldsError`, always naming the field. It does no I/O.

Rules:
- ids: UUID strings in the canonical dashed form, any letter case; returned lowercase.
- amounts: `int` or `str` matching `^[0-9]+$`, in `1 .. 2**64 - 1` (the reference accepted `"5.0"`
  and crashed later on `"1.5"`; zero stays refused as the JS peer refuses it).
- conditions and fulfillments: 43 base64url characters that decode to exactly 32 bytes in canonical
  form (unused trailing bits zero), compared as bytes.
- `expiresAt`: a timezone-aware `datetime` or an ISO 8601 string with a zone; kept to milliseconds
  (the wire's precision) and written as `YYYY-MM-DDTHH:MM:SS.mmmZ` like the reference.
- `ilp`: base64url or standard base64, with or without padding; returned as bytes.
- accounts: `to`/`from` prefix rules exactly as the reference's validator (startsWith), including
  its escape for records that carry an `account` field.
- a ledger prefix learnt from the peer: 2 to 1023 printable ASCII characters without spaces,
  ending with "." (the rule the shell applies to configured prefixes, with the length cap of
  RFC 15's ILP addresses), so a peer cannot give us an empty, multi-line or huge prefix.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ilp_paychan.codec.condition import b64url_encode
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger.inputs import parse_timestamp as ledger_timestamp

MAX_UINT64 = 2**64 - 1

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DIGITS = re.compile(r"[0-9]+")
#: 32 bytes as unpadded base64url: 42 free characters, then one whose two low bits are zero.
_B64URL_32 = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
_B64URL_32_LOOSE = re.compile(r"[A-Za-z0-9_-]{43}")
_BASE64_ANY = re.compile(r"[A-Za-z0-9_+/-]*={0,2}")
_PREFIX = re.compile(r"[!-~]{1,1022}\.")


def canonical_id(value: Any, field: str = "id") -> str:
    """The lowercase dashed form of a UUID string."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise InvalidFieldsError(f"invalid {field}: expected a dashed UUID string; got {value!r}")
    return value.lower()


def check_prefix(value: Any, field: str = "prefix") -> str:
    """A ledger prefix: printable ASCII without spaces, ending with ".", at most 1023 long."""
    if not isinstance(value, str) or not _PREFIX.fullmatch(value):
        if isinstance(value, str):
            shown = repr(value) if len(value) <= 80 else f"a string of {len(value)} characters"
        else:
            shown = type(value).__name__
        raise InvalidFieldsError(
            f"invalid {field}: expected an ILP prefix ending with '.' (printable ASCII, no"
            f" spaces, at most 1023 characters); got {shown}"
        )
    return value


def parse_amount(value: Any, field: str = "amount") -> int:
    """A positive integer amount that fits an OER UInt64."""
    if isinstance(value, bool):
        raise InvalidFieldsError(f"invalid {field}: expected a decimal integer; got {value!r}")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        amount = int(value)
    else:
        raise InvalidFieldsError(f"invalid {field}: expected a decimal integer; got {value!r}")
    if not 0 < amount <= MAX_UINT64:
        raise InvalidFieldsError(f"invalid {field}: must be between 1 and 2^64-1; got {value!r}")
    return amount


def parse_hash32(value: Any, field: str) -> bytes:
    """32 bytes from 43 canonical base64url characters (a condition or a fulfillment)."""
    if not isinstance(value, str) or not _B64URL_32.fullmatch(value):
        kind = (
            "non-canonical" if isinstance(value, str) and _B64URL_32_LOOSE.fullmatch(value) else ""
        )
        raise InvalidFieldsError(
            f"invalid {field}: expected 32 bytes as 43 {kind + ' ' if kind else ''}"
            f"base64url characters; got {value!r}"
        )
    return binascii.a2b_base64(value.encode("ascii").translate(_FROM_URL) + b"=")


_FROM_URL = bytes.maketrans(b"-_", b"+/")

#: Unpadded base64url, as the reference exposes conditions, fulfillments and `ilp`.
b64url = b64url_encode


def parse_base64(value: Any, field: str = "ilp") -> bytes:
    """Bytes from base64url or standard base64, padded or not."""
    if (
        not isinstance(value, str)
        or not _BASE64_ANY.fullmatch(value)
        or len(value.rstrip("=")) % 4 == 1
    ):
        raise InvalidFieldsError(f"invalid {field}: expected a base64url string; got {value!r}")
    text = value.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidFieldsError(f"invalid {field}: {error}") from None


def parse_timestamp(value: Any, field: str = "expiresAt") -> datetime:
    """A UTC datetime truncated to milliseconds (the wire's precision); the ledger's rule for
    what a timestamp is (a zone is required)."""
    moment = ledger_timestamp(value, field)
    extra = moment.microsecond % 1000
    return moment.replace(microsecond=moment.microsecond - extra) if extra else moment


def format_timestamp(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ`, the form the reference puts in LPI records."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


@dataclass(frozen=True, slots=True)
class CheckedTransfer:
    """A validated outgoing transfer: the record to store and emit, and its parsed fields."""

    id: str
    amount: int
    condition: bytes
    expires_at: datetime
    ilp: bytes | None
    custom: Any
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CheckedMessage:
    """A validated outgoing message: its `ilp` bytes and `custom` value to send, and the record."""

    ilp: bytes | None
    custom: Any
    record: dict[str, Any]


class Validator:
    """The account and prefix checks, bound to this plugin's own and peer accounts."""

    __slots__ = ("account", "peer_account", "prefix")

    def __init__(self, account: str, peer_account: str, prefix: str) -> None:
        self.account = account
        self.peer_account = peer_account
        self.prefix = prefix

    def outgoing_transfer(self, transfer: Any) -> CheckedTransfer:
        """Check a transfer given to `send_transfer`; the record is the caller's + `ledger`."""
        if type(transfer) is not dict and not isinstance(transfer, Mapping):
            raise InvalidFieldsError(
                f"invalid transfer: expected a mapping; got {type(transfer).__name__}"
            )
        for name in ("id", "amount", "executionCondition", "expiresAt"):
            if transfer.get(name) in (None, ""):
                raise InvalidFieldsError(f"invalid {name}: the transfer must have one")
        transfer_id = canonical_id(transfer["id"])
        amount = parse_amount(transfer["amount"])
        condition = parse_hash32(transfer["executionCondition"], "executionCondition")
        expires_at = parse_timestamp(transfer["expiresAt"])
        for name in ("data", "noteToSelf", "custom"):
            value = transfer.get(name)
            if value and not isinstance(value, dict | list) and not isinstance(value, Mapping):
                raise InvalidFieldsError(f"invalid {name}: expected an object; got {value!r}")
        self._check_ledger(transfer)
        self._check_accounts(transfer, outgoing=True, escape=True)
        ilp = transfer.get("ilp")
        ilp_bytes = parse_base64(ilp) if ilp not in (None, "") else None
        record = dict(transfer)
        record["id"] = transfer_id
        record["amount"] = str(amount)
        record["executionCondition"] = transfer["executionCondition"]  # canonical: checked above
        record["expiresAt"] = format_timestamp(expires_at)
        record["ledger"] = self.prefix
        if ilp_bytes is not None:
            record["ilp"] = b64url(ilp_bytes)
        return CheckedTransfer(
            transfer_id, amount, condition, expires_at, ilp_bytes, transfer.get("custom"), record
        )

    def outgoing_message(self, message: Any) -> CheckedMessage:
        """Check a message given to `send_request` or returned by the request handler."""
        if not isinstance(message, Mapping):
            raise InvalidFieldsError(
                f"invalid message: expected a mapping; got {type(message).__name__}"
            )
        self._check_ledger(message)
        self._check_accounts(message, outgoing=True, escape=False)
        ilp = message.get("ilp")
        ilp_bytes = parse_base64(ilp) if ilp not in (None, "") else None
        custom = message.get("custom")
        if custom is not None and not isinstance(custom, Mapping | list | str | int | float | bool):
            raise InvalidFieldsError(
                f"invalid custom: expected JSON data; got {type(custom).__name__}"
            )
        return CheckedMessage(ilp_bytes, custom, dict(message))

    def _check_ledger(self, record: Mapping[str, Any]) -> None:
        ledger = record.get("ledger")
        if ledger is not None and ledger != self.prefix:
            raise InvalidFieldsError(
                f"invalid ledger: {ledger!r} must match ILP prefix {self.prefix!r}"
            )

    def _check_accounts(self, record: Mapping[str, Any], *, outgoing: bool, escape: bool) -> None:
        to = record.get("to")
        if not to:
            raise InvalidFieldsError("invalid to: must have a destination (.to)")
        if not isinstance(to, str):
            raise InvalidFieldsError(f"invalid to: expected a string; got {to!r}")
        sender = record.get("from")
        if sender is not None and not isinstance(sender, str):
            raise InvalidFieldsError(f"invalid from: expected a string; got {sender!r}")
        if escape and record.get("account"):
            return
        own, peer = (
            (self.account, self.peer_account) if outgoing else (self.peer_account, self.account)
        )
        if sender and not sender.startswith(own):
            raise InvalidFieldsError(f"invalid from: {sender!r} does not start with {own!r}")
        if not to.startswith(peer):
            raise InvalidFieldsError(f"invalid to: {to!r} does not start with {peer!r}")

    def check_incoming(self, record: Mapping[str, Any]) -> None:
        """The reference's incoming account rule (`from` = peer, `to` = own)."""
        self._check_ledger(record)
        self._check_accounts(record, outgoing=False, escape=True)
