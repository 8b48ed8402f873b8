"""STREAM frames (RFC 29 §5.3): one frozen dataclass per frame type, and their encoding.

A frame on the wire is its type (UInt8) and its contents as a var octet string. Inside the
contents, amounts, offsets and stream ids are var-uints (up to 2^64 - 1), strings are UTF-8 var
octet strings, error codes and the asset scale are UInt8. Decoding follows ilp-protocol-stream
2.7: bytes after a frame's known fields are ignored (room for later versions), a frame type this
version does not know is skipped by the packet decoder, and a ``receiveMax`` or ``sendMax`` too
long for a UInt64 reads as 2^64 - 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Final

from ..codec.errors import CodecError
from ..codec.oer import Reader, encode_length
from ._oer import UINT64_MAX, read_var_uint, read_var_uint_saturating, var_uint
from .errors import StreamCodecError

__all__ = [
    "UINT64_MAX",
    "ConnectionAssetDetailsFrame",
    "ConnectionCloseFrame",
    "ConnectionDataBlockedFrame",
    "ConnectionMaxDataFrame",
    "ConnectionMaxStreamIdFrame",
    "ConnectionNewAddressFrame",
    "ConnectionStreamIdBlockedFrame",
    "ErrorCode",
    "Frame",
    "FrameType",
    "StreamCloseFrame",
    "StreamDataBlockedFrame",
    "StreamDataFrame",
    "StreamMaxDataFrame",
    "StreamMaxMoneyFrame",
    "StreamMoneyBlockedFrame",
    "StreamMoneyFrame",
    "StreamReceiptFrame",
    "encode_frame",
    "read_frame",
]


class FrameType(IntEnum):
    """Frame type ids (RFC 29 §5.3)."""

    CONNECTION_CLOSE = 0x01
    CONNECTION_NEW_ADDRESS = 0x02
    CONNECTION_MAX_DATA = 0x03
    CONNECTION_DATA_BLOCKED = 0x04
    CONNECTION_MAX_STREAM_ID = 0x05
    CONNECTION_STREAM_ID_BLOCKED = 0x06
    CONNECTION_ASSET_DETAILS = 0x07
    STREAM_CLOSE = 0x10
    STREAM_MONEY = 0x11
    STREAM_MAX_MONEY = 0x12
    STREAM_MONEY_BLOCKED = 0x13
    STREAM_DATA = 0x14
    STREAM_MAX_DATA = 0x15
    STREAM_DATA_BLOCKED = 0x16
    STREAM_RECEIPT = 0x17


class ErrorCode(IntEnum):
    """Why a stream or connection was closed (RFC 29 §5.4).

    A decoded close frame carries any UInt8; codes outside this table stay plain ``int``s.
    """

    NO_ERROR = 0x01
    INTERNAL_ERROR = 0x02
    ENDPOINT_BUSY = 0x03
    FLOW_CONTROL_ERROR = 0x04
    STREAM_ID_ERROR = 0x05
    STREAM_STATE_ERROR = 0x06
    FRAME_FORMAT_ERROR = 0x07
    PROTOCOL_VIOLATION = 0x08
    APPLICATION_ERROR = 0x09


_ERROR_CODES: Final = {int(code): code for code in ErrorCode}


@dataclass(frozen=True, slots=True)
class ConnectionCloseFrame:
    """The sender closes the connection, normally (`ErrorCode.NO_ERROR`) or with an error."""

    code: int
    message: str = ""
    TYPE: ClassVar[FrameType] = FrameType.CONNECTION_CLOSE
    NAME: ClassVar[str] = "ConnectionClose"


@dataclass(frozen=True, slots=True)
class ConnectionNewAddressFrame:
    """The sender's ILP address, so the other end can send to it (RFC 29 §4.3.1)."""

    source_account: str
    TYPE: ClassVar[FrameType] = FrameType.CONNECTION_NEW_ADDRESS
    NAME: ClassVar[str] = "ConnectionNewAddress"


@dataclass(frozen=True, slots=True)
class ConnectionMaxDataFrame:
    """Total bytes the sender will receive on the connection."""

    max_offset: int
    TYPE: ClassVar[FrameType] = FrameType.CONNECTION_MAX_DATA
    NAME: ClassVar[str] = "ConnectionMaxData"


@dataclass(frozen=True, slots=True)
class ConnectionDataBlockedFrame:
    """Total bytes the sender wants to send on the connection."""

    max_offset: int
    TYPE: ClassVar[FrameType] = FrameType.CONNECTION_DATA_BLOCKED
    NAME: ClassVar[str] = "ConnectionDataBlocked"


@dataclass(frozen=True, slots=True)
class ConnectionMaxStreamIdFrame:
    """Highest stream id the sender will accept."""

    max_stream_id: int
    TYPE: ClassVar[FrameType] = FrameType.CONNECTION_MAX_STREAM_ID
    NAME: ClassVar[str] = "ConnectionMaxStreamId"


@dataclass(frozen=True, slots=True)
class ConnectionStreamIdBlockedFrame:
    """Highest stream id the sender wants to open."""

    max_stream_id: int
    TYPE: ClassVar[FrameType] = FrameType.CONNECTION_STREAM_ID_BLOCKED
    NAME: ClassVar[str] = "ConnectionStreamIdBlocked"


@dataclass(frozen=True, slots=True)
class ConnectionAssetDetailsFrame:
    """The sender's asset code and scale (RFC 29 §4.3.3)."""

    source_asset_code: str
    source_asset_scale: int
    TYPE: ClassVar[FrameType] = FrameType.CONNECTION_ASSET_DETAILS
    NAME: ClassVar[str] = "ConnectionAssetDetails"


@dataclass(frozen=True, slots=True)
class StreamCloseFrame:
    """The sender closes one stream."""

    stream_id: int
    code: int
    message: str = ""
    TYPE: ClassVar[FrameType] = FrameType.STREAM_CLOSE
    NAME: ClassVar[str] = "StreamClose"


@dataclass(frozen=True, slots=True)
class StreamMoneyFrame:
    """This stream's share of the Prepare amount: ``shares`` over the packet's total shares."""

    stream_id: int
    shares: int
    TYPE: ClassVar[FrameType] = FrameType.STREAM_MONEY
    NAME: ClassVar[str] = "StreamMoney"


@dataclass(frozen=True, slots=True)
class StreamMaxMoneyFrame:
    """How much the sender will receive on a stream, in its own units.

    ``receive_max`` 2^64 - 1 (`UINT64_MAX`) stands for "no limit": ilp-protocol-stream writes
    its ``Infinity`` so, and reads anything longer than a UInt64 as it.
    """

    stream_id: int
    receive_max: int
    total_received: int
    TYPE: ClassVar[FrameType] = FrameType.STREAM_MAX_MONEY
    NAME: ClassVar[str] = "StreamMaxMoney"


@dataclass(frozen=True, slots=True)
class StreamMoneyBlockedFrame:
    """How much the sender wants to send on a stream, and has sent, in its own units."""

    stream_id: int
    send_max: int
    total_sent: int
    TYPE: ClassVar[FrameType] = FrameType.STREAM_MONEY_BLOCKED
    NAME: ClassVar[str] = "StreamMoneyBlocked"


@dataclass(frozen=True, slots=True)
class StreamDataFrame:
    """Bytes of a stream at ``offset``."""

    stream_id: int
    offset: int
    data: bytes
    TYPE: ClassVar[FrameType] = FrameType.STREAM_DATA
    NAME: ClassVar[str] = "StreamData"


@dataclass(frozen=True, slots=True)
class StreamMaxDataFrame:
    """Total bytes the sender will receive on a stream."""

    stream_id: int
    max_offset: int
    TYPE: ClassVar[FrameType] = FrameType.STREAM_MAX_DATA
    NAME: ClassVar[str] = "StreamMaxData"


@dataclass(frozen=True, slots=True)
class StreamDataBlockedFrame:
    """Total bytes the sender wants to send on a stream."""

    stream_id: int
    max_offset: int
    TYPE: ClassVar[FrameType] = FrameType.STREAM_DATA_BLOCKED
    NAME: ClassVar[str] = "StreamDataBlocked"


@dataclass(frozen=True, slots=True)
class StreamReceiptFrame:
    """A receipt (RFC 39) for the total received on a stream; opaque to the STREAM sender."""

    stream_id: int
    receipt: bytes
    TYPE: ClassVar[FrameType] = FrameType.STREAM_RECEIPT
    NAME: ClassVar[str] = "StreamReceipt"


Frame = (
    ConnectionCloseFrame
    | ConnectionNewAddressFrame
    | ConnectionMaxDataFrame
    | ConnectionDataBlockedFrame
    | ConnectionMaxStreamIdFrame
    | ConnectionStreamIdBlockedFrame
    | ConnectionAssetDetailsFrame
    | StreamCloseFrame
    | StreamMoneyFrame
    | StreamMaxMoneyFrame
    | StreamMoneyBlockedFrame
    | StreamDataFrame
    | StreamMaxDataFrame
    | StreamDataBlockedFrame
    | StreamReceiptFrame
)
"""Any frame this version knows."""


# --- encoding ----------------------------------------------------------------------------------


def _uint8(value: object, field: str) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool):
        raise StreamCodecError(f"expected int, got {type(value).__name__}", field=field)
    if not 0 <= value <= 255:
        raise StreamCodecError(f"{value} is outside 0..255", field=field)
    return bytes((value,))


def _uint(value: object, field: str) -> bytes:
    try:
        return var_uint(value, field)
    except CodecError as exc:
        raise StreamCodecError(exc.reason, field=field) from None


def _octets(value: object, field: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise StreamCodecError(f"expected bytes, got {type(value).__name__}", field=field)
    data = bytes(value)
    try:
        return encode_length(len(data)) + data
    except CodecError as exc:
        raise StreamCodecError(exc.reason, field=field) from None


def _text(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise StreamCodecError(f"expected str, got {type(value).__name__}", field=field)
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise StreamCodecError("is not encodable as UTF-8 (lone surrogate)", field=field) from None
    return _octets(raw, field)


def _octets_of(r: Reader, field: str) -> bytes:
    return bytes(r.read_var_octets(field))


def _read_text(r: Reader, field: str) -> str:
    # Node's Buffer.toString() puts U+FFFD for bytes that are not UTF-8; so do we.
    return r.read_var_octets(field).decode("utf-8", "replace")


def _read_code(r: Reader, field: str) -> int:
    value = r.read_uint8(field)
    return _ERROR_CODES.get(value, value)


def _read_uint8(r: Reader, field: str) -> int:
    return r.read_uint8(field)


_Encode = Callable[[object, str], bytes]
_Decode = Callable[[Reader, str], Any]

#: Wire kinds of a frame's fields: how to write one, how to read one back.
_UINT: Final[tuple[_Encode, _Decode]] = (_uint, read_var_uint)
_UINT_SATURATING: Final[tuple[_Encode, _Decode]] = (_uint, read_var_uint_saturating)
_UINT8: Final[tuple[_Encode, _Decode]] = (_uint8, _read_uint8)
_CODE: Final[tuple[_Encode, _Decode]] = (_uint8, _read_code)
_TEXT: Final[tuple[_Encode, _Decode]] = (_text, _read_text)
_OCTETS: Final[tuple[_Encode, _Decode]] = (_octets, _octets_of)

#: Each frame's contents in wire order, which is also its dataclass field order:
#: (attribute, wire name, kind).
_FIELDS: Final[dict[type[Frame], tuple[tuple[str, str, tuple[_Encode, _Decode]], ...]]] = {
    ConnectionCloseFrame: (("code", "errorCode", _CODE), ("message", "errorMessage", _TEXT)),
    ConnectionNewAddressFrame: (("source_account", "sourceAccount", _TEXT),),
    ConnectionMaxDataFrame: (("max_offset", "maxOffset", _UINT),),
    ConnectionDataBlockedFrame: (("max_offset", "maxOffset", _UINT),),
    ConnectionMaxStreamIdFrame: (("max_stream_id", "maxStreamId", _UINT),),
    ConnectionStreamIdBlockedFrame: (("max_stream_id", "maxStreamId", _UINT),),
    ConnectionAssetDetailsFrame: (
        ("source_asset_code", "sourceAssetCode", _TEXT),
        ("source_asset_scale", "sourceAssetScale", _UINT8),
    ),
    StreamCloseFrame: (
        ("stream_id", "streamId", _UINT),
        ("code", "errorCode", _CODE),
        ("message", "errorMessage", _TEXT),
    ),
    StreamMoneyFrame: (("stream_id", "streamId", _UINT), ("shares", "shares", _UINT)),
    StreamMaxMoneyFrame: (
        ("stream_id", "streamId", _UINT),
        ("receive_max", "receiveMax", _UINT_SATURATING),
        ("total_received", "totalReceived", _UINT),
    ),
    StreamMoneyBlockedFrame: (
        ("stream_id", "streamId", _UINT),
        ("send_max", "sendMax", _UINT_SATURATING),
        ("total_sent", "totalSent", _UINT),
    ),
    StreamDataFrame: (
        ("stream_id", "streamId", _UINT),
        ("offset", "offset", _UINT),
        ("data", "data", _OCTETS),
    ),
    StreamMaxDataFrame: (("stream_id", "streamId", _UINT), ("max_offset", "maxOffset", _UINT)),
    StreamDataBlockedFrame: (("stream_id", "streamId", _UINT), ("max_offset", "maxOffset", _UINT)),
    StreamReceiptFrame: (("stream_id", "streamId", _UINT), ("receipt", "receipt", _OCTETS)),
}

#: The same, with each field named as errors name it ("<FrameName>.<wireName>"), for encoding.
_ENCODERS: Final[dict[type[Frame], tuple[tuple[str, str, _Encode], ...]]] = {
    cls: tuple((attr, f"{cls.NAME}.{wire}", kind[0]) for attr, wire, kind in fields)
    for cls, fields in _FIELDS.items()
}


def _contents(frame: Frame) -> bytes:
    fields = _ENCODERS.get(type(frame))
    if fields is None:
        # A subclass of a frame encodes as that frame.
        fields = next((_ENCODERS[base] for base in type(frame).__mro__ if base in _ENCODERS), None)
        if fields is None:
            raise StreamCodecError(f"{type(frame).__name__} is not a STREAM frame", field="frames")
    return b"".join([encode(getattr(frame, attr), field) for attr, field, encode in fields])


def encode_frame(frame: Frame) -> bytes:
    """Type byte, length determinant, contents.

    Raises:
        StreamCodecError: a field out of its range or of the wrong type, named as
            ``"<FrameName>.<field>"``; ``"frames"`` for an object that is no frame.
    """
    try:
        kind = frame.TYPE
    except AttributeError:
        raise StreamCodecError(
            f"{type(frame).__name__} is not a STREAM frame", field="frames"
        ) from None
    body = _contents(frame)
    return bytes((kind,)) + encode_length(len(body)) + body


# --- decoding ----------------------------------------------------------------------------------


def _reader(cls: type[Frame]) -> Callable[[Reader], Frame]:
    # Unrolled by field count: decoding is on every packet's path, and a loop costs a fifth more.
    make: Callable[..., Frame] = cls
    (f0, d0), *rest = [(f"{cls.NAME}.{wire}", kind[1]) for _, wire, kind in _FIELDS[cls]]
    if not rest:
        return lambda r: make(d0(r, f0))
    (f1, d1), *rest = rest
    if not rest:
        return lambda r: make(d0(r, f0), d1(r, f1))
    ((f2, d2),) = rest
    return lambda r: make(d0(r, f0), d1(r, f1), d2(r, f2))


_READERS: Final[dict[int, Callable[[Reader], Frame]]] = {cls.TYPE: _reader(cls) for cls in _FIELDS}


def read_frame(r: Reader) -> Frame | None:
    """Read one frame at the reader's position; None for a type this version does not know.

    Raises:
        CodecError: the frame runs past the packet, or its contents are too short for its fields
            (the packet decoder turns this into `StreamCodecError`).
    """
    kind = r.read_uint8("frames")
    contents = r.read_var_octets("frames")
    read = _READERS.get(kind)
    if read is None:
        return None
    return read(Reader(contents))
