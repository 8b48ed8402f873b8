"""ILP addresses (RFC 15 "Address Requirements"), checked the way ilp-packet 3.1.3 checks them.

An address is an allocation scheme (``g``, ``private``, ``example``, ``peer``, ``self``, ``test``,
``test1``-``test3``, ``local``) followed by one or more ``.segment``s of ``A-Z a-z 0-9 _ ~ -``,
at most 1023 characters in all. ilp-packet applies this rule when it *reads* a Prepare's
``destination``, a Reject's ``triggeredBy`` (which may also be empty) and an ILDCP
``clientAddress``; the ILPv4 codecs here apply it on reading and on writing the same fields, so a
packet a JavaScript peer would refuse is never produced.

Valid addresses are remembered (a connector sees the same few over and over), so a repeated one
costs a dictionary lookup instead of a regular expression.
"""

from __future__ import annotations

import re
from typing import Final

from .errors import CodecError

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "address_bytes",
    "address_text",
    "is_valid_address",
]

MAX_ADDRESS_LENGTH: Final = 1023

_PATTERN: Final = r"(?:g|private|example|peer|self|test[1-3]?|local)(?:\.[a-zA-Z0-9_~-]+)+"
_ADDRESS_RE: Final = re.compile(_PATTERN)
_ADDRESS_BYTES_RE: Final = re.compile(_PATTERN.encode("ascii"))

# Valid addresses seen so far, both ways: wire bytes -> text and text -> wire bytes.
_CACHE_MAX: Final = 4096
_TEXT_OF: dict[bytes, str] = {}
_BYTES_OF: dict[str, bytes] = {}


def _remember(raw: bytes, text: str) -> None:
    if len(_TEXT_OF) < _CACHE_MAX:
        _TEXT_OF[raw] = text
        _BYTES_OF[text] = raw


def is_valid_address(value: object) -> bool:
    """True when `value` is a str that RFC 15 (and ilp-packet's ``isValidIlpAddress``) accepts."""
    if type(value) is not str:
        return False
    if value in _BYTES_OF:
        return True
    return len(value) <= MAX_ADDRESS_LENGTH and _ADDRESS_RE.fullmatch(value) is not None


def address_text(raw: bytes, field: str, *, allow_empty: bool = False) -> str:
    """The address held in `raw` (wire bytes); `CodecError` naming `field` if it is not one.

    Bytes with the high bit set are refused: Node would clear that bit and read another
    character, so the address routed on would not be the bytes received.
    """
    text = _TEXT_OF.get(raw)
    if text is not None:
        return text
    if not raw and allow_empty:
        return ""
    if len(raw) > MAX_ADDRESS_LENGTH:
        raise CodecError(
            f"address of {len(raw)} characters; at most {MAX_ADDRESS_LENGTH}", field=field
        )
    if _ADDRESS_BYTES_RE.fullmatch(raw) is None:
        raise CodecError(f"{bytes(raw[:80])!r} is not an ILP address (RFC 15)", field=field)
    text = raw.decode("ascii")
    _remember(bytes(raw), text)
    return text


def address_bytes(text: str, field: str, *, allow_empty: bool = False) -> bytes:
    """The wire bytes of address `text`; `CodecError` naming `field` if it is not an address."""
    try:
        raw = _BYTES_OF.get(text)
    except TypeError:  # unhashable: certainly not a str
        raw = None
    if raw is not None:
        return raw
    if type(text) is not str:
        raise CodecError(f"expected str, got {type(text).__name__}", field=field)
    if not text and allow_empty:
        return b""
    if len(text) > MAX_ADDRESS_LENGTH:
        raise CodecError(
            f"address of {len(text)} characters; at most {MAX_ADDRESS_LENGTH}", field=field
        )
    if _ADDRESS_RE.fullmatch(text) is None:
        raise CodecError(f"{text[:80]!r} is not an ILP address (RFC 15)", field=field)
    raw = text.encode("ascii")
    _remember(raw, text)
    return raw
