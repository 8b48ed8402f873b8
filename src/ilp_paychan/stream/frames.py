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
from typing import ClassVar, Final

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


def _contents(frame: Frame) -> bytes:
    n = frame.NAME
    match frame:
        case StreamMoneyFrame(stream_id, shares):
            return _uint(stream_id, f"{n}.streamId") + _uint(shares, f"{n}.shares")
        case StreamMaxMoneyFrame(stream_id, receive_max, total_received):
            return (
                _uint(stream_id, f"{n}.streamId")
                + _uint(receive_max, f"{n}.receiveMax")
                + _uint(total_received, f"{n}.totalReceived")
            )
        case StreamMoneyBlockedFrame(stream_id, send_max, total_sent):
            return (
                _uint(stream_id, f"{n}.streamId")
                + _uint(send_max, f"{n}.sendMax")
                + _uint(total_sent, f"{n}.totalSent")
            )
        case StreamDataFrame(stream_id, offset, data):
            return (
                _uint(stream_id, f"{n}.streamId")
                + _uint(offset, f"{n}.offset")
                + _octets(data, f"{n}.data")
            )
        case StreamMaxDataFrame(stream_id, max_offset) | StreamDataBlockedFrame(
            stream_id, max_offset
        ):
            return _uint(stream_id, f"{n}.streamId") + _uint(max_offset, f"{n}.maxOffset")
        case StreamCloseFrame(stream_id, code, message):
            return (
                _uint(stream_id, f"{n}.streamId")
                + _uint8(code, f"{n}.errorCode")
                + _text(message, f"{n}.errorMessage")
            )
        case StreamReceiptFrame(stream_id, receipt):
            return _uint(stream_id, f"{n}.streamId") + _octets(receipt, f"{n}.receipt")
        case ConnectionCloseFrame(code, message):
            return _uint8(code, f"{n}.errorCode") + _text(message, f"{n}.errorMessage")
        case ConnectionNewAddressFrame(source_account):
            return _text(source_account, f"{n}.sourceAccount")
        case ConnectionMaxDataFrame(value) | ConnectionDataBlockedFrame(value):
            return _uint(value, f"{n}.maxOffset")
        case ConnectionMaxStreamIdFrame(value) | ConnectionStreamIdBlockedFrame(value):
            return _uint(value, f"{n}.maxStreamId")
        case ConnectionAssetDetailsFrame(code, scale):
            return _text(code, f"{n}.sourceAssetCode") + _uint8(scale, f"{n}.sourceAssetScale")
    raise StreamCodecError(f"{type(frame).__name__} is not a STREAM frame", field="frames")


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


def _read_text(r: Reader, field: str) -> str:
    # Node's Buffer.toString() puts U+FFFD for bytes that are not UTF-8; so do we.
    return r.read_var_octets(field).decode("utf-8", "replace")


def _read_code(r: Reader, field: str) -> int:
    value = r.read_uint8(field)
    return _ERROR_CODES.get(value, value)


def _connection_close(r: Reader) -> Frame:
    code = _read_code(r, "ConnectionClose.errorCode")
    return ConnectionCloseFrame(code, _read_text(r, "ConnectionClose.errorMessage"))


def _connection_new_address(r: Reader) -> Frame:
    return ConnectionNewAddressFrame(_read_text(r, "ConnectionNewAddress.sourceAccount"))


def _connection_max_data(r: Reader) -> Frame:
    return ConnectionMaxDataFrame(read_var_uint(r, "ConnectionMaxData.maxOffset"))


def _connection_data_blocked(r: Reader) -> Frame:
    return ConnectionDataBlockedFrame(read_var_uint(r, "ConnectionDataBlocked.maxOffset"))


def _connection_max_stream_id(r: Reader) -> Frame:
    return ConnectionMaxStreamIdFrame(read_var_uint(r, "ConnectionMaxStreamId.maxStreamId"))


def _connection_stream_id_blocked(r: Reader) -> Frame:
    return ConnectionStreamIdBlockedFrame(read_var_uint(r, "ConnectionStreamIdBlocked.maxStreamId"))


def _connection_asset_details(r: Reader) -> Frame:
    code = _read_text(r, "ConnectionAssetDetails.sourceAssetCode")
    scale = r.read_uint8("ConnectionAssetDetails.sourceAssetScale")
    return ConnectionAssetDetailsFrame(code, scale)


def _stream_close(r: Reader) -> Frame:
    stream_id = read_var_uint(r, "StreamClose.streamId")
    code = _read_code(r, "StreamClose.errorCode")
    return StreamCloseFrame(stream_id, code, _read_text(r, "StreamClose.errorMessage"))


def _stream_money(r: Reader) -> Frame:
    stream_id = read_var_uint(r, "StreamMoney.streamId")
    return StreamMoneyFrame(stream_id, read_var_uint(r, "StreamMoney.shares"))


def _stream_max_money(r: Reader) -> Frame:
    stream_id = read_var_uint(r, "StreamMaxMoney.streamId")
    receive_max = read_var_uint_saturating(r, "StreamMaxMoney.receiveMax")
    total = read_var_uint(r, "StreamMaxMoney.totalReceived")
    return StreamMaxMoneyFrame(stream_id, receive_max, total)


def _stream_money_blocked(r: Reader) -> Frame:
    stream_id = read_var_uint(r, "StreamMoneyBlocked.streamId")
    send_max = read_var_uint_saturating(r, "StreamMoneyBlocked.sendMax")
    total = read_var_uint(r, "StreamMoneyBlocked.totalSent")
    return StreamMoneyBlockedFrame(stream_id, send_max, total)


def _stream_data(r: Reader) -> Frame:
    stream_id = read_var_uint(r, "StreamData.streamId")
    offset = read_var_uint(r, "StreamData.offset")
    return StreamDataFrame(stream_id, offset, bytes(r.read_var_octets("StreamData.data")))


def _stream_max_data(r: Reader) -> Frame:
    stream_id = read_var_uint(r, "StreamMaxData.streamId")
    return StreamMaxDataFrame(stream_id, read_var_uint(r, "StreamMaxData.maxOffset"))


def _stream_data_blocked(r: Reader) -> Frame:
    stream_id = read_var_uint(r, "StreamDataBlocked.streamId")
    return StreamDataBlockedFrame(stream_id, read_var_uint(r, "StreamDataBlocked.maxOffset"))


def _stream_receipt(r: Reader) -> Frame:
    stream_id = read_var_uint(r, "StreamReceipt.streamId")
    return StreamReceiptFrame(stream_id, bytes(r.read_var_octets("StreamReceipt.receipt")))


_READERS: Final[dict[int, Callable[[Reader], Frame]]] = {
    FrameType.CONNECTION_CLOSE: _connection_close,
    FrameType.CONNECTION_NEW_ADDRESS: _connection_new_address,
    FrameType.CONNECTION_MAX_DATA: _connection_max_data,
    FrameType.CONNECTION_DATA_BLOCKED: _connection_data_blocked,
    FrameType.CONNECTION_MAX_STREAM_ID: _connection_max_stream_id,
    FrameType.CONNECTION_STREAM_ID_BLOCKED: _connection_stream_id_blocked,
    FrameType.CONNECTION_ASSET_DETAILS: _connection_asset_details,
    FrameType.STREAM_CLOSE: _stream_close,
    FrameType.STREAM_MONEY: _stream_money,
    FrameType.STREAM_MAX_MONEY: _stream_max_money,
    FrameType.STREAM_MONEY_BLOCKED: _stream_money_blocked,
    FrameType.STREAM_DATA: _stream_data,
    FrameType.STREAM_MAX_DATA: _stream_max_data,
    FrameType.STREAM_DATA_BLOCKED: _stream_data_blocked,
    FrameType.STREAM_RECEIPT: _stream_receipt,
}


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
