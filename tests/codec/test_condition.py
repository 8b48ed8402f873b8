"""Conditions, fulfillments and strict base64url against vectors/conditions.json."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ilp_paychan.codec import CodecError, b64url_decode, b64url_encode
from ilp_paychan.codec.condition import (
    condition_of,
    fulfillment_matches,
    preimage_condition_der,
    preimage_condition_uri,
    preimage_fulfillment_der,
)

from ._vectors import load

DATA = load("conditions.json")
VECTORS: list[dict[str, Any]] = DATA["vectors"]
NEGATIVE: list[dict[str, Any]] = DATA["negative"]


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_condition_vector(v: dict[str, Any]) -> None:
    preimage = bytes.fromhex(v["preimageHex"])
    assert b64url_encode(preimage) == v["fulfillment"]
    assert b64url_decode(v["fulfillment"]) == preimage
    assert condition_of(preimage).hex() == v["conditionHex"]
    assert b64url_encode(condition_of(preimage)) == v["condition"]
    assert fulfillment_matches(preimage, bytes.fromhex(v["conditionHex"]))


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_informative_crypto_condition_encodings(v: dict[str, Any]) -> None:
    preimage = bytes.fromhex(v["preimageHex"])
    cc = v["cryptoConditionPreimageSha256"]
    assert preimage_condition_der(preimage).hex() == cc["conditionDerHex"]
    assert preimage_fulfillment_der(preimage).hex() == cc["fulfillmentDerHex"]
    assert preimage_condition_uri(preimage) == cc["conditionUri"]


@pytest.mark.parametrize("v", NEGATIVE, ids=[v["why"] for v in NEGATIVE])
def test_negative_pairs_do_not_match(v: dict[str, Any]) -> None:
    condition = b64url_decode(v["condition"])
    try:
        fulfillment = b64url_decode(v["fulfillment"])
    except CodecError:
        return  # not base64url at all: refused before hashing
    assert not fulfillment_matches(fulfillment, condition)


def test_short_preimage_whose_hash_matches_is_still_refused() -> None:
    preimage = b"\x01" * 31
    assert not fulfillment_matches(preimage, condition_of(preimage))


@pytest.mark.parametrize(
    "text",
    [
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  # padding
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",  # standard alphabet
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",  # non-zero trailing bits
        "AAAAA",  # impossible length
        "AAAA AAA",
        "Garbage!",
        "Zg==",
    ],
)
def test_strict_decoder_refuses(text: str) -> None:
    with pytest.raises(CodecError) as info:
        b64url_decode(text, field="fulfillment")
    assert info.value.field == "fulfillment"


def test_decoder_refuses_non_text() -> None:
    with pytest.raises(CodecError):
        b64url_decode(b"AAAA")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", range(0, 70))
def test_round_trip_every_length(size: int) -> None:
    data = bytes(range(size))
    text = b64url_encode(data)
    assert "=" not in text
    assert text == base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert b64url_decode(text) == data
