"""Keys, fulfillments, conditions and encrypted packets as ilp-protocol-stream makes them."""

from __future__ import annotations

from typing import Any

import pytest

from ilp_paychan.stream import (
    ConnectionKeys,
    condition_of,
    decode_packet,
    decrypt,
    decrypt_packet,
    encode_packet,
    encrypt,
    encrypt_packet,
    encryption_key,
    fulfillment_key,
    fulfillment_of,
    shared_secret_from_token,
)
from ilp_paychan.stream.crypto import AUTH_TAG_LENGTH, IV_LENGTH

from ._vectors import load, packet_from_json, packet_to_json

CRYPTO = load("crypto.json")


def _id(v: dict[str, Any]) -> str:
    return str(v["name"])


def _data(v: dict[str, Any]) -> bytes:
    if v["dataHex"] is not None:
        return bytes.fromhex(v["dataHex"])
    pattern = v["dataPattern"]
    return bytes((pattern["start"] + i) & 0xFF for i in range(pattern["length"]))


@pytest.mark.parametrize("vector", CRYPTO["keys"], ids=_id)
def test_derived_keys(vector: dict[str, Any]) -> None:
    secret = bytes.fromhex(vector["sharedSecretHex"])
    assert encryption_key(secret).hex() == vector["encryptionKeyHex"]
    assert fulfillment_key(secret).hex() == vector["fulfillmentKeyHex"]
    keys = ConnectionKeys(secret)
    assert keys.encryption_key.hex() == vector["encryptionKeyHex"]
    assert keys.fulfillment_key.hex() == vector["fulfillmentKeyHex"]


@pytest.mark.parametrize("vector", CRYPTO["fulfillments"], ids=_id)
def test_fulfillment_and_condition(vector: dict[str, Any]) -> None:
    secret = bytes.fromhex(vector["sharedSecretHex"])
    data = _data(vector)
    fulfillment = fulfillment_of(fulfillment_key(secret), data)
    assert fulfillment.hex() == vector["fulfillmentHex"]
    assert condition_of(fulfillment).hex() == vector["conditionHex"]
    keys = ConnectionKeys(secret)
    assert keys.fulfillment(data).hex() == vector["fulfillmentHex"]
    assert keys.condition(data).hex() == vector["conditionHex"]


@pytest.mark.parametrize("vector", CRYPTO["encrypted"], ids=_id)
def test_decrypt_reference_packet(vector: dict[str, Any]) -> None:
    keys = ConnectionKeys(bytes.fromhex(vector["sharedSecretHex"]))
    data = bytes.fromhex(vector["dataHex"])
    plaintext = keys.decrypt(data)
    assert plaintext.startswith(bytes.fromhex(vector["plaintextHex"]))
    assert set(plaintext[len(vector["plaintextHex"]) // 2 :]) <= {0}, "only zero padding after it"
    assert packet_to_json(decrypt_packet(data, keys)) == vector["packet"]
    assert keys.fulfillment(data).hex() == vector["fulfillmentHex"]
    assert keys.condition(data).hex() == vector["conditionHex"]
    if vector["padTo"] is not None:
        assert len(data) == vector["padTo"]


@pytest.mark.parametrize("vector", CRYPTO["encrypted"], ids=_id)
def test_encrypt_like_reference(vector: dict[str, Any]) -> None:
    """AES-GCM is deterministic for one key and IV: with the reference's IV we must produce the
    reference's bytes, which pins the ``IV | tag | ciphertext`` order and the padding."""
    keys = ConnectionKeys(bytes.fromhex(vector["sharedSecretHex"]))
    data = bytes.fromhex(vector["dataHex"])
    packet = packet_from_json(vector["packet"])
    assert encode_packet(packet).hex() == vector["plaintextHex"]
    ours = encrypt_packet(packet, keys, pad_to=vector["padTo"], iv=data[:IV_LENGTH])
    assert ours == data


@pytest.mark.parametrize("vector", CRYPTO["raw"], ids=_id)
def test_raw_envelope(vector: dict[str, Any]) -> None:
    key = bytes.fromhex(vector["keyHex"])
    data = bytes.fromhex(vector["dataHex"])
    plaintext = bytes.fromhex(vector["plaintextHex"])
    assert len(data) == IV_LENGTH + AUTH_TAG_LENGTH + len(plaintext)
    assert decrypt(key, data) == plaintext
    assert encrypt(key, plaintext, iv=data[:IV_LENGTH]) == data


@pytest.mark.parametrize("vector", CRYPTO["sharedSecretsFromTokens"], ids=_id)
def test_shared_secret_from_token(vector: dict[str, Any]) -> None:
    secret = shared_secret_from_token(
        bytes.fromhex(vector["serverSecretHex"]), bytes.fromhex(vector["tokenHex"])
    )
    assert secret.hex() == vector["sharedSecretHex"]


def test_random_ivs_differ_and_decrypt() -> None:
    keys = ConnectionKeys(bytes(32))
    plaintext = encode_packet(decode_packet(bytes.fromhex(CRYPTO["encrypted"][1]["plaintextHex"])))
    first, second = keys.encrypt(plaintext), keys.encrypt(plaintext)
    assert first[:IV_LENGTH] != second[:IV_LENGTH]
    assert keys.decrypt(first) == keys.decrypt(second) == plaintext
