"""Execution conditions and fulfillments: SHA-256 preimages and their base64url text form.

The reference compares base64url *strings*; we compare bytes, and our
base64url decoder is strict so that one value has exactly one text form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Final

from .errors import CodecError

__all__ = [
    "FULFILLMENT_SIZE",
    "b64url_decode",
    "b64url_encode",
    "condition_of",
    "fulfillment_matches",
    "preimage_condition_der",
    "preimage_condition_uri",
    "preimage_fulfillment_der",
]

FULFILLMENT_SIZE: Final = 32

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")


_TO_URL: Final = bytes.maketrans(b"+/", b"-_")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 4648 §5), the text form of conditions and ``ilp`` fields."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URL).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, field: str = "base64url") -> bytes:
    """Strict inverse of `b64url_encode`.

    Raises:
        CodecError: characters outside ``A–Z a–z 0–9 - _`` (so also padding and the ``+/``
            alphabet), an impossible length, or non-zero unused trailing bits.
    """
    if type(text) is not str:
        raise CodecError(f"expected str, got {type(text).__name__}", field=field)
    if not _B64URL.fullmatch(text):
        raise CodecError("contains characters outside the base64url alphabet", field=field)
    if len(text) % 4 == 1:
        raise CodecError(f"{len(text)} characters is not a base64url length", field=field)
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise CodecError("is not base64url", field=field) from None
    if b64url_encode(data) != text:
        raise CodecError("has non-zero trailing bits (not canonical)", field=field)
    return data


def condition_of(fulfillment: bytes) -> bytes:
    """The execution condition a fulfillment satisfies: its SHA-256 digest."""
    return hashlib.sha256(fulfillment).digest()


def fulfillment_matches(fulfillment: bytes, condition: bytes) -> bool:
    """True iff ``fulfillment`` is 32 bytes and hashes to ``condition`` (bytes, constant time)."""
    if len(fulfillment) != FULFILLMENT_SIZE:
        return False
    return hmac.compare_digest(hashlib.sha256(fulfillment).digest(), condition)


# --- informative: PREIMAGE-SHA-256 crypto-condition encodings (RFC draft-thomas-02) --------------
# The framework never puts these on the wire; they help when talking to crypto-condition tools.


def _der_length(n: int) -> bytes:
    if n < 128:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _der_uint(n: int) -> bytes:
    raw = n.to_bytes(n.bit_length() // 8 + 1, "big")  # leading zero keeps the sign bit clear
    while len(raw) > 1 and raw[0] == 0 and raw[1] < 0x80:
        raw = raw[1:]
    return raw


def preimage_condition_der(preimage: bytes) -> bytes:
    """DER of the PREIMAGE-SHA-256 condition: ``[0] { fingerprint [0], cost [1] }``."""
    fingerprint = b"\x80\x20" + condition_of(preimage)
    cost = _der_uint(len(preimage))
    body = fingerprint + b"\x81" + _der_length(len(cost)) + cost
    return b"\xa0" + _der_length(len(body)) + body


def preimage_fulfillment_der(preimage: bytes) -> bytes:
    """DER of the PREIMAGE-SHA-256 fulfillment: ``[0] { preimage [0] }``."""
    body = b"\x80" + _der_length(len(preimage)) + preimage
    return b"\xa0" + _der_length(len(body)) + body


def preimage_condition_uri(preimage: bytes) -> str:
    """The ``ni:///sha-256;…`` URI of the PREIMAGE-SHA-256 condition."""
    digest = b64url_encode(condition_of(preimage))
    return f"ni:///sha-256;{digest}?fpt=preimage-sha-256&cost={len(preimage)}"
