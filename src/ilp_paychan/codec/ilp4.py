"""ILPv4 packets (RFC 27 "Packet Format") as ilp-packet 3.1.3 writes and reads them.

Envelope: a type byte and the contents as a var octet string. Types: 12 Prepare, 13 Fulfill,
14 Reject. Like ilp-packet, the decoders ignore bytes after the last field and after the envelope
(RFC 30 "Extensibility"), check the Prepare ``destination`` and the Reject ``triggeredBy`` (empty
allowed) against RFC 15, and read the Reject ``message`` as UTF-8 with bad sequences replaced.

Where the RFCs say an input MUST be refused and ilp-packet reads it anyway, we refuse it: an
``expiresAt`` that is not 17 digits of a real UTC time (ilp-packet feeds the digits to
JavaScript's ``Date.UTC``, which rolls a month 13 or a 24:00 into the next year or day), and an
address byte with the high bit set (Node clears the bit and reads another character). ilp-packet
refuses ``19700101000000000`` (its validity test is ``!date.valueOf()``); we read it. On writing,
the same address checks apply, ``data`` is at most 32767 bytes and ``message`` at most 8191
characters (the sizes of RFC 27's ASN.1), and an amount outside UInt64 is refused (ilp-packet
wraps it silently).

This is on every packet's path, so both directions work on one ``bytes`` object with integer
offsets and precompiled structs, and decoded packets are built through their slots.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from .address import address_bytes, address_text
from .errors import CodecError
from .oer import (
    SHORT_LENGTHS,
    UINT64_MAX,
    ascii_text,
    decode_interledger_time,
    encode_interledger_time,
    encode_length,
    fixed32,
    read_length,
    underflow,
)

__all__ = [
    "ERROR_CLASS_NAMES",
    "ERROR_NAMES",
    "MAX_DATA_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "TYPE_FULFILL",
    "TYPE_PREPARE",
    "TYPE_REJECT",
    "IlpErrorCode",
    "IlpFulfill",
    "IlpPrepare",
    "IlpReject",
    "IlpReply",
    "IlpV4Packet",
    "decode",
    "decode_amount_too_large_data",
    "decode_fulfill",
    "decode_prepare",
    "decode_reject",
    "decode_reply",
    "encode",
    "encode_amount_too_large_data",
    "encode_fulfill",
    "encode_prepare",
    "encode_reject",
    "is_canonical_code",
]

TYPE_PREPARE: Final = 12
TYPE_FULFILL: Final = 13
TYPE_REJECT: Final = 14

#: RFC 27's ASN.1: ``data OCTET STRING (SIZE (0..32767))`` in all three packets.
MAX_DATA_LENGTH: Final = 32767
#: RFC 27's ASN.1: ``message UTF8String (SIZE (0..8191))``.
MAX_MESSAGE_LENGTH: Final = 8191


class IlpErrorCode(StrEnum):
    """Every error code of RFC 27 "Error Codes", named as ilp-packet's ``IlpError`` enum."""

    F00_BAD_REQUEST = "F00"
    F01_INVALID_PACKET = "F01"
    F02_UNREACHABLE = "F02"
    F03_INVALID_AMOUNT = "F03"
    F04_INSUFFICIENT_DESTINATION_AMOUNT = "F04"
    F05_WRONG_CONDITION = "F05"
    F06_UNEXPECTED_PAYMENT = "F06"
    F07_CANNOT_RECEIVE = "F07"
    F08_AMOUNT_TOO_LARGE = "F08"
    F99_APPLICATION_ERROR = "F99"
    T00_INTERNAL_ERROR = "T00"
    T01_PEER_UNREACHABLE = "T01"
    T02_PEER_BUSY = "T02"
    T03_CONNECTOR_BUSY = "T03"
    T04_INSUFFICIENT_LIQUIDITY = "T04"
    T05_RATE_LIMITED = "T05"
    T99_APPLICATION_ERROR = "T99"
    R00_TRANSFER_TIMED_OUT = "R00"
    R01_INSUFFICIENT_SOURCE_AMOUNT = "R01"
    R02_INSUFFICIENT_TIMEOUT = "R02"
    R99_APPLICATION_ERROR = "R99"


#: Code -> name as RFC 27 lists it (F = final, T = temporary, R = relative).
ERROR_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "F00": "Bad Request",
        "F01": "Invalid Packet",
        "F02": "Unreachable",
        "F03": "Invalid Amount",
        "F04": "Insufficient Destination Amount",
        "F05": "Wrong Condition",
        "F06": "Unexpected Payment",
        "F07": "Cannot Receive",
        "F08": "Amount Too Large",
        "F99": "Application Error",
        "T00": "Internal Error",
        "T01": "Peer Unreachable",
        "T02": "Peer Busy",
        "T03": "Connector Busy",
        "T04": "Insufficient Liquidity",
        "T05": "Rate Limited",
        "T99": "Application Error",
        "R00": "Transfer Timed Out",
        "R01": "Insufficient Source Amount",
        "R02": "Insufficient Timeout",
        "R99": "Application Error",
    }
)

#: Code -> the class of ilp-packet's ``Errors`` that carries it (what JavaScript code throws).
ERROR_CLASS_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "F00": "BadRequestError",
        "F01": "InvalidPacketError",
        "F02": "UnreachableError",
        "F03": "InvalidAmountError",
        "F04": "InsufficientDestinationAmountError",
        "F05": "WrongConditionError",
        "F06": "UnexpectedPaymentError",
        "F07": "CannotReceiveError",
        "F08": "AmountTooLargeError",
        "F99": "FinalApplicationError",
        "T00": "InternalError",
        "T01": "PeerUnreachableError",
        "T02": "PeerBusyError",
        "T03": "ConnectorBusyError",
        "T04": "InsufficientLiquidityError",
        "T05": "RateLimitedError",
        "T99": "TemporaryApplicationError",
        "R00": "TransferTimedOutError",
        "R01": "InsufficientSourceAmountError",
        "R02": "InsufficientTimeoutError",
        "R99": "RelativeApplicationError",
    }
)


def is_canonical_code(code: object) -> bool:
    """True for the 21 codes RFC 27 defines (a Reject may carry any other 3 characters)."""
    return type(code) is str and code in ERROR_NAMES


@dataclass(frozen=True, slots=True)
class IlpPrepare:
    """A conditional payment: ``amount`` to ``destination`` unless it expires first."""

    amount: int
    expires_at: datetime
    execution_condition: bytes
    destination: str
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class IlpFulfill:
    """The receiver's yes: the 32-byte preimage of the Prepare's condition."""

    fulfillment: bytes
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class IlpReject:
    """A no: an error ``code`` (see `IlpErrorCode`), who said it, and why."""

    code: str
    triggered_by: str
    message: str = ""
    data: bytes = b""


IlpV4Packet = IlpPrepare | IlpFulfill | IlpReject
IlpReply = IlpFulfill | IlpReject


# Decoding builds instances through the slot descriptors instead of the frozen-dataclass __init__
# (one object.__setattr__ lookup per field): about twice as fast, identical objects.
_new = object.__new__


def _setters(cls: type, *names: str) -> tuple[Callable[[object, object], None], ...]:
    return tuple(cls.__dict__[name].__set__ for name in names)


_PREPARE_SET: Final = _setters(
    IlpPrepare, "amount", "expires_at", "execution_condition", "destination", "data"
)
_FULFILL_SET: Final = _setters(IlpFulfill, "fulfillment", "data")
_REJECT_SET: Final = _setters(IlpReject, "code", "triggered_by", "message", "data")


def _make_prepare(
    amount: int, expires_at: datetime, condition: bytes, destination: str, data: bytes
) -> IlpPrepare:
    obj: IlpPrepare = _new(IlpPrepare)
    set_amount, set_expires, set_condition, set_destination, set_data = _PREPARE_SET
    set_amount(obj, amount)
    set_expires(obj, expires_at)
    set_condition(obj, condition)
    set_destination(obj, destination)
    set_data(obj, data)
    return obj


def _make_fulfill(fulfillment: bytes, data: bytes) -> IlpFulfill:
    obj: IlpFulfill = _new(IlpFulfill)
    set_fulfillment, set_data = _FULFILL_SET
    set_fulfillment(obj, fulfillment)
    set_data(obj, data)
    return obj


def _make_reject(code: str, triggered_by: str, message: str, data: bytes) -> IlpReject:
    obj: IlpReject = _new(IlpReject)
    set_code, set_triggered_by, set_message, set_data = _REJECT_SET
    set_code(obj, code)
    set_triggered_by(obj, triggered_by)
    set_message(obj, message)
    set_data(obj, data)
    return obj


# --- encoding --------------------------------------------------------------------------------

_U64: Final = struct.Struct(">Q")
_PREPARE_TYPE: Final = bytes((TYPE_PREPARE,))
_FULFILL_TYPE: Final = bytes((TYPE_FULFILL,))
_REJECT_TYPE: Final = bytes((TYPE_REJECT,))


def _prefix(size: int) -> bytes:
    return SHORT_LENGTHS[size] if size < 128 else encode_length(size)


def _data(value: bytes, field: str = "data") -> bytes:
    if type(value) is not bytes:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise CodecError(f"expected bytes, got {type(value).__name__}", field=field)
        value = bytes(value)
    if len(value) > MAX_DATA_LENGTH:
        raise CodecError(f"{len(value)} bytes; at most {MAX_DATA_LENGTH}", field=field)
    return value


def _amount(value: int, field: str = "amount") -> bytes:
    if type(value) is not int:
        raise CodecError(f"expected int, got {type(value).__name__}", field=field)
    try:
        return _U64.pack(value)
    except struct.error:
        raise CodecError(f"{value} is outside 0..{UINT64_MAX}", field=field) from None


def encode_prepare(packet: IlpPrepare) -> bytes:
    """The bytes of an ILP Prepare (type 12).

    Raises:
        CodecError: a field that cannot be written (``field`` names it).
    """
    if not isinstance(packet, IlpPrepare):
        raise CodecError(f"expected IlpPrepare, got {type(packet).__name__}", field="type")
    amount = _amount(packet.amount)
    expires_at = encode_interledger_time(packet.expires_at, "expiresAt")
    condition = fixed32(packet.execution_condition, "executionCondition")
    destination = address_bytes(packet.destination, "destination")
    data = _data(packet.data)
    n_dest = len(destination)
    n_data = len(data)
    dest_prefix = _prefix(n_dest)
    data_prefix = _prefix(n_data)
    size = 57 + len(dest_prefix) + n_dest + len(data_prefix) + n_data
    return b"".join(
        (
            _PREPARE_TYPE,
            _prefix(size),
            amount,
            expires_at,
            condition,
            dest_prefix,
            destination,
            data_prefix,
            data,
        )
    )


def encode_fulfill(packet: IlpFulfill) -> bytes:
    """The bytes of an ILP Fulfill (type 13).

    Raises:
        CodecError: a fulfillment that is not 32 bytes, or data that is too long.
    """
    if not isinstance(packet, IlpFulfill):
        raise CodecError(f"expected IlpFulfill, got {type(packet).__name__}", field="type")
    fulfillment = fixed32(packet.fulfillment, "fulfillment")
    data = _data(packet.data)
    data_prefix = _prefix(len(data))
    size = 32 + len(data_prefix) + len(data)
    return b"".join((_FULFILL_TYPE, _prefix(size), fulfillment, data_prefix, data))


def encode_reject(packet: IlpReject) -> bytes:
    """The bytes of an ILP Reject (type 14).

    Raises:
        CodecError: a code that is not 3 ASCII characters, a ``triggered_by`` that is neither
            an address nor empty, a message that is not text or too long, data too long.
    """
    if not isinstance(packet, IlpReject):
        raise CodecError(f"expected IlpReject, got {type(packet).__name__}", field="type")
    code = packet.code
    if type(code) is not str or len(code) != 3 or not code.isascii():
        raise CodecError(f"{code!r} is not 3 ASCII characters", field="code")
    triggered_by = address_bytes(packet.triggered_by, "triggeredBy", allow_empty=True)
    message_text = packet.message
    if type(message_text) is not str:
        raise CodecError(f"expected str, got {type(message_text).__name__}", field="message")
    if len(message_text) > MAX_MESSAGE_LENGTH:
        raise CodecError(
            f"{len(message_text)} characters; at most {MAX_MESSAGE_LENGTH}", field="message"
        )
    try:
        message = message_text.encode("utf-8")
    except UnicodeEncodeError:
        raise CodecError("is not encodable as UTF-8", field="message") from None
    data = _data(packet.data)
    parts = (
        _prefix(len(triggered_by)),
        triggered_by,
        _prefix(len(message)),
        message,
        _prefix(len(data)),
        data,
    )
    size = 3 + sum(map(len, parts))
    return b"".join((_REJECT_TYPE, _prefix(size), code.encode("ascii"), *parts))


_ENCODERS: Final[dict[type, Callable[[Any], bytes]]] = {
    IlpPrepare: encode_prepare,
    IlpFulfill: encode_fulfill,
    IlpReject: encode_reject,
}


def encode(packet: IlpV4Packet) -> bytes:
    """The bytes of any ILPv4 packet.

    Raises:
        CodecError: not an ILPv4 packet, or a field that cannot be written.
    """
    encoder = _ENCODERS.get(type(packet))
    if encoder is None:
        raise CodecError(f"cannot encode {type(packet).__name__}", field="type")
    return encoder(packet)


def encode_amount_too_large_data(received_amount: int, maximum_amount: int) -> bytes:
    """The ``data`` of an F08 Reject (RFC 27 InterledgerErrorData): two UInt64 amounts."""
    return _amount(received_amount, "receivedAmount") + _amount(maximum_amount, "maximumAmount")


# --- decoding --------------------------------------------------------------------------------


def _contents(raw: bytes | bytearray | memoryview, expected: int) -> tuple[bytes, int, int]:
    """The packet bytes and the window ``[pos, end)`` of its contents, after the type check."""
    buf = raw if type(raw) is bytes else bytes(raw)
    size = len(buf)
    if size < 2:
        raise underflow("type" if size == 0 else "length", 2, size)
    if buf[0] != expected:
        raise CodecError(f"{buf[0]} is not type {expected}", field="type")
    n = buf[1]
    if n < 0x80:
        pos = 2
    else:
        n, pos = read_length(buf, 1, size, "length")
    end = pos + n
    if end > size:
        raise CodecError(f"contents claim {n} bytes, {size - pos} present", field="length")
    return buf, pos, end


def _var(buf: bytes, pos: int, end: int, field: str) -> tuple[int, int]:
    """The window ``[start, stop)`` of the var octet string at `pos`."""
    if pos >= end:
        raise underflow(field, 1, 0)
    n = buf[pos]
    if n < 0x80:
        pos += 1
    else:
        n, pos = read_length(buf, pos, end, field)
    stop = pos + n
    if stop > end:
        raise underflow(field, n, end - pos)
    return pos, stop


def decode_prepare(raw: bytes | bytearray | memoryview) -> IlpPrepare:
    """Parse an ILP Prepare (type 12).

    Raises:
        CodecError: another type, underflow, a non-canonical length, an invalid time or
            destination.
    """
    buf, pos, end = _contents(raw, TYPE_PREPARE)
    if end - pos < 57:
        left = end - pos
        field = "amount" if left < 8 else "expiresAt" if left < 25 else "executionCondition"
        raise underflow(field, 57, left)
    amount: int = _U64.unpack_from(buf, pos)[0]
    expires_at = decode_interledger_time(buf[pos + 8 : pos + 25], "expiresAt")
    condition = buf[pos + 25 : pos + 57]
    start, stop = _var(buf, pos + 57, end, "destination")
    destination = address_text(buf[start:stop], "destination")
    start, stop = _var(buf, stop, end, "data")
    return _make_prepare(amount, expires_at, condition, destination, buf[start:stop])


def decode_fulfill(raw: bytes | bytearray | memoryview) -> IlpFulfill:
    """Parse an ILP Fulfill (type 13).

    Raises:
        CodecError: another type, underflow or a non-canonical length.
    """
    buf, pos, end = _contents(raw, TYPE_FULFILL)
    if end - pos < 32:
        raise underflow("fulfillment", 32, end - pos)
    start, stop = _var(buf, pos + 32, end, "data")
    return _make_fulfill(buf[pos : pos + 32], buf[start:stop])


def decode_reject(raw: bytes | bytearray | memoryview) -> IlpReject:
    """Parse an ILP Reject (type 14).

    Raises:
        CodecError: another type, underflow, a non-canonical length or an invalid
            ``triggeredBy``.
    """
    buf, pos, end = _contents(raw, TYPE_REJECT)
    if end - pos < 3:
        raise underflow("code", 3, end - pos)
    code = ascii_text(buf[pos : pos + 3])
    start, stop = _var(buf, pos + 3, end, "triggeredBy")
    triggered_by = address_text(buf[start:stop], "triggeredBy", allow_empty=True)
    start, stop = _var(buf, stop, end, "message")
    message = buf[start:stop].decode("utf-8", "replace")
    start, stop = _var(buf, stop, end, "data")
    return _make_reject(code, triggered_by, message, buf[start:stop])


_DECODERS: Final[dict[int, Callable[[bytes], IlpV4Packet]]] = {
    TYPE_PREPARE: decode_prepare,
    TYPE_FULFILL: decode_fulfill,
    TYPE_REJECT: decode_reject,
}


def decode(raw: bytes | bytearray | memoryview) -> IlpV4Packet:
    """Parse any ILPv4 packet.

    Raises:
        CodecError: a type other than 12-14, or a malformed packet.
    """
    buf = raw if type(raw) is bytes else bytes(raw)
    if not buf:
        raise underflow("type", 1, 0)
    decoder = _DECODERS.get(buf[0])
    if decoder is None:
        raise CodecError(f"{buf[0]} is not an ILPv4 packet type", field="type")
    return decoder(buf)


def decode_reply(raw: bytes | bytearray | memoryview) -> IlpReply:
    """Parse the answer to a Prepare: a Fulfill or a Reject.

    Raises:
        CodecError: a Prepare or any other type, or a malformed packet.
    """
    buf = raw if type(raw) is bytes else bytes(raw)
    if buf[:1] == _FULFILL_TYPE:
        return decode_fulfill(buf)
    if buf[:1] == _REJECT_TYPE:
        return decode_reject(buf)
    if not buf:
        raise underflow("type", 1, 0)
    raise CodecError(f"{buf[0]} is neither a Fulfill (13) nor a Reject (14)", field="type")


def decode_amount_too_large_data(data: bytes) -> tuple[int, int]:
    """``(received_amount, maximum_amount)`` from an F08 Reject's data; trailing bytes ignored.

    Raises:
        CodecError: fewer than 16 bytes.
    """
    if len(data) < 16:
        raise underflow("receivedAmount" if len(data) < 8 else "maximumAmount", 16, len(data))
    received: int = _U64.unpack_from(data, 0)[0]
    maximum: int = _U64.unpack_from(data, 8)[0]
    return received, maximum
