"""OER primitives exactly as the reference's oer-utils 1.3.3 reads and writes them, plus what
today's Interledger adds (RFC 30): var-uints up to 8 bytes and the 17-digit Interledger timestamp.

Pure functions on bytes; never any I/O. Every read is bounds-checked against the end of the
enclosing frame *before* slicing, so a length prefix claiming more than the frame holds fails at
once with `CodecError` and nothing larger than the frame is ever allocated.
"""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime, timedelta
from typing import Final

from .errors import CodecError

__all__ = [
    "INTERLEDGER_TIME_LENGTH",
    "LONG_FORM_MIN",
    "MAX_INT_BYTES",
    "MAX_VAR_UINT64_BYTES",
    "SHORT_LENGTHS",
    "UINT64_MAX",
    "Reader",
    "Writer",
    "as_bytes",
    "ascii_bytes",
    "ascii_text",
    "decode_interledger_time",
    "decode_timestamp",
    "decode_timestamp_or_none",
    "encode_interledger_time",
    "encode_length",
    "encode_pd_count",
    "encode_timestamp",
    "encode_var_octets",
    "encode_var_uint",
    "encode_var_uint64",
    "fixed32",
    "read_length",
    "underflow",
]

UINT64_MAX: Final = (1 << 64) - 1

_U8: Final = struct.Struct(">B")
_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")

# oer-utils checks a long-form length against max(128, 1 << ((n - 1) * 8)) with JavaScript's 32-bit
# shift, so n = 5 wraps to 1 << 0 and n = 6 to 1 << 8. n = 0 gives 1 << 24 (never satisfiable by 0)
# and n > 6 is "too large integer". Reproduced exactly so we refuse what the reference refuses.
LONG_FORM_MIN: Final = (1 << 24, 128, 256, 1 << 16, 1 << 24, 128, 256)
MAX_INT_BYTES: Final = 6
#: oer-utils 5 (today's JavaScript stack) reads and writes var-uints of up to 8 bytes (a UInt64).
MAX_VAR_UINT64_BYTES: Final = 8

SHORT_LENGTHS: Final = tuple(bytes((n,)) for n in range(128))
"""``SHORT_LENGTHS[n]`` is the one-byte length determinant of ``n < 128``, prebuilt."""

# Node's "ascii" decoding clears the high bit of every byte instead of failing.
_CLEAR_HIGH_BIT: Final = bytes(b & 0x7F for b in range(256))


def encode_length(n: int) -> bytes:
    """Length determinant: one byte below 128, else ``0x80 | k`` and ``k`` big-endian bytes."""
    if n < 128:
        if n < 0:
            raise CodecError(f"negative length {n}", field="length")
        return SHORT_LENGTHS[n]
    k = (n.bit_length() + 7) >> 3
    if k > MAX_INT_BYTES:
        raise CodecError(f"{n} bytes is more than a peer can read", field="length")
    return bytes((0x80 | k,)) + n.to_bytes(k, "big")


def encode_var_octets(data: bytes) -> bytes:
    """Length determinant followed by the bytes themselves."""
    return encode_length(len(data)) + data


def encode_var_uint(value: int) -> bytes:
    """ILP var-uint: a var octet string holding the minimal big-endian integer (0 is ``01 00``)."""
    if value < 0:
        raise CodecError(f"{value} is negative", field="varUInt")
    k = max(1, (value.bit_length() + 7) >> 3)
    if k > MAX_INT_BYTES:
        raise CodecError(f"{value} does not fit in {MAX_INT_BYTES} bytes", field="varUInt")
    return bytes((k,)) + value.to_bytes(k, "big")


def encode_var_uint64(value: int) -> bytes:
    """RFC 30 var-uint of up to 8 bytes, minimal (0 is ``01 00``), as oer-utils 5 writes it."""
    if type(value) is not int:
        raise CodecError(f"expected int, got {type(value).__name__}", field="varUInt")
    if value < 0 or value > UINT64_MAX:
        raise CodecError(f"{value} is outside 0..{UINT64_MAX}", field="varUInt")
    k = max(1, (value.bit_length() + 7) >> 3)
    return bytes((k,)) + value.to_bytes(k, "big")


def encode_pd_count(count: int) -> bytes:
    """BTP protocol-data count: a byte ``L``, then the count in ``L`` bytes (minimal, >= 1)."""
    if count < 256:
        if count < 0:
            raise CodecError(f"negative count {count}", field="protocolData")
        return bytes((1, count))
    k = (count.bit_length() + 7) >> 3
    if k > MAX_INT_BYTES:
        raise CodecError(f"{count} entries is more than a peer can read", field="protocolData")
    return bytes((k,)) + count.to_bytes(k, "big")


def read_length(buf: bytes, pos: int, end: int, field: str) -> tuple[int, int]:
    """Read a length determinant at ``pos``; return ``(length, position after it)``.

    Raises:
        CodecError: underflow, a long form of more than 6 bytes, or a non-canonical long form.
    """
    if pos >= end:
        raise CodecError("frame ends before the length prefix", field=field)
    first = buf[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    k = first & 0x7F
    if k == 0 or k > MAX_INT_BYTES:
        raise CodecError(f"length prefix of {k} bytes is not allowed", field=field)
    if pos + k > end:
        raise CodecError(f"length prefix needs {k} bytes, {end - pos} left", field=field)
    n = int.from_bytes(buf[pos : pos + k], "big")
    if n < LONG_FORM_MIN[k]:
        raise CodecError(f"length {n} is not canonical in {k} bytes", field=field)
    return n, pos + k


def ascii_text(raw: bytes) -> str:
    """Decode an IA5 string the way Node's ``toString('ascii')`` does (high bit cleared)."""
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.translate(_CLEAR_HIGH_BIT).decode("ascii")


def ascii_bytes(text: str, field: str) -> bytes:
    """Encode an IA5 string; unlike the reference we refuse non-ASCII instead of truncating it."""
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise CodecError(f"{text!r} is not ASCII", field=field) from None
    except AttributeError:
        raise CodecError(f"expected str, got {type(text).__name__}", field=field) from None


def underflow(field: str, need: int, left: int) -> CodecError:
    """The error every packet codec raises when ``field`` needs more bytes than are left."""
    return CodecError(f"needs {need} bytes, {max(left, 0)} left", field=field)


def fixed32(value: bytes, field: str) -> bytes:
    """Check a 32-byte condition or fulfillment before it is written (BTP 1.0 and ILPv4 alike)."""
    if type(value) is not bytes:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise CodecError(f"expected 32 bytes, got {type(value).__name__}", field=field)
        value = bytes(value)
    if len(value) != 32:
        raise CodecError(f"must be 32 bytes, got {len(value)}", field=field)
    return value


def as_bytes(value: bytes, field: str) -> bytes:
    """Accept any bytes-like ``value`` for an octet-string field and refuse anything else."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(value).__name__}", field=field)
    return bytes(value)


class Reader:
    """A bounds-checked cursor over ``buf[pos:end]``; every method names the field it reads."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def remaining(self) -> int:
        """Bytes left before the end of the window."""
        return self.end - self.pos

    def read(self, n: int, field: str) -> bytes:
        """The next `n` bytes as they are."""
        pos = self.pos
        if n > self.end - pos:
            raise CodecError(f"needs {n} bytes, {self.end - pos} left", field=field)
        self.pos = pos + n
        return self.buf[pos : pos + n]

    def read_uint8(self, field: str) -> int:
        """One unsigned byte."""
        pos = self.pos
        if pos >= self.end:
            raise CodecError("needs 1 byte, 0 left", field=field)
        self.pos = pos + 1
        return self.buf[pos]

    def read_uint32(self, field: str) -> int:
        """A big-endian UInt32 (a BTP request id)."""
        pos = self.pos
        if self.end - pos < 4:
            raise CodecError(f"needs 4 bytes, {self.end - pos} left", field=field)
        self.pos = pos + 4
        value: int = _U32.unpack_from(self.buf, pos)[0]
        return value

    def read_uint64(self, field: str) -> int:
        """A big-endian UInt64 (an amount)."""
        pos = self.pos
        if self.end - pos < 8:
            raise CodecError(f"needs 8 bytes, {self.end - pos} left", field=field)
        self.pos = pos + 8
        value: int = _U64.unpack_from(self.buf, pos)[0]
        return value

    def read_length(self, field: str) -> int:
        """An OER length determinant (short or long form)."""
        n, self.pos = read_length(self.buf, self.pos, self.end, field)
        return n

    def read_contents(self) -> Reader:
        """A Reader over the length-prefixed contents of an ILP packet envelope (after its type)."""
        size = self.read_length("length")
        if size > self.end - self.pos:
            raise CodecError(
                f"contents claim {size} bytes, {self.end - self.pos} present", field="length"
            )
        return Reader(self.buf, self.pos, self.pos + size)

    def read_var_octets(self, field: str) -> bytes:
        """A length-prefixed octet string."""
        n, pos = read_length(self.buf, self.pos, self.end, field)
        if n > self.end - pos:
            raise CodecError(f"claims {n} bytes, {self.end - pos} left", field=field)
        self.pos = pos + n
        return self.buf[pos : pos + n]

    def read_ia5(self, field: str) -> str:
        """A length-prefixed ASCII string."""
        return ascii_text(self.read_var_octets(field))

    def read_var_uint(self, field: str) -> int:
        """ILP var-uint: 1 to 6 bytes, non-minimal forms accepted (as oer-utils)."""
        raw = self.read_var_octets(field)
        if not raw:
            raise CodecError("var-uint of length 0", field=field)
        if len(raw) > MAX_INT_BYTES:
            raise CodecError(f"var-uint of {len(raw)} bytes is too large", field=field)
        return int.from_bytes(raw, "big")

    def read_var_uint64(self, field: str) -> int:
        """RFC 30 var-uint of 1 to 8 bytes; leading zeros accepted, as oer-utils 5 reads it."""
        raw = self.read_var_octets(field)
        if not raw:
            raise CodecError("var-uint of length 0", field=field)
        if len(raw) > MAX_VAR_UINT64_BYTES:
            raise CodecError(f"var-uint of {len(raw)} bytes is too large", field=field)
        return int.from_bytes(raw, "big")

    def read_pd_count(self, field: str = "protocolData") -> int:
        """BTP's count: one byte ``L`` in 0..6 and an ``L``-byte integer (``00`` reads as 0)."""
        k = self.read_uint8(field)
        if k > MAX_INT_BYTES:
            raise CodecError(f"count of {k} bytes is too large", field=field)
        return int.from_bytes(self.read(k, field), "big")


class Writer:
    """Collects encoded parts; `getvalue` joins them once."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Raw bytes, already encoded."""
        self.parts.append(data)

    def write_uint8(self, value: int, field: str) -> None:
        """One unsigned byte; `CodecError` naming `field` if out of range."""
        self.parts.append(_pack(_U8, value, field))

    def write_uint32(self, value: int, field: str) -> None:
        """A big-endian UInt32; `CodecError` naming `field` if out of range."""
        self.parts.append(_pack(_U32, value, field))

    def write_uint64(self, value: int, field: str) -> None:
        """A big-endian UInt64; `CodecError` naming `field` if out of range."""
        self.parts.append(_pack(_U64, value, field))

    def write_fixed(self, data: bytes, size: int, field: str) -> None:
        """Exactly `size` bytes (a condition, a UUID); `CodecError` otherwise."""
        if len(data) != size:
            raise CodecError(f"must be {size} bytes, got {len(data)}", field=field)
        self.parts.append(bytes(data))

    def write_var_octets(self, data: bytes) -> None:
        """A length determinant, then the bytes."""
        self.parts.append(encode_length(len(data)))
        self.parts.append(bytes(data))

    def write_ia5(self, text: str, field: str) -> None:
        """A length-prefixed ASCII string; `CodecError` naming `field` if not ASCII."""
        self.write_var_octets(ascii_bytes(text, field))

    def write_var_uint(self, value: int, field: str) -> None:
        """An ILP var-uint in its minimal form."""
        try:
            self.parts.append(encode_var_uint(value))
        except CodecError as exc:
            raise CodecError(exc.reason, field=field) from None

    def write_var_uint64(self, value: int, field: str) -> None:
        """An RFC 30 var-uint of up to 8 bytes, minimal."""
        try:
            self.parts.append(encode_var_uint64(value))
        except CodecError as exc:
            raise CodecError(exc.reason, field=field) from None

    def write_timestamp(self, dt: datetime, field: str) -> None:
        """A GeneralizedTime with its length byte, always with milliseconds and `Z`."""
        self.parts.append(b"\x13" + encode_timestamp(dt, field))

    def getvalue(self) -> bytes:
        """Everything written so far, joined."""
        return b"".join(self.parts)


def _pack(fmt: struct.Struct, value: int, field: str) -> bytes:
    if type(value) is not int:
        raise CodecError(f"expected int, got {type(value).__name__}", field=field)
    try:
        return fmt.pack(value)
    except struct.error:
        limit = (1 << (8 * fmt.size)) - 1
        raise CodecError(f"{value} is outside 0..{limit}", field=field) from None


# --- GeneralizedTime -------------------------------------------------------------------------

_TS_RE: Final = re.compile(
    rb"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})(?:\.([0-9]{1,3}))?Z"
)
_FRACTION_SCALE: Final = (0, 100_000, 10_000, 1_000)
_from_iso: Final = datetime.fromisoformat


def _as_utc(dt: datetime, field: str) -> datetime:
    """`dt` in UTC; refuses what is not a timezone-aware datetime, naming `field`."""
    try:
        offset = dt.utcoffset()
    except AttributeError:
        raise CodecError(f"expected datetime, got {type(dt).__name__}", field=field) from None
    if offset is None:
        raise CodecError("datetime must be timezone-aware", field=field)
    if offset:
        try:
            return dt.astimezone(UTC)
        except OverflowError:
            raise CodecError(f"{dt.isoformat()} is out of range", field=field) from None
    return dt


def encode_timestamp(dt: datetime, field: str = "timestamp") -> bytes:
    """``YYYYMMDDHHMMSS.fffZ`` in UTC, always three fraction digits (the reference reads no other).

    Sub-millisecond digits are dropped, as JavaScript's Date does.
    """
    dt = _as_utc(dt, field)
    return b"%04d%02d%02d%02d%02d%02d.%03dZ" % (
        dt.year,
        dt.month,
        dt.day,
        dt.hour,
        dt.minute,
        dt.second,
        dt.microsecond // 1000,
    )


def decode_timestamp_or_none(raw: bytes) -> datetime | None:
    """Parse ``YYYYMMDDHHMMSS[.f{1,3}]Z``; None for anything JavaScript would call *Invalid Date*.

    A superset of the reference, which reads only three fraction digits. Calendar overflow is
    resolved the way V8 resolves it (a day up to 31 rolls into the next month; ``24:00:00.000`` is
    the next midnight); month 0/13, day 0/32, minute or second 60 are invalid.
    """
    if len(raw) == 19 and raw[14] == 0x2E and raw[18] == 0x5A:  # the form everyone writes
        text = raw.decode("latin-1")
        if text[:14].isdecimal() and text[15:18].isdecimal() and text.isascii():
            try:
                return _from_iso(f"{text[:8]}T{text[8:]}")
            except ValueError:
                pass  # calendar overflow: handled below
    m = _TS_RE.fullmatch(raw)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac = m.groups()
    y, mo, d, h, mi, s = int(year), int(month), int(day), int(hour), int(minute), int(second)
    us = int(frac) * _FRACTION_SCALE[len(frac)] if frac else 0
    try:
        return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)
    except ValueError:
        pass
    if not (1 <= mo <= 12 and 1 <= d <= 31 and mi <= 59 and s <= 59 and y >= 1):
        return None
    if h > 24 or (h == 24 and (mi or s or us)):
        return None
    try:
        base = datetime(y, mo, 1, tzinfo=UTC)
        return base + timedelta(days=d - 1, hours=h, minutes=mi, seconds=s, microseconds=us)
    except OverflowError:
        return None


def decode_timestamp(raw: bytes, field: str = "timestamp") -> datetime:
    """Like `decode_timestamp_or_none`, but raises `CodecError` as ilp-packet throws."""
    dt = decode_timestamp_or_none(raw)
    if dt is None:
        raise CodecError(f"{raw[:40]!r} is not a GeneralizedTime", field=field)
    return dt


# --- Interledger timestamp (RFC 30 "Fixed-length Timestamps", RFC 27 Prepare expiresAt) ---------

INTERLEDGER_TIME_LENGTH: Final = 17


def encode_interledger_time(dt: datetime, field: str = "expiresAt") -> bytes:
    """``YYYYMMDDHHmmssfff`` in UTC: 17 ASCII digits, always four year digits.

    Sub-millisecond digits are dropped, as JavaScript's Date does.
    """
    dt = _as_utc(dt, field)
    return b"%04d%02d%02d%02d%02d%02d%03d" % (
        dt.year,
        dt.month,
        dt.day,
        dt.hour,
        dt.minute,
        dt.second,
        dt.microsecond // 1000,
    )


def decode_interledger_time(raw: bytes, field: str = "expiresAt") -> datetime:
    """Parse 17 ASCII digits ``YYYYMMDDHHmmssfff`` as a UTC time, as strictly as RFC 30 asks.

    Refused: any other length or character, a month, day, hour, minute or second out of range
    (midnight is ``000000`` of the next day, never ``24``; an unsmeared leap second ``60`` is
    refused) and year 0000.
    """
    if len(raw) != INTERLEDGER_TIME_LENGTH or not raw.isdigit():
        raise CodecError(f"{bytes(raw[:40])!r} is not 17 ASCII digits", field=field)
    text = raw.decode("ascii")
    try:
        return _from_iso(f"{text[:8]}T{text[8:14]}.{text[14:]}Z")
    except ValueError as exc:
        raise CodecError(f"{text} is not a valid time: {exc}", field=field) from None
