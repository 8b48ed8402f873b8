"""ILPv4 packets <-> LPI v1 transfers, fulfilments and rejection reasons, as ilp-compat-plugin
2.0.3 converts them (the layer ilp-connector 23 puts around an LPI v1 plugin).

Why a module of its own: `V1Adapter` must put on an LPI v1 link exactly what the connector's
side expects and read back exactly what it sends, and these conversions are the whole of that
agreement. Pure functions (no I/O, no clock unless given), so they are tested on their own.

The conversions:

- Prepare -> transfer: ``amount`` (decimal str), ``executionCondition`` (base64url),
  ``expiresAt`` (ISO 8601, milliseconds, ``Z``), ``ilp`` = base64url of a type 10 forwarded
  payment (``account`` = the destination, ``data``), ``custom`` = ``{}``.
- transfer -> Prepare: the reverse; the transfer's ``ilp`` may also be an ILP v1 payment (type
  1), whose own amount is ignored: the transfer's amount counts.
- Fulfill -> fulfilment: the fulfillment (base64url) and ``ilp`` = a type 9 fulfillment packet
  holding the Fulfill's data. Back: no ``ilp`` means empty data.
- Reject -> rejection reason: ``code``, ``name`` (ilp-compat-plugin's table, which has the older
  names for T01/T02), ``message``, ``triggered_by``, ``triggered_at``, ``forwarded_by`` ``""``,
  ``additional_info`` = ``{"data": base64url, "message": ...}``. An LPI v1 plugin puts this on
  the wire as an ILP v1 error (type 8) whose data is that ``additional_info`` as JSON.
- rejection reason -> Reject: ``code``, ``triggered_by``, the reason's ``message`` or else
  ``additional_info.message``, and ``additional_info.data``; ``additional_info`` may be an object
  or its JSON text.

Where ilp-compat-plugin would throw or write garbage, these functions decide instead (each
noted where it happens): a code missing from its table gets RFC 27's name, or "Application
Error"; a received reason that cannot become a valid ILPv4 Reject is repaired (an invalid
``triggered_by`` becomes empty, an over-long message is cut, over-long data dropped) rather
than failing the caller who is waiting for it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from ilp_paychan.codec import ilp4
from ilp_paychan.codec.address import is_valid_address
from ilp_paychan.codec.errors import CodecError
from ilp_paychan.codec.ildcp import IldcpResponse, encode_response
from ilp_paychan.codec.ilp import IlpPayment, decode_ilp
from ilp_paychan.codec.ilp_compat import (
    TYPE_ILP_FORWARDED_PAYMENT,
    IlpForwardedPayment,
    IlpFulfillment,
    decode_compat,
    encode_compat,
)
from ilp_paychan.errors import (
    NotAcceptedError,
    NotConnectedError,
    PeerError,
    UnreachableError,
)

__all__ = [
    "COMPAT_ERROR_NAMES",
    "DEFAULT_ASSET_SCALE",
    "b64_lenient",
    "b64url",
    "error_name",
    "fulfill_to_fulfillment",
    "fulfillment_to_fulfill",
    "handler_failure_reason",
    "ildcp_answer",
    "iso_time",
    "no_handler_reason",
    "prepare_to_transfer",
    "reason_to_reject",
    "refusal_to_reject",
    "reject_to_reason",
    "transfer_to_prepare",
]

#: ilp-compat-plugin 2.0.3's code -> name table (older than RFC 27: T01 "Ledger Unreachable",
#: T02 "Ledger Busy"; no F08).
COMPAT_ERROR_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **ilp4.ERROR_NAMES,
        "T01": "Ledger Unreachable",
        "T02": "Ledger Busy",
    }
)
_COMPAT_CODES: Final = frozenset(ilp4.ERROR_NAMES) - {"F08"}

#: The asset scale ilp-compat-plugin answers ILDCP with when the ledger info has none.
DEFAULT_ASSET_SCALE: Final = 9

_B64_JUNK: Final = re.compile(r"[^A-Za-z0-9+/\-_]")
_TO_STANDARD: Final = str.maketrans("-_", "+/")


def b64url(raw: bytes) -> str:
    """Unpadded base64url: how LPI v1 records carry conditions, fulfillments and ``ilp``.

    (ilp-compat-plugin strips only one trailing ``=``; every reader of these strings, ours and
    the JavaScript ones, accepts either form.)
    """
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64_lenient(text: str) -> bytes:
    """Bytes of base64 or base64url text, read the way Node's ``Buffer.from(s, 'base64')`` reads
    it: padding optional, reading stops at the first ``=``, other characters are skipped."""
    cleaned = _B64_JUNK.sub("", text.split("=", 1)[0]).translate(_TO_STANDARD)
    if len(cleaned) % 4 == 1:
        cleaned = cleaned[:-1]
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - cleaned text is always valid
        return b""


def iso_time(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``, what JavaScript's ``toISOString`` writes."""
    if moment.tzinfo is None:
        raise CodecError("a time without a zone", field="expiresAt")
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text[:-6] + "Z"


def _parse_time(value: Any, field: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise CodecError(f"{value!r} is not an ISO 8601 time", field=field) from None
    else:
        raise CodecError(f"expected an ISO 8601 string, got {type(value).__name__}", field=field)
    if moment.tzinfo is None:
        raise CodecError(f"{value!r} has no time zone", field=field)
    return moment.astimezone(UTC)


def error_name(code: str) -> str:
    """The name ilp-compat-plugin gives a code; for codes its table lacks (F08, or any other
    three characters) RFC 27's name, else "Application Error" (ilp-compat-plugin leaves it
    undefined, which the LPI v1 plugin then cannot encode)."""
    if code in _COMPAT_CODES:
        return COMPAT_ERROR_NAMES[code]
    return ilp4.ERROR_NAMES.get(code, "Application Error")


# ---------------------------------------------------------------------- Prepare <-> transfer


def prepare_to_transfer(
    prepare: ilp4.IlpPrepare, transfer_id: str, *, to: str, from_: str, ledger: str
) -> dict[str, Any]:
    """The LPI v1 transfer that carries `prepare` (``id`` is the caller's, a fresh UUID).

    Raises:
        CodecError: the destination or data cannot be put in a type 10 packet.
    """
    forwarded = encode_compat(IlpForwardedPayment(prepare.destination, prepare.data))
    return {
        "id": transfer_id,
        "amount": str(prepare.amount),
        "ilp": b64url(forwarded),
        "executionCondition": b64url(prepare.execution_condition),
        "expiresAt": iso_time(prepare.expires_at),
        "custom": {},
        "to": to,
        "from": from_,
        "ledger": ledger,
    }


def transfer_to_prepare(transfer: Mapping[str, Any]) -> ilp4.IlpPrepare:
    """The ILPv4 Prepare an incoming LPI v1 transfer stands for.

    Raises:
        CodecError: no ``ilp``, an ``ilp`` that is neither a type 10 forwarded payment nor an
            ILP v1 payment, or a field the Prepare cannot hold (``field`` names it; the
            destination is checked against RFC 15 here, so the handler never sees one an
            ILPv4 peer would refuse).
    """
    text = transfer.get("ilp")
    if not isinstance(text, str) or not text:
        raise CodecError("no ILP packet attached to the transfer", field="ilp")
    raw = b64_lenient(text)
    if raw[:1] == bytes((TYPE_ILP_FORWARDED_PAYMENT,)):
        forwarded = decode_compat(raw)
        assert isinstance(forwarded, IlpForwardedPayment)
        account, data = forwarded.account, forwarded.data
    else:
        try:
            payment = decode_ilp(raw)
        except CodecError as error:
            raise CodecError(f"not an ILP payment packet: {error}", field="ilp") from None
        if not isinstance(payment, IlpPayment):
            raise CodecError(
                f"invalid type of ILP packet: {raw[0]} (expected 10 or 1)", field="ilp"
            )
        account, data = payment.account, payment.data
    if not is_valid_address(account):
        raise CodecError(f"{account!r} is not an ILP address", field="destination")
    try:
        amount = int(str(transfer.get("amount")))
    except ValueError:
        raise CodecError(f"{transfer.get('amount')!r} is not an integer", field="amount") from None
    if not 0 <= amount <= 2**64 - 1:
        raise CodecError(f"{amount} is outside 0..2^64-1", field="amount")
    condition_text = transfer.get("executionCondition")
    if not isinstance(condition_text, str):
        raise CodecError("missing", field="executionCondition")
    condition = b64_lenient(condition_text)
    if len(condition) != 32:
        raise CodecError(f"{len(condition)} bytes; expected 32", field="executionCondition")
    if len(data) > ilp4.MAX_DATA_LENGTH:
        raise CodecError(f"{len(data)} bytes; at most {ilp4.MAX_DATA_LENGTH}", field="data")
    expires_at = _parse_time(transfer.get("expiresAt"), "expiresAt")
    return ilp4.IlpPrepare(amount, expires_at, condition, account, data)


# ---------------------------------------------------------------------- Fulfill <-> fulfilment


def fulfill_to_fulfillment(fulfill: ilp4.IlpFulfill) -> tuple[str, str]:
    """(fulfillment, ilp) for ``fulfill_condition``: base64url of the preimage and of a type 9
    packet holding the Fulfill's data (sent even when the data is empty, as ilp-compat-plugin)."""
    return b64url(fulfill.fulfillment), b64url(encode_compat(IlpFulfillment(fulfill.data)))


def fulfillment_to_fulfill(fulfillment: str, ilp: str | None) -> ilp4.IlpFulfill:
    """The ILPv4 Fulfill of an ``outgoing_fulfill`` event (``ilp`` absent: empty data).

    Raises:
        CodecError: the fulfillment is not 32 bytes, or ``ilp`` is not a type 9 packet (the
            money has moved all the same: callers keep the Fulfill with empty data).
    """
    preimage = b64_lenient(fulfillment)
    if len(preimage) != 32:
        raise CodecError(f"{len(preimage)} bytes; expected 32", field="fulfillment")
    data = b""
    if ilp:
        packet = decode_compat(b64_lenient(ilp))
        if not isinstance(packet, IlpFulfillment):
            raise CodecError("not a type 9 fulfillment packet", field="ilp")
        data = packet.data
    return ilp4.IlpFulfill(preimage, data)


# ---------------------------------------------------------------------- Reject <-> reason


def reject_to_reason(reject: ilp4.IlpReject, now: datetime) -> dict[str, Any]:
    """The rejection reason for ``reject_incoming_transfer`` (``triggered_at`` = `now`)."""
    return {
        "code": reject.code,
        "name": error_name(reject.code),
        "message": reject.message,
        "triggered_by": reject.triggered_by,
        "triggered_at": now,
        "forwarded_by": "",
        "additional_info": {"data": b64url(reject.data), "message": reject.message},
    }


def _info_of(reason: Mapping[str, Any]) -> Mapping[str, Any]:
    info = reason.get("additional_info")
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except (ValueError, RecursionError):
            return {}
    return info if isinstance(info, Mapping) else {}


def reason_to_reject(reason: Mapping[str, Any] | None) -> ilp4.IlpReject:
    """The ILPv4 Reject of an ``outgoing_reject`` or ``outgoing_cancel`` reason.

    Never raises for a reason's content: a code that is not 3 ASCII characters becomes F00, an
    invalid ``triggered_by`` becomes empty, a message over RFC 27's 8191 characters is cut and
    data over 32767 bytes dropped (ilp-compat-plugin would throw, leaving its caller an error
    instead of the peer's answer). No reason at all (an LPI v1 plugin's cancel may carry none)
    reads as F00 with a message saying so.
    """
    if not isinstance(reason, Mapping):
        return ilp4.IlpReject("F00", "", "the transfer was rejected without a reason")
    code = reason.get("code")
    if not isinstance(code, str) or len(code) != 3 or not code.isascii():
        code = "F00"
    triggered_by = reason.get("triggered_by")
    if not isinstance(triggered_by, str) or not is_valid_address(triggered_by):
        triggered_by = ""
    info = _info_of(reason)
    message: Any = reason.get("message") or info.get("message") or ""
    if not isinstance(message, str):
        message = json.dumps(message)
    message = message.encode("utf-8", "replace").decode("utf-8")[: ilp4.MAX_MESSAGE_LENGTH]
    data_text = info.get("data")
    data = b64_lenient(data_text) if isinstance(data_text, str) and data_text else b""
    if len(data) > ilp4.MAX_DATA_LENGTH:
        data = b""
    return ilp4.IlpReject(code, triggered_by, message, data)


def refusal_to_reject(error: BaseException, triggered_by: str) -> ilp4.IlpReject:
    """The Reject `send_data` answers with when its LPI v1 transfer was refused or never sent
    (nothing moved), where ilp-compat-plugin throws: a caller of the v2 interface (a connector,
    a STREAM sender) needs a Reject to go on, as `BtpPlugin` gives one.

    A limit refusal (`NotAcceptedError`: the peer's ``maxBalance`` or our ``minBalance``) is T04
    Insufficient Liquidity; a peer or link that cannot take it now (`UnreachableError`) T01;
    any other refusal of the peer keeps the peer's ILP code; anything else is T00.
    """
    if isinstance(error, NotAcceptedError):
        code = "T04"
    elif isinstance(error, UnreachableError | NotConnectedError):
        code = "T01"
    elif isinstance(error, PeerError) and len(error.code) == 3 and error.code.isascii():
        code = error.code
    else:
        code = "T00"
    if isinstance(error, PeerError):
        text = f"the peer refused the transfer: {error.name}: {error}"
    else:
        text = f"the transfer was not sent: {type(error).__name__}: {error}"
    if not is_valid_address(triggered_by):
        triggered_by = ""
    return ilp4.IlpReject(code, triggered_by, text[: ilp4.MAX_MESSAGE_LENGTH])


def handler_failure_reason(error: BaseException, now: datetime) -> dict[str, Any]:
    """The reason ilp-compat-plugin rejects with when the data handler raises or answers with
    something that is neither a Fulfill nor a Reject: F00 "Bad Request" and the error's text
    (the v1 plugin fills in its own account for the empty ``triggered_by``)."""
    return {
        "code": "F00",
        "name": "Bad Request",
        "message": str(error),
        "triggered_by": "",
        "triggered_at": now,
        "forwarded_by": "",
        "additional_info": {"message": str(error)},
    }


def no_handler_reason(account: str, now: datetime) -> dict[str, Any]:
    """The reason ilp-compat-plugin rejects with when no data handler is registered: T01
    "Ledger Unreachable" (temporary: the sender may try again once a handler is set)."""
    message = "No data handler registered"
    return {
        "code": "T01",
        "name": "Ledger Unreachable",
        "message": message,
        "triggered_by": account,
        "triggered_at": now,
        "forwarded_by": "",
        "additional_info": {"message": message},
    }


# ---------------------------------------------------------------------- ILDCP


def ildcp_answer(account: str, info: Mapping[str, Any] | None) -> bytes:
    """The Fulfill a v1 link answers ``peer.config`` with, itself, from its own ledger info (the
    peer is an LPI v1 plugin and does not speak ILDCP).

    The address is the plugin's account, the asset code ``info.currencyCode``, the scale
    ``info.currencyScale``, or `DEFAULT_ASSET_SCALE` when the info has none. ilp-compat-plugin
    reads ``info.currency`` (which LPI v1 info does not have, so its code is always empty) and
    ``currencyScale || 9`` (so a scale of 0 reads as 9); both are read correctly here.

    Raises:
        CodecError: the account is not an ILP address, or the scale is outside 0..255.
    """
    info = info or {}
    code = info.get("currencyCode", info.get("currency", ""))
    scale = info.get("currencyScale")
    if not isinstance(scale, int) or isinstance(scale, bool):
        scale = DEFAULT_ASSET_SCALE
    return encode_response(IldcpResponse(account, scale, code if isinstance(code, str) else ""))
