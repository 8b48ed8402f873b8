"""The OER readings STREAM needs beyond `codec.oer`.

Var-uints of up to 8 bytes come from `codec.oer` (``encode_var_uint64``,
``Reader.read_var_uint64``); what is STREAM's own is here: the saturating read RFC 29 §5.1.4 asks
for ``receiveMax`` and ``sendMax``, and the frame count as ilp-protocol-stream's oer-utils 5 reads
it.
"""

from __future__ import annotations

from typing import Final

from ..codec.errors import CodecError
from ..codec.oer import MAX_VAR_UINT64_BYTES, UINT64_MAX, Reader, encode_var_uint64

__all__ = ["UINT64_MAX", "read_count", "read_var_uint", "read_var_uint_saturating", "var_uint"]

#: oer-utils reads a count with its "number" reader: a length byte of 1 to 6, then that many bytes.
MAX_COUNT_BYTES: Final = 6

#: ``VAR_UINT_SMALL[n]`` is the encoding of ``n < 256``, prebuilt (most stream ids and counts).
VAR_UINT_SMALL: Final = tuple(bytes((1, n)) for n in range(256))


def var_uint(value: object, field: str) -> bytes:
    """The minimal var-uint of ``0 <= value <= 2^64 - 1`` (0 is ``01 00``), as oer-utils writes."""
    if type(value) is int and 0 <= value < 256:
        return VAR_UINT_SMALL[value]
    try:
        return encode_var_uint64(value)  # type: ignore[arg-type]  # it checks the type itself
    except CodecError as exc:
        raise CodecError(exc.reason, field=field) from None


def read_var_uint(r: Reader, field: str) -> int:
    """A var-uint of 1 to 8 bytes; leading zero bytes are accepted, as oer-utils accepts them."""
    return r.read_var_uint64(field)


def read_var_uint_saturating(r: Reader, field: str) -> int:
    """Like `read_var_uint`, but a var-uint longer than 8 bytes reads as 2^64 - 1 (RFC 29 §5.1.4).

    Decided by length alone, as ilp-protocol-stream does: nine bytes with a leading zero still
    saturate.
    """
    raw = r.read_var_octets(field)
    if len(raw) > MAX_VAR_UINT64_BYTES:
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
