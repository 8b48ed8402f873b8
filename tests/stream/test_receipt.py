"""RFC 39 receipts as ilp-protocol-stream makes and verifies them."""

from __future__ import annotations

from typing import Any

import pytest

from ilp_paychan.stream import StreamCodecError, create_receipt, decode_receipt, verify_receipt

from ._vectors import load

RECEIPTS = load("receipts.json")


def _id(v: dict[str, Any]) -> str:
    return str(v["name"])


@pytest.mark.parametrize("vector", RECEIPTS["created"], ids=_id)
def test_create_and_decode(vector: dict[str, Any]) -> None:
    nonce = bytes.fromhex(vector["nonceHex"])
    secret = bytes.fromhex(vector["secretHex"])
    receipt = create_receipt(nonce, vector["streamId"], int(vector["totalReceived"]), secret)
    assert receipt.hex() == vector["receiptHex"]
    decoded = decode_receipt(receipt)
    expected = vector["decoded"]
    assert decoded.version == expected["version"]
    assert decoded.nonce.hex() == expected["nonceHex"]
    assert decoded.stream_id == expected["streamId"]
    assert decoded.total_received == int(expected["totalReceived"])
    assert decoded.hmac.hex() == expected["hmacHex"]
    assert verify_receipt(receipt, secret) == decoded


@pytest.mark.parametrize("vector", RECEIPTS["verified"], ids=_id)
def test_verify_as_reference(vector: dict[str, Any]) -> None:
    receipt = bytes.fromhex(vector["receiptHex"])
    secret = bytes.fromhex(vector["secretHex"])
    if vector["result"]["ok"]:
        verify_receipt(receipt, secret)
    else:
        with pytest.raises(StreamCodecError) as info:
            verify_receipt(receipt, secret)
        assert info.value.field == "receipt"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((bytes(15), 1, 0, bytes(32)), "receiptNonce"),
        ((bytes(16), 256, 0, bytes(32)), "streamId"),
        ((bytes(16), -1, 0, bytes(32)), "streamId"),
        ((bytes(16), 1, 1 << 64, bytes(32)), "totalReceived"),
        ((bytes(16), 1, "5", bytes(32)), "totalReceived"),
        ((bytes(16), 1, 5, bytes(16)), "receiptSecret"),
    ],
)
def test_create_refuses_bad_arguments(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(StreamCodecError) as info:
        create_receipt(*args)
    assert info.value.field == field
