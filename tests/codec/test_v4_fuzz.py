"""The ILPv4, ILDCP, BTP 2.0 and transitional decoders fed truncations, bit flips, arbitrary bytes
and the mutations of tests/fuzzkit raise only CodecError; what still decodes re-encodes to the
same packet. Deterministic: fixed seeds, bounded loops."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzkit.mutate import Mutator, btp_length_offsets
from ilp_paychan.codec import CodecError, btp2, ildcp, ilp4, ilp_compat

from ._vectors_v4 import load

Decoder = Callable[[bytes], Any]
Encoder = Callable[[Any], bytes]


def _seeds() -> dict[str, list[bytes]]:
    edge = load("decode-edge-cases.json")["cases"]
    ildcp_doc = load("ildcp.json")
    ilp_seeds = [bytes.fromhex(v["hex"]) for v in load("ilp-packet.json")["vectors"]]
    ilp_seeds += [bytes.fromhex(v["hex"]) for v in load("ilp-errors.json")["vectors"]]
    ilp_seeds += [bytes.fromhex(c["hex"]) for c in edge if c["kind"] == "ilp-packet"]
    btp_seeds = [bytes.fromhex(v["hex"]) for v in load("btp.json")["vectors"]]
    btp_seeds += [bytes.fromhex(c["hex"]) for c in edge if c["kind"] == "btp"]
    compat_seeds = [bytes.fromhex(v["hex"]) for v in load("ilp-compat.json")["vectors"]]
    compat_seeds += [bytes.fromhex(c["hex"]) for c in edge if c["kind"] == "ilp-compat"]
    ildcp_seeds = [bytes.fromhex(v["hex"]) for v in ildcp_doc["responses"]]
    ildcp_seeds += [bytes.fromhex(v["hex"]) for v in ildcp_doc["decodeCases"]]
    ildcp_seeds += [bytes.fromhex(v["hex"]) for v in ildcp_doc["requests"]]
    # Big frames make each mutation slow without reaching new code: keep the small ones.
    return {
        "ilp4": [s for s in ilp_seeds if len(s) < 4096],
        "btp2": [s for s in btp_seeds if len(s) < 4096],
        "compat": compat_seeds,
        "ildcp": ildcp_seeds,
    }


SEEDS = _seeds()


def _round_trip(decoder: Decoder, encoder: Encoder, raw: bytes) -> None:
    """Decoding raises only CodecError; a decoded packet encodes and decodes to itself."""
    try:
        packet = decoder(raw)
    except CodecError:
        return
    try:
        again = encoder(packet)
    except CodecError as exc:
        refused = exc.field
    else:
        assert decoder(again) == packet
        return
    # Only what may be read but not written: ILPv4 data or messages longer than RFC 27 allows,
    # a BTP Error whose time JavaScript would call Invalid Date.
    assert refused in ("data", "message", "triggeredAt")


def _ildcp_response(raw: bytes) -> ildcp.IldcpResponse:
    return ildcp.decode_response(raw)


CODECS: dict[str, tuple[Decoder, Encoder]] = {
    "ilp4": (ilp4.decode, ilp4.encode),
    "btp2": (btp2.decode, btp2.encode),
    "compat": (ilp_compat.decode_compat, ilp_compat.encode_compat),
    "ildcp": (_ildcp_response, ildcp.encode_response),
}


def _truncations(raw: bytes) -> Iterator[bytes]:
    for n in range(len(raw)):
        yield raw[:n]


def _bit_flips(raw: bytes, limit: int = 96) -> Iterator[bytes]:
    for i in range(min(len(raw), limit)):
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[i] ^= 1 << bit
            yield bytes(flipped)


@pytest.mark.parametrize("name", list(CODECS))
def test_every_truncation_raises_only_codec_error(name: str) -> None:
    decoder, encoder = CODECS[name]
    for seed in SEEDS[name]:
        for raw in _truncations(seed):
            _round_trip(decoder, encoder, raw)


def test_every_strict_prefix_of_an_ilpv4_packet_is_refused() -> None:
    # The envelope's length covers the whole packet, so no prefix can be a packet.
    for v in load("ilp-packet.json")["vectors"][:20]:
        raw = bytes.fromhex(v["hex"])
        for cut in _truncations(raw):
            with pytest.raises(CodecError):
                ilp4.decode(cut)


@pytest.mark.parametrize("name", list(CODECS))
def test_every_bit_flip_raises_only_codec_error(name: str) -> None:
    decoder, encoder = CODECS[name]
    for seed in SEEDS[name]:
        for raw in _bit_flips(seed):
            _round_trip(decoder, encoder, raw)


@pytest.mark.parametrize("name", list(CODECS))
def test_fuzzkit_mutations_raise_only_codec_error(name: str) -> None:
    decoder, encoder = CODECS[name]
    pool = SEEDS[name]
    mutator = Mutator(random.Random(f"v4-{name}"), pool)
    rng = random.Random(f"v4-seeds-{name}")
    for _ in range(3000):
        raw = mutator.mutate(rng.choice(pool), btp_frame=name == "btp2")
        _round_trip(decoder, encoder, raw)


LENGTH_VARIANTS = (
    b"\x00",
    b"\x7f",
    b"\x80",
    b"\x81\x05",
    b"\x82\x00\x80",
    b"\x84\xff\xff\xff\xff",
    b"\x87" + b"\x01" * 7,
    b"\xff",
)


def test_btp2_every_length_field_rewritten() -> None:
    tried = 0
    for seed in SEEDS["btp2"]:
        for offset in btp_length_offsets(seed):
            first = seed[offset]
            width = 1 if first < 0x80 else 1 + (first & 0x7F)
            for variant in LENGTH_VARIANTS:
                raw = seed[:offset] + variant + seed[offset + width :]
                _round_trip(btp2.decode, btp2.encode, raw)
                tried += 1
    assert tried > 500


FUZZ = settings(max_examples=200, deadline=None)


def _length(n: int) -> bytes:
    if n < 128:
        return bytes((n,))
    return bytes((0x81, n)) if n < 256 else bytes((0x82,)) + n.to_bytes(2, "big")


@FUZZ
@given(st.sampled_from(list(CODECS)), st.binary(max_size=200))
def test_arbitrary_bytes(name: str, raw: bytes) -> None:
    decoder, encoder = CODECS[name]
    _round_trip(decoder, encoder, raw)


@FUZZ
@given(st.integers(9, 14), st.binary(max_size=150))
def test_arbitrary_ilp_contents_of_each_type(kind: int, contents: bytes) -> None:
    raw = bytes((kind,)) + _length(len(contents)) + contents
    _round_trip(ilp4.decode, ilp4.encode, raw)
    _round_trip(ilp_compat.decode_compat, ilp_compat.encode_compat, raw)
    with contextlib.suppress(CodecError):
        ildcp.decode_request(raw)


@FUZZ
@given(st.sampled_from([1, 2, 3, 6, 7]), st.binary(max_size=200))
def test_arbitrary_btp2_contents_of_each_type(kind: int, contents: bytes) -> None:
    frame = bytes((kind, 0, 0, 0, 1)) + _length(len(contents)) + contents
    _round_trip(btp2.decode, btp2.encode, frame)
