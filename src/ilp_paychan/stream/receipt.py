"""STREAM receipts (RFC 39): a receiver's signed statement of the total received on a stream.

58 bytes: version (UInt8, 1), receipt nonce (16 bytes), stream id (UInt8), total received
(UInt64), HMAC-SHA256 under the 32-byte receipt secret of the 26 bytes before it. A receiver
with receipts enabled puts one in a `StreamReceiptFrame` of every Fulfill; the sender passes them
on to a verifier that knows the secret.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass
from typing import Final

from .crypto import hmac_sha256
from .errors import StreamCodecError

__all__ = [
    "RECEIPT_LENGTH",
    "RECEIPT_VERSION",
    "Receipt",
    "create_receipt",
    "decode_receipt",
    "verify_receipt",
]

RECEIPT_VERSION: Final = 1
RECEIPT_LENGTH: Final = 58
_SIGNED: Final = 26
_BODY: Final = struct.Struct(">B16sBQ")


@dataclass(frozen=True, slots=True)
class Receipt:
    """A decoded receipt; `verify_receipt` has checked ``hmac`` only if it returned this."""

    version: int
    nonce: bytes
    stream_id: int
    total_received: int
    hmac: bytes


def _sized(value: object, size: int, field: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise StreamCodecError(f"expected bytes, got {type(value).__name__}", field=field)
    if len(value) != size:
        raise StreamCodecError(f"must be {size} bytes, got {len(value)}", field=field)
    return bytes(value)


def _uint(value: object, bits: int, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise StreamCodecError(f"expected int, got {type(value).__name__}", field=field)
    if not 0 <= value < 1 << bits:
        raise StreamCodecError(f"{value} is outside 0..{(1 << bits) - 1}", field=field)
    return value


def create_receipt(nonce: bytes, stream_id: int, total_received: int, secret: bytes) -> bytes:
    """A receipt for ``total_received`` on ``stream_id``.

    The stream id is one byte on the wire (RFC 39), so receipts exist only for streams 0–255.

    Raises:
        StreamCodecError: a nonce not 16 bytes, a secret not 32 bytes, or a number out of range.
    """
    body = _BODY.pack(
        RECEIPT_VERSION,
        _sized(nonce, 16, "receiptNonce"),
        _uint(stream_id, 8, "streamId"),
        _uint(total_received, 64, "totalReceived"),
    )
    return body + hmac_sha256(_sized(secret, 32, "receiptSecret"), body)


def decode_receipt(raw: bytes) -> Receipt:
    """Read a receipt without checking it (any version is returned as it is).

    Raises:
        StreamCodecError: not exactly 58 bytes.
    """
    data = _sized(raw, RECEIPT_LENGTH, "receipt")
    version, nonce, stream_id, total = _BODY.unpack_from(data)
    return Receipt(version, nonce, stream_id, total, data[_SIGNED:])


def verify_receipt(raw: bytes, secret: bytes) -> Receipt:
    """Decode a receipt and check its version and HMAC under ``secret``.

    Raises:
        StreamCodecError: malformed, a version other than 1, or an HMAC that does not match.
    """
    receipt = decode_receipt(raw)
    if receipt.version != RECEIPT_VERSION:
        raise StreamCodecError(f"unsupported receipt version {receipt.version}", field="receipt")
    expected = hmac_sha256(_sized(secret, 32, "receiptSecret"), bytes(raw[:_SIGNED]))
    if not hmac.compare_digest(expected, receipt.hmac):
        raise StreamCodecError("HMAC does not match the receipt secret", field="receipt")
    return receipt
