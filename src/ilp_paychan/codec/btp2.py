"""BTP 2.0 packets (RFC 23) as btp-packet 2.2.1 writes and reads them.

BTP 2.0 keeps BTP 1.0's envelope, protocol data, Response (1), Error (2) and Message (6) byte for
byte, drops Prepare, Fulfill and Reject (3-5: ILPv4 packets travel inside a Message's ``ilp``
entry instead) and adds Transfer (7): a UInt64 amount of settlement plus protocol data. So the
Response, Error, Message and ProtocolData classes are `codec.btp`'s own; only `Transfer` is new.

One reading rule differs from BTP 1.0: btp-packet 2.2.1 reads the protocol-data count with
oer-utils 5, which refuses a count whose length-of-length byte is 0 (oer-utils 1.3.3 read it as an
empty list), so that frame raises `CodecError` here. Everything else (bytes after the envelope or
the last entry ignored, a count written with more bytes than needed, at most 256 entries, an
*Invalid Date* ``triggeredAt`` decoding to None) is as in `codec.btp`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from . import btp
from .btp import (
    TYPE_ERROR,
    TYPE_MESSAGE,
    TYPE_RESPONSE,
    ContentType,
    Error,
    Message,
    ProtocolData,
    Response,
    protocol_data_map,
)
from .errors import CodecError
from .oer import UINT64_MAX, underflow

__all__ = [
    "TYPE_ERROR",
    "TYPE_MESSAGE",
    "TYPE_RESPONSE",
    "TYPE_TRANSFER",
    "ContentType",
    "Error",
    "Message",
    "Packet",
    "ProtocolData",
    "Response",
    "Transfer",
    "decode",
    "encode",
    "protocol_data_map",
]

TYPE_TRANSFER: Final = 7


@dataclass(frozen=True, slots=True)
class Transfer:
    """Settlement sent to the peer: ``amount`` more than before, proof in the protocol data."""

    request_id: int
    amount: int
    protocol_data: tuple[ProtocolData, ...] = ()


Packet = Response | Error | Message | Transfer


# --- encoding --------------------------------------------------------------------------------

_U64: Final = struct.Struct(">Q")


def _encode_transfer(p: Transfer) -> bytes:
    header = btp._header(TYPE_TRANSFER, p.request_id)
    amount = p.amount
    if type(amount) is not int:
        raise CodecError(f"expected int, got {type(amount).__name__}", field="amount")
    try:
        amount_bytes = _U64.pack(amount)
    except struct.error:
        raise CodecError(f"{amount} is outside 0..{UINT64_MAX}", field="amount") from None
    return btp._frame(header, amount_bytes + btp._encode_pd(p.protocol_data))


# Response, Error and Message are written exactly as in BTP 1.0.
_ENCODERS: Final[dict[type, Callable[[Any], bytes]]] = {
    Response: btp._encode_response,
    Message: btp._encode_message,
    Error: btp._encode_error,
    Transfer: _encode_transfer,
}


def encode(packet: Packet) -> bytes:
    """The bytes of one WebSocket binary message carrying ``packet``.

    Raises:
        CodecError: a BTP 1.0-only packet (``type``) or a field that cannot be put on the wire.
    """
    return btp.encode_with(_ENCODERS, packet, " in BTP 2.0")


# --- decoding --------------------------------------------------------------------------------

_new = object.__new__
_TRANSFER_SET: Final = tuple(
    Transfer.__dict__[name].__set__ for name in ("request_id", "amount", "protocol_data")
)


def _make_transfer(request_id: int, amount: int, pd: tuple[ProtocolData, ...]) -> Transfer:
    obj: Transfer = _new(Transfer)
    set_rid, set_amount, set_pd = _TRANSFER_SET
    set_rid(obj, request_id)
    set_amount(obj, amount)
    set_pd(obj, pd)
    return obj


def _decode_pd(buf: bytes, pos: int, end: int) -> tuple[ProtocolData, ...]:
    if pos < end and buf[pos] == 0:
        raise CodecError("count with a length of 0 bytes", field="protocolData")
    return btp._decode_pd(buf, pos, end)


def decode(frame: bytes | bytearray | memoryview) -> Packet:
    """Parse one BTP 2.0 frame.

    Raises:
        CodecError: underflow, a non-canonical length, a count of length 0, or a type other than
            1, 2, 6 and 7.
    """
    buf = frame if type(frame) is bytes else bytes(frame)
    packet_type, request_id, pos, end = btp._read_envelope(buf)

    if packet_type == TYPE_MESSAGE:
        return btp._make_message(request_id, _decode_pd(buf, pos, end))
    if packet_type == TYPE_RESPONSE:
        return btp._make_response(
            request_id,
            ()
            if end - pos >= 2 and buf[pos] == 1 and buf[pos + 1] == 0
            else _decode_pd(buf, pos, end),
        )
    if packet_type == TYPE_TRANSFER:
        if end - pos < 8:
            raise underflow("amount", 8, end - pos)
        amount: int = _U64.unpack_from(buf, pos)[0]
        return _make_transfer(request_id, amount, _decode_pd(buf, pos + 8, end))
    if packet_type == TYPE_ERROR:
        return btp._decode_error(buf, pos, end, request_id, _decode_pd)
    raise CodecError(f"{packet_type} is not a BTP 2.0 packet type", field="type")
