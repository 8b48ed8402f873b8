"""The OER pieces STREAM needs beyond `codec.oer`: var-uints of up to 8 bytes.

ILP v1 and BTP read integers of at most 6 bytes (`codec.oer.Reader.read_var_uint`); STREAM
amounts, sequences and offsets go up to 2^64 - 1 (RFC 29 §5.1.4), as ilp-protocol-stream's
oer-utils 5 reads them. Private to the stream package until the codec layer grows the same
helpers (then these become imports).
"""

from __future__ import annotations

from typing import Final

from ..codec.errors import CodecError
from ..codec.oer import SHORT_LENGTHS, Reader

UINT64_MAX: Final = (1 << 64) - 1
MAX_VAR_UINT_BYTES: Final = 8
#: oer-utils reads a count with its "number" reader: a length byte of 1 to 6, then that many bytes.
MAX_COUNT_BYTES: Final = 6

#: ``VAR_UINT_SMALL[n]`` is the encoding of ``n < 256``, prebuilt (most stream ids and counts).
VAR_UINT_SMALL: Final = tuple(bytes((1, n)) for n in range(256))


def var_uint(value: object, field: str) -> bytes:
    """The minimal var-uint of ``0 <= value <= 2^64 - 1`` (0 is ``01 00``), as oer-utils writes."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise CodecError(f"expected int, got {type(value).__name__}", field=field)
    if 0 <= value < 256:
        return VAR_UINT_SMALL[value]
    if value < 0 or value > UINT64_MAX:
        raise CodecError(f"{value} is outside 0..{UINT64_MAX}", field=field)
    k = (value.bit_length() + 7) >> 3
    return SHORT_LENGTHS[k] + value.to_bytes(k, "big")


def read_var_uint(r: Reader, field: str) -> int:
    """A var-uint of 1 to 8 bytes; leading zero bytes are accepted, as oer-utils accepts them."""
    raw = r.read_var_octets(field)
    n = len(raw)
    if n == 1:
        return raw[0]
    if n == 0:
        raise CodecError("var-uint of length 0", field=field)
    if n > MAX_VAR_UINT_BYTES:
        raise CodecError(f"var-uint of {n} bytes is larger than a UInt64", field=field)
    return int.from_bytes(raw, "big")


def read_var_uint_saturating(r: Reader, field: str) -> int:
    """Like `read_var_uint`, but a var-uint longer than 8 bytes reads as 2^64 - 1 (RFC 29 §5.1.4).

    Decided by length alone, as ilp-protocol-stream does: nine bytes with a leading zero still
    saturate.
    """
    raw = r.read_var_octets(field)
    if len(raw) > MAX_VAR_UINT_BYTES:
        return UINT64_MAX
    if not raw:
        raise CodecError("var-uint of length 0", field=field)
    return int.from_bytes(raw, "big")


def read_count(r: Reader, field: str) -> int:
    """A var-uint count whose length byte must be 1 to 6 (oer-utils' ``readVarUIntNumber``)."""
    k = r.read_uint8(field)
    if not 1 <= k <= MAX_COUNT_BYTES:
        raise CodecError(f"count of {k} bytes is not allowed (1 to 6)", field=field)
    return int.from_bytes(r.read(k, field), "big")
