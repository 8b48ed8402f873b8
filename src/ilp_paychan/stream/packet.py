"""The STREAM packet (RFC 29 §5.2): header, frames, and its encrypted form.

Plaintext layout: version (UInt8, 1), ILP packet type (UInt8: 12, 13 or 14), sequence
(var-uint), prepare amount (var-uint), frame count (var-uint), the frames, then junk that is
ignored (zero padding, or fields of a later version). The encrypted form is what travels as the
``data`` of an ILP Prepare, Fulfill or Reject (see `stream.crypto`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from ..codec.errors import CodecError
from ..codec.oer import Reader
from ._oer import read_count, read_var_uint, var_uint
from .crypto import ENCRYPTION_OVERHEAD, ConnectionKeys
from .errors import StreamCodecError
from .frames import Frame, encode_frame, read_frame

__all__ = [
    "MAX_DATA_SIZE",
    "VERSION",
    "IlpPacketType",
    "StreamPacket",
    "decode_packet",
    "decrypt_packet",
    "encode_packet",
    "encrypt_packet",
]

VERSION: Final = 1
MAX_DATA_SIZE: Final = 32767
"""The most ``data`` an ILPv4 packet carries (RFC 27); the limit of an encrypted STREAM packet."""


class IlpPacketType(IntEnum):
    """The ILPv4 packet a STREAM packet must travel in (RFC 29 §5.2)."""

    PREPARE = 12
    FULFILL = 13
    REJECT = 14


_TYPES: Final = {int(t): t for t in IlpPacketType}


@dataclass(frozen=True, slots=True)
class StreamPacket:
    """One STREAM packet before encryption.

    Attributes:
        sequence: the sender's packet counter; a reply repeats the Prepare's.
        ilp_packet_type: the ILP packet this must travel in; a receiver discards it in any other.
        prepare_amount: on a Prepare, the least the receiver may accept; on a Fulfill or Reject,
            what the receiver got.
        frames: in order; frames of types this version does not know are dropped when decoding.
    """

    sequence: int
    ilp_packet_type: IlpPacketType
    prepare_amount: int = 0
    frames: tuple[Frame, ...] = ()


def encode_packet(packet: StreamPacket) -> bytes:
    """The plaintext bytes of a packet, exactly as ilp-protocol-stream writes them.

    Raises:
        StreamCodecError: a field out of range or of the wrong type, named (``"sequence"``,
            ``"prepareAmount"``, ``"StreamMoney.shares"``…).
    """
    kind = packet.ilp_packet_type
    if not isinstance(kind, int) or isinstance(kind, bool) or kind not in _TYPES:
        raise StreamCodecError(f"{kind!r} is not 12, 13 or 14", field="ilpPacketType")
    try:
        head = bytes((VERSION, kind)) + var_uint(packet.sequence, "sequence")
        head += var_uint(packet.prepare_amount, "prepareAmount")
        frames = packet.frames
        head += var_uint(len(frames), "frames")
    except CodecError as exc:
        raise StreamCodecError(exc.reason, field=exc.field) from None
    except TypeError:
        raise StreamCodecError(
            f"expected a sequence of frames, got {type(packet.frames).__name__}", field="frames"
        ) from None
    return b"".join((head, *(encode_frame(f) for f in frames)))


def decode_packet(raw: bytes) -> StreamPacket:
    """Read a plaintext packet; trailing bytes after the frames are ignored (RFC 29 §5.2).

    Raises:
        StreamCodecError: a version other than 1, an ILP packet type other than 12–14, a field
            cut short or too large, fewer frames than the count says, or a known frame whose
            contents are malformed (the field names the frame and field).
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise StreamCodecError(f"expected bytes, got {type(raw).__name__}", field="packet")
    r = Reader(bytes(raw))
    try:
        version = r.read_uint8("version")
        if version != VERSION:
            raise StreamCodecError(f"unsupported STREAM version {version}", field="version")
        kind = r.read_uint8("ilpPacketType")
        packet_type = _TYPES.get(kind)
        if packet_type is None:
            raise StreamCodecError(f"{kind} is not 12, 13 or 14", field="ilpPacketType")
        sequence = read_var_uint(r, "sequence")
        amount = read_var_uint(r, "prepareAmount")
        count = read_count(r, "frames")
        frames: list[Frame] = []
        # Each frame takes at least two bytes, so a count larger than the packet fails early.
        for _ in range(count):
            frame = read_frame(r)
            if frame is not None:
                frames.append(frame)
    except StreamCodecError:
        raise
    except CodecError as exc:
        raise StreamCodecError(exc.reason, field=exc.field) from None
    return StreamPacket(sequence, packet_type, amount, tuple(frames))


def encrypt_packet(
    packet: StreamPacket,
    keys: ConnectionKeys,
    *,
    pad_to: int | None = None,
    iv: bytes | None = None,
) -> bytes:
    """Encode and encrypt a packet: the ``data`` of the ILP packet that carries it.

    ``pad_to`` appends zero bytes to the plaintext so that the encrypted result is exactly that
    many bytes (ilp-protocol-stream's ``enablePadding`` pads to `MAX_DATA_SIZE`), hiding the
    packet's real size. ``iv`` is for reproducing known vectors only.

    Raises:
        StreamCodecError: as `encode_packet`, or ``padTo`` smaller than the packet needs.
    """
    plaintext = encode_packet(packet)
    if pad_to is not None:
        if not isinstance(pad_to, int) or isinstance(pad_to, bool):
            raise StreamCodecError(f"expected int, got {type(pad_to).__name__}", field="padTo")
        missing = pad_to - ENCRYPTION_OVERHEAD - len(plaintext)
        if missing < 0:
            raise StreamCodecError(
                f"{pad_to} bytes cannot hold this packet "
                f"({len(plaintext) + ENCRYPTION_OVERHEAD} bytes encrypted)",
                field="padTo",
            )
        plaintext += bytes(missing)
    return keys.encrypt(plaintext, iv=iv)


def decrypt_packet(data: bytes, keys: ConnectionKeys) -> StreamPacket:
    """Decrypt and decode the ``data`` of an ILP packet.

    Raises:
        DecryptionError: the data does not authenticate under this connection's key.
        StreamCodecError: it does, but the plaintext is not a STREAM packet.
    """
    return decode_packet(keys.decrypt(data))
