"""The ``balance`` side protocol's amount: 8 bytes, big-endian two's complement.

The reference uses int64 0.0.5, which silently wraps 2^63 and reads shorter inputs as unsigned;
we refuse values outside the signed 64-bit range and keep the unsigned reading of short inputs
(the peer could only produce them by hand) so any reply the reference accepts decodes here too.
"""

from __future__ import annotations

from typing import Final

from .errors import CodecError

__all__ = ["INT64_MAX", "INT64_MIN", "decode_int64", "encode_int64"]

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1


def encode_int64(value: int, *, field: str = "balance") -> bytes:
    """8 bytes of two's complement.

    Raises:
        CodecError: ``value`` is not an int in ``-2^63 .. 2^63-1``.
    """
    if type(value) is not int:
        raise CodecError(f"expected int, got {type(value).__name__}", field=field)
    if not INT64_MIN <= value <= INT64_MAX:
        raise CodecError(f"{value} is outside the signed 64-bit range", field=field)
    return value.to_bytes(8, "big", signed=True)


def decode_int64(raw: bytes, *, field: str = "balance") -> int:
    """Signed for exactly 8 bytes; 1–7 bytes read as unsigned (the reference's quirk).

    Raises:
        CodecError: empty input or more than 8 bytes.
    """
    size = len(raw)
    if size == 8:
        return int.from_bytes(raw, "big", signed=True)
    if 1 <= size < 8:
        return int.from_bytes(raw, "big")
    raise CodecError(f"expected 1 to 8 bytes, got {size}", field=field)
