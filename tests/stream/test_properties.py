"""Round trips for every frame and packet, encryption that refuses any change, and malformed
input that only ever raises the codec's error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ilp_paychan.stream import (
    UINT64_MAX,
    ConnectionKeys,
    DecryptionError,
    IlpPacketType,
    StreamCodecError,
    StreamPacket,
    decode_packet,
    decrypt_packet,
    encode_packet,
    encrypt_packet,
)
from ilp_paychan.stream import frames as f
from ilp_paychan.stream.crypto import ENCRYPTION_OVERHEAD
from ilp_paychan.stream.frames import encode_frame

EXAMPLES = settings(max_examples=200, deadline=None)
FUZZ = settings(max_examples=500, deadline=None)

_BOUNDARIES = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1, 2**56 - 1]
u64 = st.one_of(
    st.sampled_from([*_BOUNDARIES, 2**56, UINT64_MAX - 1, UINT64_MAX]),
    st.integers(0, 1000),
    st.integers(0, UINT64_MAX),
)
u8 = st.integers(0, 255)
codes = st.one_of(st.sampled_from(list(f.ErrorCode)), u8)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)
blobs = st.binary(max_size=400)

frames: st.SearchStrategy[Any] = st.one_of(
    st.builds(f.ConnectionCloseFrame, codes, text),
    st.builds(f.ConnectionNewAddressFrame, text),
    st.builds(f.ConnectionMaxDataFrame, u64),
    st.builds(f.ConnectionDataBlockedFrame, u64),
    st.builds(f.ConnectionMaxStreamIdFrame, u64),
    st.builds(f.ConnectionStreamIdBlockedFrame, u64),
    st.builds(f.ConnectionAssetDetailsFrame, text, u8),
    st.builds(f.StreamCloseFrame, u64, codes, text),
    st.builds(f.StreamMoneyFrame, u64, u64),
    st.builds(f.StreamMaxMoneyFrame, u64, u64, u64),
    st.builds(f.StreamMoneyBlockedFrame, u64, u64, u64),
    st.builds(f.StreamDataFrame, u64, u64, blobs),
    st.builds(f.StreamMaxDataFrame, u64, u64),
    st.builds(f.StreamDataBlockedFrame, u64, u64),
    st.builds(f.StreamReceiptFrame, u64, blobs),
)
packets = st.builds(
    StreamPacket,
    u64,
    st.sampled_from(list(IlpPacketType)),
    u64,
    st.lists(frames, max_size=8).map(tuple),
)
secrets = st.binary(min_size=1, max_size=64)


@EXAMPLES
@given(frames)
def test_every_frame_round_trips(frame: Any) -> None:
    packet = StreamPacket(1, IlpPacketType.PREPARE, 0, (frame,))
    assert decode_packet(encode_packet(packet)) == packet


@EXAMPLES
@given(packets)
def test_packet_round_trips(packet: StreamPacket) -> None:
    raw = encode_packet(packet)
    decoded = decode_packet(raw)
    assert decoded == packet
    assert encode_packet(decoded) == raw


@EXAMPLES
@given(packets, st.integers(0, 64), st.binary(max_size=20))
def test_zero_padding_and_junk_are_ignored(packet: StreamPacket, zeros: int, junk: bytes) -> None:
    assert decode_packet(encode_packet(packet) + bytes(zeros)) == packet
    assert decode_packet(encode_packet(packet) + junk) == packet


@EXAMPLES
@given(packets, st.data())
def test_unknown_frames_are_skipped(packet: StreamPacket, data: st.DataObject) -> None:
    known = {int(t) for t in f.FrameType}
    unknown_type = data.draw(st.integers(0, 255).filter(lambda t: t not in known))
    contents = data.draw(st.binary(max_size=50))
    where = data.draw(st.integers(0, len(packet.frames)))
    parts = [encode_frame(frame) for frame in packet.frames]
    parts.insert(where, bytes((unknown_type, len(contents))) + contents)
    head = encode_packet(
        StreamPacket(packet.sequence, packet.ilp_packet_type, packet.prepare_amount)
    )
    raw = head[:-2] + bytes((1, len(parts))) + b"".join(parts)
    assert decode_packet(raw) == packet


@EXAMPLES
@given(packets, secrets, st.sampled_from([None, 0, 100]))
def test_encrypted_packet_round_trips(packet: StreamPacket, secret: bytes, pad: int | None) -> None:
    keys = ConnectionKeys(secret)
    plain_size = len(encode_packet(packet)) + ENCRYPTION_OVERHEAD
    pad_to = None if pad is None else plain_size + pad
    data = encrypt_packet(packet, keys, pad_to=pad_to)
    assert len(data) == (plain_size if pad_to is None else pad_to)
    assert decrypt_packet(data, keys) == packet


@EXAMPLES
@given(packets, secrets, st.data())
def test_any_changed_bit_fails_decryption(
    packet: StreamPacket, secret: bytes, data: st.DataObject
) -> None:
    keys = ConnectionKeys(secret)
    sealed = bytearray(encrypt_packet(packet, keys))
    position = data.draw(st.integers(0, len(sealed) - 1))
    sealed[position] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(DecryptionError, match="does not authenticate") as info:
        decrypt_packet(bytes(sealed), keys)
    assert info.value.field == "data"


@EXAMPLES
@given(packets, secrets, st.data())
def test_cut_or_extended_ciphertext_fails(
    packet: StreamPacket, secret: bytes, data: st.DataObject
) -> None:
    keys = ConnectionKeys(secret)
    sealed = encrypt_packet(packet, keys)
    cut = data.draw(st.integers(0, len(sealed) - 1))
    extra = data.draw(st.binary(min_size=1, max_size=16))
    for bad in (sealed[:cut], sealed + extra):
        with pytest.raises(DecryptionError):
            decrypt_packet(bad, keys)


@EXAMPLES
@given(packets, secrets, secrets)
def test_another_secret_fails_decryption(packet: StreamPacket, ours: bytes, theirs: bytes) -> None:
    assume(ours != theirs)
    sealed = encrypt_packet(packet, ConnectionKeys(ours))
    with pytest.raises(DecryptionError):
        decrypt_packet(sealed, ConnectionKeys(theirs))


def _decodes_or_codec_error(raw: bytes) -> StreamPacket | None:
    error: StreamCodecError | None = None
    try:
        packet = decode_packet(raw)
    except StreamCodecError as exc:
        error = exc
    if error is not None:
        assert error.field, "every refusal names a field"
        return None
    # Whatever decodes re-encodes to something that decodes to the same packet.
    assert decode_packet(encode_packet(packet)) == packet
    return packet


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_the_codec_error(raw: bytes) -> None:
    _decodes_or_codec_error(raw)


@FUZZ
@given(st.binary(max_size=60))
def test_random_bytes_after_a_valid_header(tail: bytes) -> None:
    _decodes_or_codec_error(b"\x01\x0c\x01\x01\x01\x00" + tail)


@FUZZ
@given(packets, st.data())
def test_mutated_packets_raise_only_the_codec_error(
    packet: StreamPacket, data: st.DataObject
) -> None:
    raw = bytearray(encode_packet(packet))
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if action == "flip" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif action == "delete" and raw:
            del raw[at]
        elif action == "cut":
            del raw[at:]
    _decodes_or_codec_error(bytes(raw))


@FUZZ
@given(st.binary(max_size=120), secrets)
def test_random_data_never_decrypts(raw: bytes, secret: bytes) -> None:
    with pytest.raises(DecryptionError) as info:
        decrypt_packet(raw, ConnectionKeys(secret))
    assert info.value.field == "data"
