"""The transitional ILP packets of ilp-packet 2.2.0, which ilp-compat-plugin 2.0.3 puts on an
LPI v1 link (ilp-connector 23 wraps a v1 plugin such as ilp-plugin-payment-channel-framework in
it).

They bridge ILPv4 and LPI v1: an outgoing ILPv4 Prepare becomes an LPI v1 transfer (amount,
condition and expiry move into the transfer) whose ``ilp`` carries an `IlpForwardedPayment`
(type 10: destination ``account`` and end-to-end ``data``); an ILPv4 Fulfill's data comes back as
the fulfilment's ``ilp``, an `IlpFulfillment` (type 9). ilp-packet 2.2.0 also defines
`IlpRejection` (type 11: the fields of an ILPv4 Reject), but ilp-compat-plugin 2.0.3 never writes
it: an LPI v1 rejection travels as the framework's ILP v1 error (type 8, `codec.ilp.IlpError`).
A v1 peer may still send an ILP v1 payment (type 1), which ilp-compat-plugin reads like type 10.

Each packet ends with an extensions byte, written 0 and not read; bytes after the last field are
ignored, as ilp-packet 2.2.0 does. No field is checked beyond its encoding (ilp-packet 2.2.0
checks no addresses); check ``account`` with `codec.address` before making it a destination.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .errors import CodecError
from .oer import Reader, Writer, as_bytes, ascii_text, encode_var_octets

__all__ = [
    "TYPE_ILP_FORWARDED_PAYMENT",
    "TYPE_ILP_FULFILLMENT",
    "TYPE_ILP_REJECTION",
    "IlpCompatPacket",
    "IlpForwardedPayment",
    "IlpFulfillment",
    "IlpRejection",
    "decode_compat",
    "encode_compat",
]

TYPE_ILP_FULFILLMENT: Final = 9
TYPE_ILP_FORWARDED_PAYMENT: Final = 10
TYPE_ILP_REJECTION: Final = 11

_EXTENSIONS: Final = b"\x00"


@dataclass(frozen=True, slots=True)
class IlpFulfillment:
    """Type 9: the data an ILPv4 Fulfill returns, riding on an LPI v1 fulfilment."""

    data: bytes = b""


@dataclass(frozen=True, slots=True)
class IlpForwardedPayment:
    """Type 10: where an ILPv4 Prepare goes (``account``) and its data, on an LPI v1 transfer."""

    account: str
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class IlpRejection:
    """Type 11: the fields of an ILPv4 Reject (defined by ilp-packet 2.2.0, unused on the wire)."""

    code: str
    triggered_by: str
    message: str = ""
    data: bytes = b""


IlpCompatPacket = IlpFulfillment | IlpForwardedPayment | IlpRejection


def _utf8(text: str, field: str) -> bytes:
    if type(text) is not str:
        raise CodecError(f"expected str, got {type(text).__name__}", field=field)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise CodecError("is not encodable as UTF-8", field=field) from None


def _contents(packet: IlpCompatPacket) -> tuple[int, bytes]:
    w = Writer()
    if isinstance(packet, IlpForwardedPayment):
        w.write_ia5(packet.account, "account")
        w.write_var_octets(as_bytes(packet.data, "data"))
        kind = TYPE_ILP_FORWARDED_PAYMENT
    elif isinstance(packet, IlpFulfillment):
        w.write_var_octets(as_bytes(packet.data, "data"))
        kind = TYPE_ILP_FULFILLMENT
    elif isinstance(packet, IlpRejection):
        code = packet.code
        if type(code) is not str or len(code) != 3 or not code.isascii():
            raise CodecError(f"{code!r} is not 3 ASCII characters", field="code")
        w.write(code.encode("ascii"))
        w.write_ia5(packet.triggered_by, "triggeredBy")
        w.write_var_octets(_utf8(packet.message, "message"))
        w.write_var_octets(as_bytes(packet.data, "data"))
        kind = TYPE_ILP_REJECTION
    else:
        raise CodecError(f"cannot encode {type(packet).__name__}", field="type")
    w.write(_EXTENSIONS)
    return kind, w.getvalue()


def encode_compat(packet: IlpCompatPacket) -> bytes:
    """The bytes of a type 9, 10 or 11 packet, as ilp-packet 2.2.0 writes them.

    Raises:
        CodecError: a field that cannot be encoded (``field`` names it).
    """
    kind, contents = _contents(packet)
    return bytes((kind,)) + encode_var_octets(contents)


def _fulfillment(r: Reader) -> IlpFulfillment:
    return IlpFulfillment(r.read_var_octets("data"))


def _forwarded_payment(r: Reader) -> IlpForwardedPayment:
    return IlpForwardedPayment(r.read_ia5("account"), r.read_var_octets("data"))


def _rejection(r: Reader) -> IlpRejection:
    code = ascii_text(r.read(3, "code"))
    triggered_by = r.read_ia5("triggeredBy")
    message = r.read_var_octets("message").decode("utf-8", "replace")
    return IlpRejection(code, triggered_by, message, r.read_var_octets("data"))


_DECODERS: Final[dict[int, Callable[[Reader], Any]]] = {
    TYPE_ILP_FULFILLMENT: _fulfillment,
    TYPE_ILP_FORWARDED_PAYMENT: _forwarded_payment,
    TYPE_ILP_REJECTION: _rejection,
}


def decode_compat(raw: bytes | bytearray | memoryview) -> IlpCompatPacket:
    """Parse a type 9, 10 or 11 packet (types 1-8: `codec.ilp`; 12-14: `codec.ilp4`).

    Raises:
        CodecError: another type, underflow or a non-canonical length.
    """
    buf = raw if type(raw) is bytes else bytes(raw)
    envelope = Reader(buf)
    kind = envelope.read_uint8("type")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise CodecError(f"{kind} is not a transitional ILP packet type (9-11)", field="type")
    packet: IlpCompatPacket = decoder(envelope.read_contents())
    return packet
