"""BTP 1.0 packets (RFC 23) as the reference's btp-packet 1.2.1 writes and reads them.

Frozen dataclasses plus `encode(packet) -> bytes` and `decode(frame) -> Packet`. This is the hot
path of every transfer, so both directions work on one ``bytes`` object with integer offsets,
precompiled `struct`s and cached name prefixes rather than a generic reader.

Decoding accepts what the reference accepts (bytes after the envelope or after the last field,
a protocol-data count written ``00`` or non-minimally, unknown content types) and refuses what it
refuses (underflow, non-canonical long lengths). Types 0 (alpha Ack) and 7 (BTP 1.1 Transfer)
raise `CodecError`: the framework never answers them. A timestamp JavaScript would read as
*Invalid Date* decodes to ``None`` so the plugin can answer with InvalidFieldsError.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, Final

from .errors import CodecError
from .oer import (
    LONG_FORM_MIN,
    MAX_INT_BYTES,
    SHORT_LENGTHS,
    ascii_text,
    decode_timestamp_or_none,
    encode_length,
    encode_timestamp,
    fixed32,
    read_length,
    underflow,
)

__all__ = [
    "TYPE_ERROR",
    "TYPE_FULFILL",
    "TYPE_MESSAGE",
    "TYPE_PREPARE",
    "TYPE_REJECT",
    "TYPE_RESPONSE",
    "ContentType",
    "Error",
    "Fulfill",
    "Message",
    "Packet",
    "Prepare",
    "ProtocolData",
    "Reject",
    "Response",
    "decode",
    "encode",
    "protocol_data_map",
]

TYPE_RESPONSE: Final = 1
TYPE_ERROR: Final = 2
TYPE_PREPARE: Final = 3
TYPE_FULFILL: Final = 4
TYPE_REJECT: Final = 5
TYPE_MESSAGE: Final = 6


class ContentType(IntEnum):
    """The content types of a protocol-data entry (any other byte is read as raw bytes)."""

    OCTET_STREAM = 0
    TEXT_PLAIN_UTF8 = 1
    APPLICATION_JSON = 2


@dataclass(frozen=True, slots=True)
class ProtocolData:
    """One side-protocol entry: an ASCII name, a content type byte and opaque data."""

    protocol_name: str
    content_type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Response:
    """The answer to a request that succeeded; may carry side-protocol data (e.g. a claim)."""

    request_id: int
    protocol_data: tuple[ProtocolData, ...] = ()


@dataclass(frozen=True, slots=True)
class Error:
    """BTP Error; ``data`` is UTF-8 text (the framework puts ``{"message": …}`` JSON there)."""

    request_id: int
    code: str
    name: str
    triggered_at: datetime | None
    data: str
    protocol_data: tuple[ProtocolData, ...] = ()


@dataclass(frozen=True, slots=True)
class Prepare:
    """``transfer_id`` is a lowercase dashed UUID; ``execution_condition`` is 32 raw bytes."""

    request_id: int
    transfer_id: str
    amount: int
    execution_condition: bytes
    expires_at: datetime | None
    protocol_data: tuple[ProtocolData, ...] = ()


@dataclass(frozen=True, slots=True)
class Fulfill:
    """Fulfils a prepared transfer: ``fulfillment`` is the 32-byte preimage of its condition."""

    request_id: int
    transfer_id: str
    fulfillment: bytes
    protocol_data: tuple[ProtocolData, ...] = ()


@dataclass(frozen=True, slots=True)
class Reject:
    """Rejects a prepared transfer; the reason travels as an ILP error in the ``ilp`` entry."""

    request_id: int
    transfer_id: str
    protocol_data: tuple[ProtocolData, ...] = ()


@dataclass(frozen=True, slots=True)
class Message:
    """A request with side-protocol data only (info, balance, limit, ILP messages, rpc)."""

    request_id: int
    protocol_data: tuple[ProtocolData, ...] = ()


Packet = Response | Error | Prepare | Fulfill | Reject | Message


# Decoding builds instances through the slot descriptors instead of the frozen-dataclass __init__
# (which looks up object.__setattr__ once per field): about twice as fast, identical objects.
_new = object.__new__


def _setter(cls: type, name: str) -> Callable[[object, object], None]:
    setter: Callable[[object, object], None] = cls.__dict__[name].__set__
    return setter


_PD_NAME = _setter(ProtocolData, "protocol_name")
_PD_TYPE = _setter(ProtocolData, "content_type")
_PD_DATA = _setter(ProtocolData, "data")
_PREPARE_FIELDS = tuple(
    _setter(Prepare, n)
    for n in (
        "request_id",
        "transfer_id",
        "amount",
        "execution_condition",
        "expires_at",
        "protocol_data",
    )
)
_FULFILL_FIELDS = tuple(
    _setter(Fulfill, n) for n in ("request_id", "transfer_id", "fulfillment", "protocol_data")
)
_REJECT_FIELDS = tuple(_setter(Reject, n) for n in ("request_id", "transfer_id", "protocol_data"))
_RESPONSE_FIELDS = tuple(_setter(Response, n) for n in ("request_id", "protocol_data"))
_MESSAGE_FIELDS = tuple(_setter(Message, n) for n in ("request_id", "protocol_data"))


def _make_pd(name: str, content_type: int, data: bytes) -> ProtocolData:
    obj: ProtocolData = _new(ProtocolData)
    _PD_NAME(obj, name)
    _PD_TYPE(obj, content_type)
    _PD_DATA(obj, data)
    return obj


def _make_prepare(
    request_id: int,
    transfer_id: str,
    amount: int,
    condition: bytes,
    expires_at: datetime | None,
    pd: tuple[ProtocolData, ...],
) -> Prepare:
    obj: Prepare = _new(Prepare)
    set_rid, set_tid, set_amount, set_condition, set_expires, set_pd = _PREPARE_FIELDS
    set_rid(obj, request_id)
    set_tid(obj, transfer_id)
    set_amount(obj, amount)
    set_condition(obj, condition)
    set_expires(obj, expires_at)
    set_pd(obj, pd)
    return obj


def _make_fulfill(
    request_id: int, transfer_id: str, fulfillment: bytes, pd: tuple[ProtocolData, ...]
) -> Fulfill:
    obj: Fulfill = _new(Fulfill)
    set_rid, set_tid, set_fulfillment, set_pd = _FULFILL_FIELDS
    set_rid(obj, request_id)
    set_tid(obj, transfer_id)
    set_fulfillment(obj, fulfillment)
    set_pd(obj, pd)
    return obj


def _make_reject(request_id: int, transfer_id: str, pd: tuple[ProtocolData, ...]) -> Reject:
    obj: Reject = _new(Reject)
    set_rid, set_tid, set_pd = _REJECT_FIELDS
    set_rid(obj, request_id)
    set_tid(obj, transfer_id)
    set_pd(obj, pd)
    return obj


def _make_response(request_id: int, pd: tuple[ProtocolData, ...]) -> Response:
    obj: Response = _new(Response)
    set_rid, set_pd = _RESPONSE_FIELDS
    set_rid(obj, request_id)
    set_pd(obj, pd)
    return obj


def _make_message(request_id: int, pd: tuple[ProtocolData, ...]) -> Message:
    obj: Message = _new(Message)
    set_rid, set_pd = _MESSAGE_FIELDS
    set_rid(obj, request_id)
    set_pd(obj, pd)
    return obj


def protocol_data_map(pd: Iterable[ProtocolData]) -> dict[str, ProtocolData]:
    """Entries keyed by name; for a repeated name the last entry wins, as in the reference."""
    return {p.protocol_name: p for p in pd}


# --- encoding --------------------------------------------------------------------------------

_HEADER: Final = struct.Struct(">BI")
_U64: Final = struct.Struct(">Q")
_EMPTY_PD: Final = b"\x01\x00"
_TS_PREFIX: Final = b"\x13"
_from_iso: Final = datetime.fromisoformat

# (name, content type) -> encoded name and content-type byte. Side-protocol names form a small
# fixed set in practice; the cap keeps a peer sending random names from growing it.
_ENTRY_HEAD_CACHE: dict[tuple[str, int], bytes] = {}
_ENTRY_HEAD_CACHE_MAX: Final = 512


def _entry_head(name: str, content_type: int) -> bytes:
    key = (name, content_type)
    try:
        head = _ENTRY_HEAD_CACHE.get(key)
    except TypeError:  # unhashable: certainly not a str and an int
        head = None
    if head is not None:
        return head
    if type(name) is not str:
        raise CodecError(f"expected str, got {type(name).__name__}", field="protocolName")
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError:
        raise CodecError(f"{name!r} is not ASCII", field="protocolName") from None
    if not isinstance(content_type, int):
        raise CodecError(f"expected int, got {type(content_type).__name__}", field="contentType")
    if not 0 <= content_type <= 255:
        raise CodecError(f"{content_type} is outside 0..255", field="contentType")
    head = encode_length(len(raw)) + raw + bytes((content_type,))
    if len(_ENTRY_HEAD_CACHE) < _ENTRY_HEAD_CACHE_MAX:
        _ENTRY_HEAD_CACHE[key] = head
    return head


def _encode_pd(pd: Sequence[ProtocolData]) -> bytes:
    if not pd:
        return _EMPTY_PD
    n = len(pd)
    if n < 256:
        parts = [bytes((1, n))]
    else:
        k = (n.bit_length() + 7) >> 3
        parts = [bytes((k,)) + n.to_bytes(k, "big")]
    append = parts.append
    for p in pd:
        try:
            head = _entry_head(p.protocol_name, p.content_type)
            data = p.data
            size = len(data)
        except AttributeError:
            raise CodecError(
                f"expected ProtocolData, got {type(p).__name__}", field="protocolData"
            ) from None
        except TypeError:
            raise CodecError(
                f"data must be bytes, got {type(p.data).__name__}", field="protocolData"
            ) from None
        append(head)
        append(SHORT_LENGTHS[size] if size < 128 else encode_length(size))
        append(data)
    try:
        return b"".join(parts)
    except TypeError:
        raise CodecError("entry data must be bytes", field="protocolData") from None


def _uuid_bytes(transfer_id: str) -> bytes:
    """16 bytes of a lowercase dashed UUID; anything else is refused (one spelling per id)."""
    if (
        type(transfer_id) is str
        and len(transfer_id) == 36
        and transfer_id[8] == "-"
        and transfer_id[13] == "-"
        and transfer_id[18] == "-"
        and transfer_id[23] == "-"
        and transfer_id.lower() == transfer_id
    ):
        try:
            raw = bytes.fromhex(transfer_id.replace("-", ""))
        except ValueError:
            pass
        else:
            if len(raw) == 16:  # fromhex skips whitespace; 16 bytes means 32 hex digits
                return raw
    raise CodecError(f"{transfer_id!r} is not a lowercase dashed UUID", field="transferId")


def _header(packet_type: int, request_id: int) -> bytes:
    if type(request_id) is not int:
        raise CodecError(f"expected int, got {type(request_id).__name__}", field="requestId")
    try:
        return _HEADER.pack(packet_type, request_id)
    except struct.error:
        raise CodecError(f"{request_id} is outside 0..4294967295", field="requestId") from None


def _frame(header: bytes, body: bytes) -> bytes:
    size = len(body)
    return b"".join((header, SHORT_LENGTHS[size] if size < 128 else encode_length(size), body))


def _encode_prepare(p: Prepare) -> bytes:
    header = _header(TYPE_PREPARE, p.request_id)
    tid = _uuid_bytes(p.transfer_id)
    amount = p.amount
    if type(amount) is not int:
        raise CodecError(f"expected int, got {type(amount).__name__}", field="amount")
    try:
        amount_bytes = _U64.pack(amount)
    except struct.error:
        raise CodecError(f"{amount} is outside 0..18446744073709551615", field="amount") from None
    condition = fixed32(p.execution_condition, "executionCondition")
    if p.expires_at is None:
        raise CodecError("a Prepare needs an expiry", field="expiresAt")
    ts = encode_timestamp(p.expires_at, "expiresAt")
    pd = _encode_pd(p.protocol_data)
    size = 76 + len(pd)  # 16 + 8 + 32 + 1 + 19 + PD
    return b"".join(
        (
            header,
            SHORT_LENGTHS[size] if size < 128 else encode_length(size),
            tid,
            amount_bytes,
            condition,
            _TS_PREFIX,
            ts,
            pd,
        )
    )


def _encode_fulfill(p: Fulfill) -> bytes:
    header = _header(TYPE_FULFILL, p.request_id)
    tid = _uuid_bytes(p.transfer_id)
    fulfillment = fixed32(p.fulfillment, "fulfillment")
    pd = _encode_pd(p.protocol_data)
    size = 48 + len(pd)
    return b"".join(
        (header, SHORT_LENGTHS[size] if size < 128 else encode_length(size), tid, fulfillment, pd)
    )


def _encode_reject(p: Reject) -> bytes:
    header = _header(TYPE_REJECT, p.request_id)
    return _frame(header, _uuid_bytes(p.transfer_id) + _encode_pd(p.protocol_data))


def _encode_response(p: Response) -> bytes:
    return _frame(_header(TYPE_RESPONSE, p.request_id), _encode_pd(p.protocol_data))


def _encode_message(p: Message) -> bytes:
    return _frame(_header(TYPE_MESSAGE, p.request_id), _encode_pd(p.protocol_data))


def _encode_error(p: Error) -> bytes:
    header = _header(TYPE_ERROR, p.request_id)
    code = p.code
    if type(code) is not str or len(code) != 3 or not code.isascii():
        raise CodecError(f"{code!r} is not 3 ASCII characters", field="code")
    if type(p.name) is not str or not p.name.isascii():
        raise CodecError(f"{p.name!r} is not ASCII text", field="name")
    if p.triggered_at is None:
        raise CodecError("an Error needs a time", field="triggeredAt")
    if type(p.data) is not str:
        raise CodecError(f"expected str, got {type(p.data).__name__}", field="data")
    try:
        data = p.data.encode("utf-8")
    except UnicodeEncodeError:
        raise CodecError("is not encodable as UTF-8", field="data") from None
    name = p.name.encode("ascii")
    body = b"".join(
        (
            code.encode("ascii"),
            encode_length(len(name)),
            name,
            _TS_PREFIX,
            encode_timestamp(p.triggered_at, "triggeredAt"),
            encode_length(len(data)),
            data,
            _encode_pd(p.protocol_data),
        )
    )
    return _frame(header, body)


_ENCODERS: Final[dict[type, Callable[[Any], bytes]]] = {
    Prepare: _encode_prepare,
    Fulfill: _encode_fulfill,
    Response: _encode_response,
    Message: _encode_message,
    Reject: _encode_reject,
    Error: _encode_error,
}


def encode(packet: Packet) -> bytes:
    """The bytes of one WebSocket binary message carrying ``packet``.

    Raises:
        CodecError: a field that cannot be put on the wire (``field`` names it).
    """
    return encode_with(_ENCODERS, packet, "")


def encode_with(
    encoders: Mapping[type, Callable[[Any], bytes]], packet: object, version: str
) -> bytes:
    """Run the encoder for ``packet``'s class; anything but a CodecError becomes one.

    Shared by the BTP 1.0 and 2.0 codecs, which differ only in their tables of encoders.
    """
    encoder = encoders.get(type(packet))
    if encoder is None:
        raise CodecError(f"cannot encode {type(packet).__name__}{version}", field="type")
    try:
        return encoder(packet)
    except CodecError:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        # A field of the wrong kind that the checks above did not anticipate.
        raise CodecError(str(exc), field="packet") from None


# --- decoding --------------------------------------------------------------------------------


#: Most protocol-data entries one packet may carry. Real peers send a handful (ilp, custom, a
#: side protocol or two); without a cap, one 4 MiB frame of empty entries costs seconds of CPU.
MAX_PROTOCOL_DATA_ENTRIES = 256


def _decode_pd(buf: bytes, pos: int, end: int) -> tuple[ProtocolData, ...]:
    if pos >= end:
        raise underflow("protocolData", 1, 0)
    k = buf[pos]
    pos += 1
    if k == 1 and pos < end:
        count = buf[pos]
        pos += 1
    else:
        if k > MAX_INT_BYTES:
            raise CodecError(f"count of {k} bytes is too large", field="protocolData")
        if pos + k > end:
            raise underflow("protocolData", k, end - pos)
        count = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
    if count == 0:
        return ()
    if count > MAX_PROTOCOL_DATA_ENTRIES:
        raise CodecError(
            f"{count} entries; at most {MAX_PROTOCOL_DATA_ENTRIES} are read", field="protocolData"
        )
    # Each entry takes at least 3 bytes: refuse an impossible count before looping.
    if count * 3 > end - pos:
        raise CodecError(f"{count} entries cannot fit in {end - pos} bytes", field="protocolData")
    entries: list[ProtocolData] = []
    append = entries.append
    for _ in range(count):
        if pos >= end:
            raise underflow("protocolName", 1, 0)
        n = buf[pos]
        if n < 0x80:
            pos += 1
        else:
            n, pos = read_length(buf, pos, end, "protocolName")
        stop = pos + n
        if stop >= end:  # the name and the content-type byte must both fit
            raise underflow("protocolName", n + 1, end - pos)
        raw_name = buf[pos:stop]
        try:
            name = raw_name.decode("ascii")
        except UnicodeDecodeError:
            name = ascii_text(raw_name)
        content_type = buf[stop]
        pos = stop + 1
        if pos >= end:
            raise underflow("protocolData", 1, 0)
        n = buf[pos]
        if n < 0x80:
            pos += 1
        else:
            n, pos = read_length(buf, pos, end, "protocolData")
        stop = pos + n
        if stop > end:
            raise underflow("protocolData", n, end - pos)
        append(_make_pd(name, content_type, buf[pos:stop]))
        pos = stop
    return tuple(entries)


def _uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _read_timestamp(buf: bytes, pos: int, end: int, field: str) -> tuple[datetime | None, int]:
    if pos < end and buf[pos] < 0x80:
        n = buf[pos]
        pos += 1
    else:
        n, pos = read_length(buf, pos, end, field)
    stop = pos + n
    if stop > end:
        raise underflow(field, n, end - pos)
    return decode_timestamp_or_none(buf[pos:stop]), stop


def _read_envelope(buf: bytes) -> tuple[int, int, int, int]:
    """Type, request id, and the start and end of the contents; shared by BTP 1.0 and 2.0."""
    size = len(buf)
    if size < 6:
        raise underflow("envelope", 6, size)
    packet_type, request_id = _HEADER.unpack_from(buf, 0)
    n = buf[5]
    if n < 0x80:
        pos = 6
    else:
        k = n & 0x7F
        if k == 0 or k > MAX_INT_BYTES:
            raise CodecError(f"length prefix of {k} bytes is not allowed", field="length")
        if 6 + k > size:
            raise underflow("length", k, size - 6)
        n = int.from_bytes(buf[6 : 6 + k], "big")
        if n < LONG_FORM_MIN[k]:
            raise CodecError(f"length {n} is not canonical in {k} bytes", field="length")
        pos = 6 + k
    end = pos + n
    if end > size:
        raise CodecError(f"contents claim {n} bytes, {size - pos} present", field="length")
    return packet_type, request_id, pos, end


def decode(frame: bytes | bytearray | memoryview) -> Packet:
    """Parse one BTP frame.

    Raises:
        CodecError: underflow, a non-canonical length, or a type other than 1–6.
    """
    buf = frame if type(frame) is bytes else bytes(frame)
    packet_type, request_id, pos, end = _read_envelope(buf)

    if packet_type == TYPE_PREPARE:
        if end - pos < 56:
            field = "transferId" if end - pos < 16 else "executionCondition"
            raise underflow(field, 56, end - pos)
        h = buf[pos : pos + 16].hex()
        transfer_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        amount: int = _U64.unpack_from(buf, pos + 16)[0]
        condition = buf[pos + 24 : pos + 56]
        pos += 56
        expires_at: datetime | None
        # Inlined fast path for the 19-byte form every implementation writes.
        if pos + 20 <= end and buf[pos] == 19 and buf[pos + 15] == 0x2E and buf[pos + 19] == 0x5A:
            raw_ts = buf[pos + 1 : pos + 20]
            text = raw_ts.decode("latin-1")
            if text[:14].isdecimal() and text[15:18].isdecimal() and text.isascii():
                try:
                    expires_at = _from_iso(f"{text[:8]}T{text[8:]}")
                except ValueError:  # calendar overflow, resolved as V8 does
                    expires_at = decode_timestamp_or_none(raw_ts)
            else:
                expires_at = None
            pos += 20
        else:
            expires_at, pos = _read_timestamp(buf, pos, end, "expiresAt")
        return _make_prepare(
            request_id, transfer_id, amount, condition, expires_at, _decode_pd(buf, pos, end)
        )
    if packet_type == TYPE_FULFILL:
        if end - pos < 48:
            raise underflow("transferId" if end - pos < 16 else "fulfillment", 48, end - pos)
        h = buf[pos : pos + 16].hex()
        return _make_fulfill(
            request_id,
            f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
            buf[pos + 16 : pos + 48],
            ()
            if end - pos >= 50 and buf[pos + 48] == 1 and buf[pos + 49] == 0
            else _decode_pd(buf, pos + 48, end),
        )
    if packet_type == TYPE_RESPONSE:
        return _make_response(
            request_id,
            ()
            if end - pos >= 2 and buf[pos] == 1 and buf[pos + 1] == 0
            else _decode_pd(buf, pos, end),
        )
    if packet_type == TYPE_MESSAGE:
        return _make_message(request_id, _decode_pd(buf, pos, end))
    if packet_type == TYPE_REJECT:
        if end - pos < 16:
            raise underflow("transferId", 16, end - pos)
        return _make_reject(
            request_id, _uuid_text(buf[pos : pos + 16]), _decode_pd(buf, pos + 16, end)
        )
    if packet_type == TYPE_ERROR:
        return _decode_error(buf, pos, end, request_id)
    raise CodecError(f"{packet_type} is not a BTP 1.0 packet type", field="type")


def _decode_error(
    buf: bytes,
    pos: int,
    end: int,
    request_id: int,
    decode_pd: Callable[[bytes, int, int], tuple[ProtocolData, ...]] = _decode_pd,
) -> Error:
    """An Error's fields; BTP 2.0 passes its stricter protocol-data reader as ``decode_pd``."""
    if end - pos < 3:
        raise underflow("code", 3, end - pos)
    code = ascii_text(buf[pos : pos + 3])
    n, pos = read_length(buf, pos + 3, end, "name")
    if pos + n > end:
        raise underflow("name", n, end - pos)
    name = ascii_text(buf[pos : pos + n])
    triggered_at, pos = _read_timestamp(buf, pos + n, end, "triggeredAt")
    n, pos = read_length(buf, pos, end, "data")
    if pos + n > end:
        raise underflow("data", n, end - pos)
    data = buf[pos : pos + n].decode("utf-8", "replace")
    return Error(request_id, code, name, triggered_at, data, decode_pd(buf, pos + n, end))
