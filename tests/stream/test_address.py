"""Server connection addresses and shared secrets: the reference's tokens open with our code, and
ours behave the same way."""

from __future__ import annotations

import os
from typing import Any

import pytest

from ilp_paychan.stream import (
    ConnectionToken,
    DecryptionError,
    StreamCodecError,
    connection_id_of,
    encrypt,
    generate_address_and_secret,
    open_token,
    seal_token,
    shared_secret_from_token,
    token_of,
)
from ilp_paychan.stream.address import MAX_ADDRESS_LENGTH
from ilp_paychan.stream.crypto import IV_LENGTH

from ._vectors import load

TOKENS = load("tokens.json")
SERVER_SECRET = bytes.fromhex(TOKENS["serverSecretHex"])
SERVER_ADDRESS = TOKENS["serverAddress"]


def _id(v: dict[str, Any]) -> str:
    return str(v["name"])


@pytest.mark.parametrize("vector", TOKENS["vectors"], ids=_id)
def test_reference_address_opens(vector: dict[str, Any]) -> None:
    connection_id = connection_id_of(SERVER_ADDRESS, vector["destinationAccount"])
    assert connection_id is not None
    token = token_of(connection_id)
    assert shared_secret_from_token(SERVER_SECRET, token).hex() == vector["sharedSecretHex"]

    opened = open_token(SERVER_SECRET, token)
    options = vector["options"] or {}
    assert opened.connection_tag == (options.get("connectionTag") or None)
    nonce_hex = options.get("receiptNonceHex")
    secret_hex = options.get("receiptSecretHex")
    assert opened.receipt_nonce == (bytes.fromhex(nonce_hex) if nonce_hex else None)
    assert opened.receipt_secret == (bytes.fromhex(secret_hex) if secret_hex else None)
    assert vector["receiptsEnabled"] == (opened.receipt_nonce is not None)

    # Sealing the same fields with the same IV gives the reference's token, byte for byte.
    assert seal_token(SERVER_SECRET, opened, iv=token[:IV_LENGTH]) == token


def test_generated_address_opens_to_what_went_in() -> None:
    server_secret = os.urandom(32)
    nonce, receipt_secret = os.urandom(16), os.urandom(32)
    address, secret = generate_address_and_secret(
        server_secret,
        "g.server",
        connection_tag="order-7",
        receipt_nonce=nonce,
        receipt_secret=receipt_secret,
    )
    connection_id = connection_id_of("g.server", address + ".extra.segments")
    assert connection_id is not None
    assert address == "g.server." + connection_id
    token = token_of(connection_id)
    assert shared_secret_from_token(server_secret, token) == secret
    opened = open_token(server_secret, token)
    assert (opened.connection_tag, opened.receipt_nonce, opened.receipt_secret) == (
        "order-7",
        nonce,
        receipt_secret,
    )
    assert "receipt_secret" not in repr(opened)


def test_every_address_and_secret_is_new() -> None:
    server_secret = os.urandom(32)
    pairs = [generate_address_and_secret(server_secret, "g.s") for _ in range(50)]
    assert len({a for a, _ in pairs}) == 50
    assert len({s for _, s in pairs}) == 50
    assert all(
        open_token(server_secret, token_of(a.split(".")[-1])).connection_tag is None
        for a, _ in pairs
    )


def test_empty_tag_is_no_tag() -> None:
    server_secret = os.urandom(32)
    address, _ = generate_address_and_secret(server_secret, "g.s", connection_tag="")
    assert open_token(server_secret, token_of(address.split(".")[-1])).connection_tag is None


def test_another_server_secret_cannot_open_the_token() -> None:
    address, _ = generate_address_and_secret(os.urandom(32), "g.s")
    with pytest.raises(DecryptionError) as info:
        open_token(os.urandom(32), token_of(address.split(".")[-1]))
    assert info.value.field == "token"


def test_altered_token_is_refused() -> None:
    server_secret = os.urandom(32)
    address, _ = generate_address_and_secret(server_secret, "g.s", connection_tag="t")
    token = bytearray(token_of(address.split(".")[-1]))
    for i in range(len(token)):
        token[i] ^= 0x01
        with pytest.raises(DecryptionError):
            open_token(server_secret, bytes(token))
        token[i] ^= 0x01
    with pytest.raises(DecryptionError):
        open_token(server_secret, bytes(token[:27]))


def test_sealed_but_malformed_token_is_a_codec_error() -> None:
    server_secret = os.urandom(32)
    for plaintext, field in [
        (b"short", "tokenNonce"),
        (bytes(18), "connectionTag"),
        (bytes(18) + b"\x00\x05abc", "receiptNonce"),
        (bytes(18) + b"\x00\x00", "receiptSecret"),
        (bytes(18) + b"\x00" + b"\x03abc" + b"\x00", "receiptNonce"),
        (bytes(18) + b"\x00\x10" + bytes(16) + b"\x00", "receiptNonce"),
        (bytes(18) + b"\x00\x00\x05" + bytes(5), "receiptSecret"),
    ]:
        with pytest.raises(StreamCodecError) as info:
            open_token(server_secret, encrypt(server_secret, plaintext))
        assert info.value.field == field, plaintext
        assert not isinstance(info.value, DecryptionError)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"connection_tag": "café"}, "connectionTag"),
        ({"receipt_nonce": bytes(16)}, "receiptNonce"),
        ({"receipt_secret": bytes(32)}, "receiptNonce"),
        ({"receipt_nonce": bytes(15), "receipt_secret": bytes(32)}, "receiptNonce"),
        ({"receipt_nonce": bytes(16), "receipt_secret": bytes(31)}, "receiptSecret"),
        ({"connection_tag": "x" * 1000}, "destinationAccount"),
    ],
)
def test_bad_options_are_named(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(StreamCodecError) as info:
        generate_address_and_secret(os.urandom(32), "g.s", **kwargs)
    assert info.value.field == field


@pytest.mark.parametrize("server_secret", [b"", bytes(16), bytes(33), "x" * 32])
def test_server_secret_must_be_32_bytes(server_secret: Any) -> None:
    with pytest.raises(StreamCodecError) as info:
        generate_address_and_secret(server_secret, "g.s")
    assert info.value.field == "serverSecret"


def test_longest_tag_that_fits() -> None:
    server_secret = os.urandom(32)
    tag = "t" * 700
    address, _ = generate_address_and_secret(server_secret, "g.s", connection_tag=tag)
    assert len(address) <= MAX_ADDRESS_LENGTH
    assert open_token(server_secret, token_of(address[len("g.s.") :])).connection_tag == tag


def test_token_nonce_must_be_18_bytes() -> None:
    with pytest.raises(StreamCodecError) as info:
        seal_token(os.urandom(32), ConnectionToken(bytes(17)))
    assert info.value.field == "tokenNonce"


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("g.s.abc", "abc"),
        ("g.s.abc.def", "abc"),
        ("g.s.", None),
        ("g.s..x", None),
        ("g.s", None),
        ("g.sx.abc", None),
        ("g.other.g.s.abc", None),
    ],
)
def test_connection_id_of(destination: str, expected: str | None) -> None:
    assert connection_id_of("g.s", destination) == expected


@pytest.mark.parametrize("connection_id", ["ab+c", "abc=", "a", "ab.c", "é"])
def test_token_of_refuses_what_is_not_base64url(connection_id: str) -> None:
    with pytest.raises(StreamCodecError) as info:
        token_of(connection_id)
    assert info.value.field == "connectionId"
