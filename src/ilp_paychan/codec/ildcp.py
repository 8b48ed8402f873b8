"""ILDCP (RFC 31): a child asks its parent for its ILP address, asset code and asset scale.

The request is an ILP Prepare to ``peer.config`` with the fixed condition (SHA-256 of 32 zero
bytes), amount 0 by default, empty data and an expiry of the sender's choice (ilp-protocol-ildcp
2.2.3 uses 60 seconds). The answer is an ILP Fulfill with 32 zero bytes as fulfillment whose data
holds ``clientAddress`` (var octets, ASCII), ``assetScale`` (UInt8) and ``assetCode`` (var
octets, UTF-8); a parent that cannot answer sends an ILP Reject (ilp-protocol-ildcp: F00 with the
reason as message). Like ilp-protocol-ildcp, the request's amount and data are not checked,
bytes after ``assetCode`` are ignored and ``clientAddress`` must be an RFC 15 address.

Pure functions: the current time is an argument where the expiry matters.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from .address import address_bytes, address_text
from .errors import CodecError
from .ilp4 import (
    IlpFulfill,
    IlpPrepare,
    IlpReject,
    decode_fulfill,
    decode_prepare,
    encode_fulfill,
    encode_prepare,
    encode_reject,
)
from .oer import Reader, encode_length

__all__ = [
    "DEFAULT_EXPIRY",
    "ILDCP_DESTINATION",
    "PEER_PROTOCOL_CONDITION",
    "PEER_PROTOCOL_FULFILLMENT",
    "IldcpRequest",
    "IldcpResponse",
    "decode_request",
    "decode_response",
    "decode_response_data",
    "encode_error",
    "encode_request",
    "encode_response",
    "encode_response_data",
    "is_request",
]

ILDCP_DESTINATION: Final = "peer.config"
PEER_PROTOCOL_FULFILLMENT: Final = bytes(32)
PEER_PROTOCOL_CONDITION: Final = hashlib.sha256(PEER_PROTOCOL_FULFILLMENT).digest()
#: How far ahead ilp-protocol-ildcp sets a request's expiry when the caller gives none.
DEFAULT_EXPIRY: Final = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class IldcpRequest:
    """What a child's request carries besides the fixed destination and condition."""

    expires_at: datetime
    amount: int = 0
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class IldcpResponse:
    """What the parent assigns: the child's address and the asset both sides count in."""

    client_address: str
    asset_scale: int
    asset_code: str


def encode_request(request: IldcpRequest) -> bytes:
    """The ILP Prepare asking for configuration (``expires_at``: e.g. now + `DEFAULT_EXPIRY`).

    Raises:
        CodecError: an amount outside UInt64, a naive datetime, data too long.
    """
    if not isinstance(request, IldcpRequest):
        raise CodecError(f"expected IldcpRequest, got {type(request).__name__}", field="type")
    return encode_prepare(
        IlpPrepare(
            request.amount,
            request.expires_at,
            PEER_PROTOCOL_CONDITION,
            ILDCP_DESTINATION,
            request.data,
        )
    )


def is_request(prepare: IlpPrepare) -> bool:
    """True when a decoded Prepare is addressed to ``peer.config`` (route it to ILDCP)."""
    return prepare.destination == ILDCP_DESTINATION


def decode_request(
    raw: bytes | bytearray | memoryview, now: datetime | None = None
) -> IldcpRequest:
    """Parse an ILDCP request; with `now`, one already past its expiry is refused too.

    Raises:
        CodecError: not a Prepare (``type``), not to ``peer.config`` (``destination``), another
            condition (``executionCondition``), expired (``expiresAt``), or malformed.
    """
    prepare = decode_prepare(raw)
    if prepare.destination != ILDCP_DESTINATION:
        raise CodecError(f"{prepare.destination!r} is not {ILDCP_DESTINATION}", field="destination")
    if prepare.execution_condition != PEER_PROTOCOL_CONDITION:
        raise CodecError(
            "is not the peer protocol condition (SHA-256 of 32 zero bytes)",
            field="executionCondition",
        )
    if now is None:
        return IldcpRequest(prepare.expires_at, prepare.amount, prepare.data)
    try:
        expired = now > prepare.expires_at
    except TypeError:
        raise CodecError("must be a timezone-aware datetime", field="now") from None
    if expired:
        raise CodecError(
            f"expired at {prepare.expires_at.isoformat()}, now {now.isoformat()}",
            field="expiresAt",
        )
    return IldcpRequest(prepare.expires_at, prepare.amount, prepare.data)


def encode_response_data(response: IldcpResponse) -> bytes:
    """The Fulfill data: ``clientAddress``, ``assetScale``, ``assetCode`` (RFC 31 "Packet").

    Raises:
        CodecError: an invalid address, a scale outside 0..255, an asset code that is not text.
    """
    if not isinstance(response, IldcpResponse):
        raise CodecError(f"expected IldcpResponse, got {type(response).__name__}", field="type")
    address = address_bytes(response.client_address, "clientAddress")
    scale = response.asset_scale
    if type(scale) is not int or not 0 <= scale <= 255:
        raise CodecError(f"{scale!r} is outside 0..255", field="assetScale")
    code = response.asset_code
    if type(code) is not str:
        raise CodecError(f"expected str, got {type(code).__name__}", field="assetCode")
    try:
        code_bytes = code.encode("utf-8")
    except UnicodeEncodeError:
        raise CodecError("is not encodable as UTF-8", field="assetCode") from None
    return b"".join(
        (
            encode_length(len(address)),
            address,
            bytes((scale,)),
            encode_length(len(code_bytes)),
            code_bytes,
        )
    )


def decode_response_data(data: bytes) -> IldcpResponse:
    """Parse the Fulfill data of a response; bytes after ``assetCode`` are ignored.

    Raises:
        CodecError: underflow, a non-canonical length, an invalid ``clientAddress``.
    """
    r = Reader(bytes(data))
    address = address_text(r.read_var_octets("clientAddress"), "clientAddress")
    scale = r.read_uint8("assetScale")
    code = r.read_var_octets("assetCode").decode("utf-8", "replace")
    return IldcpResponse(address, scale, code)


def encode_response(response: IldcpResponse) -> bytes:
    """The ILP Fulfill answering a request: zero fulfillment, the configuration as data.

    Raises:
        CodecError: as `encode_response_data`.
    """
    return encode_fulfill(IlpFulfill(PEER_PROTOCOL_FULFILLMENT, encode_response_data(response)))


def decode_response(raw: bytes | bytearray | memoryview) -> IldcpResponse:
    """Parse the parent's Fulfill.

    Raises:
        CodecError: not a Fulfill (``type``; a Reject is the parent's refusal: decode it with
            `ilp4.decode_reply`), another fulfillment (``fulfillment``), malformed data.
    """
    fulfill = decode_fulfill(raw)
    if fulfill.fulfillment != PEER_PROTOCOL_FULFILLMENT:
        raise CodecError(
            "is not the peer protocol fulfillment (32 zero bytes)", field="fulfillment"
        )
    return decode_response_data(fulfill.data)


def encode_error(server_address: str, message: str, code: str = "F00") -> bytes:
    """The ILP Reject a parent sends when it cannot answer (ilp-protocol-ildcp's ``serve``).

    Raises:
        CodecError: an invalid address or code, a message that is not text.
    """
    return encode_reject(IlpReject(code, server_address, message, b""))
