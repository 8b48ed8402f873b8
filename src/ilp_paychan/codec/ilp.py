"""ILP v1 packets (RFC 3; quotes: RFC 8) as ilp-packet 1.3.0 writes and reads them.

Envelope: a type byte and the contents as a var octet string. Types: 1 payment, 2–7 ILQP, 8 error.
Like the reference, the decoder ignores the trailing extensions byte and anything after the last
field, clears the high bit of IA5 text, and refuses timestamps it cannot parse.

`IlpError.data` is bytes: the reference writes and reads it with Node's "ascii" encoding, so only
ASCII text survives a JavaScript peer intact. We write the bytes we are given, unchanged; callers
that talk to a JavaScript peer should keep it ASCII (the framework puts JSON there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from .errors import CodecError
from .oer import Reader, Writer, as_bytes, ascii_text, decode_timestamp, encode_var_octets

__all__ = [
    "TYPE_ILP_ERROR",
    "TYPE_ILP_PAYMENT",
    "IlpError",
    "IlpPacket",
    "IlpPayment",
    "IlqpByDestinationRequest",
    "IlqpByDestinationResponse",
    "IlqpBySourceRequest",
    "IlqpBySourceResponse",
    "IlqpLiquidityRequest",
    "IlqpLiquidityResponse",
    "decode_ilp",
    "encode_ilp",
]

TYPE_ILP_PAYMENT: Final = 1
TYPE_ILQP_LIQUIDITY_REQUEST: Final = 2
TYPE_ILQP_LIQUIDITY_RESPONSE: Final = 3
TYPE_ILQP_BY_SOURCE_REQUEST: Final = 4
TYPE_ILQP_BY_SOURCE_RESPONSE: Final = 5
TYPE_ILQP_BY_DESTINATION_REQUEST: Final = 6
TYPE_ILQP_BY_DESTINATION_RESPONSE: Final = 7
TYPE_ILP_ERROR: Final = 8

LIQUIDITY_POINT_SIZE: Final = 16


@dataclass(frozen=True, slots=True)
class IlpPayment:
    """ILP v1 payment: the ``amount`` to deliver to ``account``, with opaque ``data``."""

    amount: int
    account: str
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class IlpError:
    """ILP v1 error: why a payment failed, who triggered it and who forwarded it."""

    code: str
    name: str
    triggered_by: str
    forwarded_by: tuple[str, ...]
    triggered_at: datetime
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class IlqpLiquidityRequest:
    """ILQP: ask for the liquidity curve towards ``destination_account``."""

    destination_account: str
    destination_hold_duration: int


@dataclass(frozen=True, slots=True)
class IlqpLiquidityResponse:
    """``liquidity_curve`` is the raw points: 16 bytes each (UInt64 x, UInt64 y)."""

    liquidity_curve: bytes
    applies_to_prefix: str
    source_hold_duration: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IlqpBySourceRequest:
    """ILQP: how much arrives at ``destination_account`` for ``source_amount``."""

    destination_account: str
    source_amount: int
    destination_hold_duration: int


@dataclass(frozen=True, slots=True)
class IlqpBySourceResponse:
    """ILQP: the answer to a by-source quote request."""

    destination_amount: int
    source_hold_duration: int


@dataclass(frozen=True, slots=True)
class IlqpByDestinationRequest:
    """ILQP: how much must be sent for ``destination_amount`` to arrive."""

    destination_account: str
    destination_amount: int
    destination_hold_duration: int


@dataclass(frozen=True, slots=True)
class IlqpByDestinationResponse:
    """ILQP: the answer to a by-destination quote request."""

    source_amount: int
    source_hold_duration: int


IlpPacket = (
    IlpPayment
    | IlpError
    | IlqpLiquidityRequest
    | IlqpLiquidityResponse
    | IlqpBySourceRequest
    | IlqpBySourceResponse
    | IlqpByDestinationRequest
    | IlqpByDestinationResponse
)

_EXTENSIONS: Final = b"\x00"


def _contents(packet: IlpPacket) -> tuple[int, bytes]:
    w = Writer()
    if isinstance(packet, IlpPayment):
        w.write_uint64(packet.amount, "amount")
        w.write_ia5(packet.account, "account")
        w.write_var_octets(as_bytes(packet.data, "data"))
        kind = TYPE_ILP_PAYMENT
    elif isinstance(packet, IlpError):
        code = packet.code
        if type(code) is not str or len(code) != 3 or not code.isascii():
            raise CodecError(f"{code!r} is not 3 ASCII characters", field="code")
        w.write(code.encode("ascii"))
        w.write_ia5(packet.name, "name")
        w.write_ia5(packet.triggered_by, "triggeredBy")
        if isinstance(packet.forwarded_by, str | bytes):
            raise CodecError("expected a sequence of addresses", field="forwardedBy")
        w.write_var_uint(len(packet.forwarded_by), "forwardedBy")
        for address in packet.forwarded_by:
            w.write_ia5(address, "forwardedBy")
        w.write_timestamp(packet.triggered_at, "triggeredAt")
        w.write_var_octets(as_bytes(packet.data, "data"))
        kind = TYPE_ILP_ERROR
    elif isinstance(packet, IlqpLiquidityRequest):
        w.write_ia5(packet.destination_account, "destinationAccount")
        w.write_uint32(packet.destination_hold_duration, "destinationHoldDuration")
        kind = TYPE_ILQP_LIQUIDITY_REQUEST
    elif isinstance(packet, IlqpLiquidityResponse):
        curve = as_bytes(packet.liquidity_curve, "liquidityCurve")
        if len(curve) % LIQUIDITY_POINT_SIZE:
            raise CodecError(
                f"length {len(curve)} is not a multiple of {LIQUIDITY_POINT_SIZE}",
                field="liquidityCurve",
            )
        w.write_var_uint(len(curve) // LIQUIDITY_POINT_SIZE, "liquidityCurve")
        w.write(curve)
        w.write_ia5(packet.applies_to_prefix, "appliesToPrefix")
        w.write_uint32(packet.source_hold_duration, "sourceHoldDuration")
        w.write_timestamp(packet.expires_at, "expiresAt")
        kind = TYPE_ILQP_LIQUIDITY_RESPONSE
    elif isinstance(packet, IlqpBySourceRequest):
        w.write_ia5(packet.destination_account, "destinationAccount")
        w.write_uint64(packet.source_amount, "sourceAmount")
        w.write_uint32(packet.destination_hold_duration, "destinationHoldDuration")
        kind = TYPE_ILQP_BY_SOURCE_REQUEST
    elif isinstance(packet, IlqpBySourceResponse):
        w.write_uint64(packet.destination_amount, "destinationAmount")
        w.write_uint32(packet.source_hold_duration, "sourceHoldDuration")
        kind = TYPE_ILQP_BY_SOURCE_RESPONSE
    elif isinstance(packet, IlqpByDestinationRequest):
        w.write_ia5(packet.destination_account, "destinationAccount")
        w.write_uint64(packet.destination_amount, "destinationAmount")
        w.write_uint32(packet.destination_hold_duration, "destinationHoldDuration")
        kind = TYPE_ILQP_BY_DESTINATION_REQUEST
    elif isinstance(packet, IlqpByDestinationResponse):
        w.write_uint64(packet.source_amount, "sourceAmount")
        w.write_uint32(packet.source_hold_duration, "sourceHoldDuration")
        kind = TYPE_ILQP_BY_DESTINATION_RESPONSE
    else:
        raise CodecError(f"cannot encode {type(packet).__name__}", field="type")
    w.write(_EXTENSIONS)
    return kind, w.getvalue()


def encode_ilp(packet: IlpPacket) -> bytes:
    """The bytes of one ILP v1 packet (what goes into a BTP ``ilp`` entry).

    Raises:
        CodecError: a field that cannot be encoded (``field`` names it).
    """
    try:
        kind, contents = _contents(packet)
    except CodecError:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise CodecError(str(exc), field="packet") from None
    return bytes((kind,)) + encode_var_octets(contents)


def decode_ilp(raw: bytes | bytearray | memoryview) -> IlpPacket:
    """Parse one ILP v1 packet of type 1–8.

    Raises:
        CodecError: underflow, a non-canonical length, an unknown type or an unparsable time.
    """
    buf = raw if type(raw) is bytes else bytes(raw)
    envelope = Reader(buf)
    kind = envelope.read_uint8("type")
    r = envelope.read_contents()
    if kind == TYPE_ILP_PAYMENT:
        return IlpPayment(r.read_uint64("amount"), r.read_ia5("account"), r.read_var_octets("data"))
    if kind == TYPE_ILP_ERROR:
        code = ascii_text(r.read(3, "code"))
        name = r.read_ia5("name")
        triggered_by = r.read_ia5("triggeredBy")
        count = r.read_var_uint("forwardedBy")
        if count > r.remaining():  # every address takes at least its length byte
            raise CodecError(
                f"{count} addresses cannot fit in {r.remaining()} bytes", field="forwardedBy"
            )
        forwarded_by = tuple(r.read_ia5("forwardedBy") for _ in range(count))
        triggered_at = decode_timestamp(r.read_var_octets("triggeredAt"), "triggeredAt")
        return IlpError(
            code, name, triggered_by, forwarded_by, triggered_at, r.read_var_octets("data")
        )
    if kind == TYPE_ILQP_LIQUIDITY_REQUEST:
        return IlqpLiquidityRequest(
            r.read_ia5("destinationAccount"), r.read_uint32("destinationHoldDuration")
        )
    if kind == TYPE_ILQP_LIQUIDITY_RESPONSE:
        points = r.read_var_uint("liquidityCurve")
        if points > r.remaining() // LIQUIDITY_POINT_SIZE:
            raise CodecError(
                f"{points} points cannot fit in {r.remaining()} bytes", field="liquidityCurve"
            )
        curve = r.read(points * LIQUIDITY_POINT_SIZE, "liquidityCurve")
        prefix = r.read_ia5("appliesToPrefix")
        hold = r.read_uint32("sourceHoldDuration")
        expires_at = decode_timestamp(r.read_var_octets("expiresAt"), "expiresAt")
        return IlqpLiquidityResponse(curve, prefix, hold, expires_at)
    if kind == TYPE_ILQP_BY_SOURCE_REQUEST:
        return IlqpBySourceRequest(
            r.read_ia5("destinationAccount"),
            r.read_uint64("sourceAmount"),
            r.read_uint32("destinationHoldDuration"),
        )
    if kind == TYPE_ILQP_BY_SOURCE_RESPONSE:
        return IlqpBySourceResponse(
            r.read_uint64("destinationAmount"), r.read_uint32("sourceHoldDuration")
        )
    if kind == TYPE_ILQP_BY_DESTINATION_REQUEST:
        return IlqpByDestinationRequest(
            r.read_ia5("destinationAccount"),
            r.read_uint64("destinationAmount"),
            r.read_uint32("destinationHoldDuration"),
        )
    if kind == TYPE_ILQP_BY_DESTINATION_RESPONSE:
        return IlqpByDestinationResponse(
            r.read_uint64("sourceAmount"), r.read_uint32("sourceHoldDuration")
        )
    raise CodecError(f"{kind} is not an ILP v1 packet type", field="type")
