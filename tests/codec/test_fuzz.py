"""Decoders fed arbitrary bytes, truncations, bit flips and rewritten length fields raise only
CodecError; what still decodes re-encodes to the same packet."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzkit.mutate import Mutator, btp_length_offsets
from ilp_paychan.codec import (
    CodecError,
    b64url_decode,
    btp,
    decode_ilp,
    decode_int64,
    encode_ilp,
)
from ilp_paychan.codec.oer import decode_timestamp_or_none

from ._vectors import btp_vectors, load, transcript_files

Decoder = Callable[[bytes], object]


def _btp_seeds() -> list[bytes]:
    seeds = [bytes.fromhex(v["hex"]) for v in btp_vectors()]
    seeds += [bytes.fromhex(c["hex"]) for c in load("btp/decode-edge-cases.json")["cases"]]
    for path in transcript_files()[:3]:
        log = json.loads(path.read_text(encoding="utf-8"))["log"]
        seeds += [bytes.fromhex(e["hex"]) for e in log if e.get("kind") == "frame"]
    return seeds


BTP_SEEDS = _btp_seeds()
ILP_SEEDS = [bytes.fromhex(v["hex"]) for v in load("ilp/ilp-packet-v1.json")["vectors"]]


def _only_codec_error(decoder: Decoder, raw: bytes) -> None:
    with contextlib.suppress(CodecError):  # anything else fails the test
        decoder(raw)


def _truncations(raw: bytes) -> Iterator[bytes]:
    for n in range(len(raw)):
        yield raw[:n]


def _bit_flips(raw: bytes, limit: int = 120) -> Iterator[bytes]:
    # Every bit of the first `limit` bytes: headers, lengths and counts live there.
    for i in range(min(len(raw), limit)):
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[i] ^= 1 << bit
            yield bytes(flipped)


@pytest.mark.parametrize(
    ("decoder", "seeds"), [(btp.decode, BTP_SEEDS), (decode_ilp, ILP_SEEDS)], ids=["btp", "ilp"]
)
def test_every_truncation_raises_only_codec_error(decoder: Decoder, seeds: list[bytes]) -> None:
    for seed in seeds:
        for raw in _truncations(seed):
            _only_codec_error(decoder, raw)


@pytest.mark.parametrize(
    ("decoder", "seeds"), [(btp.decode, BTP_SEEDS), (decode_ilp, ILP_SEEDS)], ids=["btp", "ilp"]
)
def test_every_bit_flip_raises_only_codec_error(decoder: Decoder, seeds: list[bytes]) -> None:
    for seed in seeds:
        for raw in _bit_flips(seed):
            _only_codec_error(decoder, raw)


def test_truncated_frames_never_decode_to_a_packet() -> None:
    # Every vector ends with its protocol data, so any shorter prefix lacks a field.
    for v in btp_vectors():
        raw = bytes.fromhex(v["hex"])
        for n in range(len(raw)):
            with pytest.raises(CodecError):
                btp.decode(raw[:n])


FUZZ = settings(max_examples=200, deadline=None)


@FUZZ
@given(st.binary(max_size=200))
def test_btp_arbitrary_bytes(raw: bytes) -> None:
    _only_codec_error(btp.decode, raw)


@FUZZ
@given(st.integers(1, 6), st.binary(max_size=200))
def test_btp_arbitrary_contents_of_each_type(kind: int, contents: bytes) -> None:
    frame = bytes((kind, 0, 0, 0, 1)) + _length(len(contents)) + contents
    _only_codec_error(btp.decode, frame)


@FUZZ
@given(st.sampled_from(BTP_SEEDS), st.data())
def test_btp_mutated_vectors(seed: bytes, data: Any) -> None:
    raw = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 4))):
        if not raw:
            break
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    _only_codec_error(btp.decode, bytes(raw))


@FUZZ
@given(st.binary(max_size=200))
def test_ilp_arbitrary_bytes(raw: bytes) -> None:
    _only_codec_error(decode_ilp, raw)


@FUZZ
@given(st.integers(0, 12), st.binary(max_size=150))
def test_ilp_arbitrary_contents_of_each_type(kind: int, contents: bytes) -> None:
    _only_codec_error(decode_ilp, bytes((kind,)) + _length(len(contents)) + contents)


@FUZZ
@given(st.binary(max_size=30))
def test_timestamp_arbitrary_bytes_never_raise(raw: bytes) -> None:
    decode_timestamp_or_none(raw)


@FUZZ
@given(st.text(max_size=60))
def test_b64url_arbitrary_text(text: str) -> None:
    _only_codec_error(b64url_decode, text)  # type: ignore[arg-type]


@FUZZ
@given(st.binary(max_size=12))
def test_int64_arbitrary_bytes(raw: bytes) -> None:
    _only_codec_error(decode_int64, raw)


def _length(n: int) -> bytes:
    if n < 128:
        return bytes((n,))
    return bytes((0x81,)) + bytes((n,)) if n < 256 else bytes((0x82,)) + n.to_bytes(2, "big")


def _outcome(raw: bytes) -> object:
    try:
        return btp.decode(raw)
    except CodecError:
        return CodecError


SHORT_FORM_SEEDS = [s for s in BTP_SEEDS if len(s) > 6 and s[5] < 0x80 and len(s) >= 6 + s[5]]


@FUZZ
@given(st.sampled_from(SHORT_FORM_SEEDS), st.integers(0, 60), st.binary(min_size=1, max_size=8))
def test_bytes_after_the_envelope_never_change_the_result(
    seed: bytes, cut: int, trailer: bytes
) -> None:
    size = max(seed[5] - cut, 0)
    shortened = seed[:5] + bytes((size,)) + seed[6 : 6 + size]
    assert _outcome(shortened + trailer) == _outcome(shortened)


# --- length fields and round trips (the mutators of tests/fuzzkit, also run long by tools/fuzz.py)

LENGTH_VARIANTS = (
    b"\x00",
    b"\x01",
    b"\x7f",
    b"\x80",  # long form of zero bytes
    b"\x81\x05",  # long form of a short length: not canonical
    b"\x81\xff",
    b"\x82\x00\x80",  # two bytes for a one-byte length: not canonical
    b"\x82\xff\xff",
    b"\x84\xff\xff\xff\xff",
    b"\x86" + b"\xff" * 6,
    b"\x87" + b"\x01" * 7,  # more length bytes than allowed
    b"\xff",
)


def test_every_length_field_rewritten_raises_only_codec_error() -> None:
    """Each length determinant (and protocol-data count) of every seed, found from the frame
    layout, replaced by each shape the OER rules treat specially; what still decodes must
    re-encode to the same packet."""
    tried = 0
    for seed in BTP_SEEDS:
        for offset in btp_length_offsets(seed):
            first = seed[offset]
            width = 1 if first < 0x80 else 1 + (first & 0x7F)
            for variant in LENGTH_VARIANTS:
                raw = seed[:offset] + variant + seed[offset + width :]
                tried += 1
                try:
                    packet = btp.decode(raw)
                except CodecError:
                    continue
                _assert_round_trip(packet)
    assert tried > 1000


def _assert_round_trip(packet: btp.Packet) -> None:
    try:
        again = btp.encode(packet)
    except CodecError:  # e.g. an unreadable timestamp decodes to None and cannot be written
        return
    assert btp.decode(again) == packet


@FUZZ
@given(st.sampled_from(BTP_SEEDS), st.randoms(use_true_random=False))
def test_mutated_btp_frames_that_decode_re_encode_to_the_same_packet(
    seed: bytes, rng: random.Random
) -> None:
    raw = Mutator(rng, BTP_SEEDS).mutate(seed, btp_frame=True)
    try:
        packet = btp.decode(raw)
    except CodecError:
        return
    _assert_round_trip(packet)


@FUZZ
@given(st.sampled_from(ILP_SEEDS), st.randoms(use_true_random=False))
def test_mutated_ilp_packets_that_decode_re_encode_to_the_same_packet(
    seed: bytes, rng: random.Random
) -> None:
    raw = Mutator(rng, ILP_SEEDS).mutate(seed)
    try:
        packet = decode_ilp(raw)
    except CodecError:
        return
    try:
        again = encode_ilp(packet)
    except CodecError:
        return
    assert decode_ilp(again) == packet
