"""Values that cannot be encoded, keys that cannot be used: `StreamCodecError` naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from ilp_paychan.codec import CodecError
from ilp_paychan.stream import (
    UINT64_MAX,
    ConnectionKeys,
    DecryptionError,
    ErrorCode,
    IlpPacketType,
    StreamCodecError,
    StreamPacket,
    decode_packet,
    decrypt,
    encode_packet,
    encrypt,
    encrypt_packet,
    encryption_key,
)
from ilp_paychan.stream import frames as f

P = IlpPacketType.PREPARE


def _refused(packet: Any, field: str) -> StreamCodecError:
    with pytest.raises(StreamCodecError) as info:
        encode_packet(packet)
    assert info.value.field == field
    assert isinstance(info.value, CodecError)
    assert isinstance(info.value, ValueError)
    return info.value


@pytest.mark.parametrize(
    ("packet", "field"),
    [
        (StreamPacket(-1, P), "sequence"),
        (StreamPacket(UINT64_MAX + 1, P), "sequence"),
        (StreamPacket(True, P), "sequence"),  # type: ignore[arg-type]
        (StreamPacket("1", P), "sequence"),  # type: ignore[arg-type]
        (StreamPacket(1, P, -5), "prepareAmount"),
        (StreamPacket(1, P, 2**64), "prepareAmount"),
        (StreamPacket(1, 11), "ilpPacketType"),  # type: ignore[arg-type]
        (StreamPacket(1, "12"), "ilpPacketType"),  # type: ignore[arg-type]
        (StreamPacket(1, P, 0, 5), "frames"),  # type: ignore[arg-type]
        (StreamPacket(1, P, 0, ("frame",)), "frames"),  # type: ignore[arg-type]
    ],
)
def test_header_fields(packet: Any, field: str) -> None:
    _refused(packet, field)


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (f.ConnectionCloseFrame(256, ""), "ConnectionClose.errorCode"),
        (f.ConnectionCloseFrame(-1, ""), "ConnectionClose.errorCode"),
        (f.ConnectionCloseFrame(1, "\ud800"), "ConnectionClose.errorMessage"),
        (f.ConnectionCloseFrame(1, b"bytes"), "ConnectionClose.errorMessage"),  # type: ignore[arg-type]
        (f.ConnectionNewAddressFrame(None), "ConnectionNewAddress.sourceAccount"),  # type: ignore[arg-type]
        (f.ConnectionMaxDataFrame(-1), "ConnectionMaxData.maxOffset"),
        (f.ConnectionDataBlockedFrame(2**64), "ConnectionDataBlocked.maxOffset"),
        (f.ConnectionMaxStreamIdFrame(1.5), "ConnectionMaxStreamId.maxStreamId"),  # type: ignore[arg-type]
        (f.ConnectionStreamIdBlockedFrame(-2), "ConnectionStreamIdBlocked.maxStreamId"),
        (f.ConnectionAssetDetailsFrame("USD", 256), "ConnectionAssetDetails.sourceAssetScale"),
        (f.ConnectionAssetDetailsFrame("\udfff", 2), "ConnectionAssetDetails.sourceAssetCode"),
        (f.StreamCloseFrame(-1, 1, ""), "StreamClose.streamId"),
        (f.StreamCloseFrame(1, 300, ""), "StreamClose.errorCode"),
        (f.StreamMoneyFrame(1, -1), "StreamMoney.shares"),
        (f.StreamMaxMoneyFrame(1, UINT64_MAX + 1, 0), "StreamMaxMoney.receiveMax"),
        (f.StreamMaxMoneyFrame(1, 0, -1), "StreamMaxMoney.totalReceived"),
        (f.StreamMoneyBlockedFrame(1, -1, 0), "StreamMoneyBlocked.sendMax"),
        (f.StreamMoneyBlockedFrame(1, 0, 2**70), "StreamMoneyBlocked.totalSent"),
        (f.StreamDataFrame(1, -1, b""), "StreamData.offset"),
        (f.StreamDataFrame(1, 0, "text"), "StreamData.data"),  # type: ignore[arg-type]
        (f.StreamMaxDataFrame(2**64, 0), "StreamMaxData.streamId"),
        (f.StreamDataBlockedFrame(1, -1), "StreamDataBlocked.maxOffset"),
        (f.StreamReceiptFrame(1, None), "StreamReceipt.receipt"),  # type: ignore[arg-type]
    ],
)
def test_frame_fields(frame: Any, field: str) -> None:
    error = _refused(StreamPacket(1, P, 0, (frame,)), field)
    assert str(error).startswith(field + ": ")


def test_error_codes_and_bytes_like_values_are_accepted() -> None:
    packet = StreamPacket(
        1,
        P,
        0,
        (
            f.ConnectionCloseFrame(ErrorCode.APPLICATION_ERROR, "x"),
            f.StreamDataFrame(1, 0, bytearray(b"ab")),  # type: ignore[arg-type]
            f.StreamReceiptFrame(1, memoryview(b"cd")),  # type: ignore[arg-type]
        ),
    )
    decoded = decode_packet(encode_packet(packet))
    assert decoded.frames[0] == f.ConnectionCloseFrame(9, "x")
    assert decoded.frames[1] == f.StreamDataFrame(1, 0, b"ab")
    assert decoded.frames[2] == f.StreamReceiptFrame(1, b"cd")


def test_decoded_error_codes_keep_unknown_values() -> None:
    packet = decode_packet(
        encode_packet(
            StreamPacket(1, P, 0, (f.StreamCloseFrame(1, 200, ""), f.StreamCloseFrame(1, 4, "")))
        )
    )
    first, second = packet.frames
    assert isinstance(first, f.StreamCloseFrame)
    assert isinstance(second, f.StreamCloseFrame)
    assert first.code == 200
    assert type(first.code) is int
    assert second.code is ErrorCode.FLOW_CONTROL_ERROR


def test_pad_to_must_fit_the_packet() -> None:
    keys = ConnectionKeys(bytes(32))
    packet = StreamPacket(1, P, 0, (f.StreamMoneyFrame(1, 1),))
    size = len(encode_packet(packet)) + 28
    assert len(encrypt_packet(packet, keys, pad_to=size)) == size
    with pytest.raises(StreamCodecError) as info:
        encrypt_packet(packet, keys, pad_to=size - 1)
    assert info.value.field == "padTo"
    with pytest.raises(StreamCodecError):
        encrypt_packet(packet, keys, pad_to="100")  # type: ignore[arg-type]


def test_key_and_iv_checks() -> None:
    with pytest.raises(StreamCodecError) as info:
        encrypt(bytes(16), b"x")  # AES-128 is not STREAM's cipher
    assert info.value.field == "encryptionKey"
    with pytest.raises(StreamCodecError) as info:
        encrypt(bytes(32), b"x", iv=bytes(16))
    assert info.value.field == "iv"
    with pytest.raises(StreamCodecError) as info:
        encrypt(bytes(32), "text")  # type: ignore[arg-type]
    assert info.value.field == "plaintext"
    with pytest.raises(StreamCodecError) as info:
        encryption_key(b"")
    assert info.value.field == "sharedSecret"
    with pytest.raises(StreamCodecError) as info:
        ConnectionKeys("secret")  # type: ignore[arg-type]
    assert info.value.field == "sharedSecret"
    assert "secret" not in repr(ConnectionKeys(b"secret")).lower().replace("<secret>", "")


@pytest.mark.parametrize("size", [0, 1, 12, 27])
def test_too_short_to_decrypt(size: int) -> None:
    with pytest.raises(DecryptionError) as info:
        decrypt(bytes(32), bytes(size))
    assert "shorter than the 28-byte" in str(info.value)


def test_truncated_tag_is_refused() -> None:
    """Node accepts a GCM tag shorter than 16 bytes when decrypting; we never do."""
    key = bytes(32)
    sealed = encrypt(key, b"")
    assert len(sealed) == 28
    with pytest.raises(DecryptionError):
        decrypt(key, sealed[:-4])


def test_decode_refuses_what_is_not_bytes() -> None:
    with pytest.raises(StreamCodecError) as info:
        decode_packet("01 0c")  # type: ignore[arg-type]
    assert info.value.field == "packet"
    with pytest.raises(StreamCodecError) as info:
        decrypt(bytes(32), None)  # type: ignore[arg-type]
    assert info.value.field == "data"
