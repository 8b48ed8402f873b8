"""STREAM cryptography: packet encryption, fulfillments and conditions (RFC 29 §5.1 and §6).

Every key is an HMAC-SHA256 of the connection's shared secret and a fixed ASCII string:

- encryption key = HMAC(shared_secret, ``"ilp_stream_encryption"``); packets are AES-256-GCM
  with a random 12-byte IV and a 16-byte tag, laid out as ``IV | tag | ciphertext`` (no
  associated data, no length prefix);
- fulfillment = HMAC(HMAC(shared_secret, ``"ilp_stream_fulfillment"``), the encrypted packet
  carried in the Prepare), condition = SHA-256(fulfillment).

Pure functions (the only side effect is reading the system's random source for IVs), checked
byte for byte against ilp-protocol-stream 2.7.2-alpha.3 (tests/vectors/stream).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptionError, StreamCodecError

__all__ = [
    "AUTH_TAG_LENGTH",
    "ENCRYPTION_KEY_STRING",
    "ENCRYPTION_OVERHEAD",
    "FULFILLMENT_KEY_STRING",
    "IV_LENGTH",
    "KEY_LENGTH",
    "SHARED_SECRET_KEY_STRING",
    "ConnectionKeys",
    "condition_of",
    "decrypt",
    "encrypt",
    "encryption_key",
    "fulfillment_key",
    "fulfillment_of",
    "hmac_sha256",
    "random_condition",
    "shared_secret_from_token",
]

IV_LENGTH: Final = 12
AUTH_TAG_LENGTH: Final = 16
ENCRYPTION_OVERHEAD: Final = IV_LENGTH + AUTH_TAG_LENGTH
"""Bytes an encrypted packet has on top of its plaintext (28)."""
KEY_LENGTH: Final = 32
"""AES-256 key length; also the length of every derived key and fulfillment."""

ENCRYPTION_KEY_STRING: Final = b"ilp_stream_encryption"
FULFILLMENT_KEY_STRING: Final = b"ilp_stream_fulfillment"
SHARED_SECRET_KEY_STRING: Final = b"ilp_stream_shared_secret"
"""ilp-protocol-stream's label for a server's per-connection secrets (not in RFC 29)."""


def _bytes(value: object, field: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise StreamCodecError(f"expected bytes, got {type(value).__name__}", field=field)
    return bytes(value)


def _secret(value: object, field: str) -> bytes:
    secret = _bytes(value, field)
    if not secret:
        raise StreamCodecError("is empty", field=field)
    return secret


def _key(value: object, field: str) -> bytes:
    key = _bytes(value, field)
    if len(key) != KEY_LENGTH:
        raise StreamCodecError(f"must be {KEY_LENGTH} bytes, got {len(key)}", field=field)
    return key


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256, the one key-derivation step STREAM uses."""
    return hmac.digest(key, message, "sha256")


def condition_of(fulfillment: bytes) -> bytes:
    """SHA-256 of the fulfillment: the Prepare's execution condition."""
    return hashlib.sha256(fulfillment).digest()


def encryption_key(shared_secret: bytes) -> bytes:
    """The AES-256-GCM key of a connection (RFC 29 §5.1.2)."""
    return hmac_sha256(_secret(shared_secret, "sharedSecret"), ENCRYPTION_KEY_STRING)


def fulfillment_key(shared_secret: bytes) -> bytes:
    """The HMAC key fulfillments of a connection are made with (RFC 29 §6.2)."""
    return hmac_sha256(_secret(shared_secret, "sharedSecret"), FULFILLMENT_KEY_STRING)


def fulfillment_of(key: bytes, data: bytes) -> bytes:
    """The fulfillment of a Prepare whose ``data`` is this encrypted STREAM packet (RFC 29 §6.3).

    ``key`` is the connection's `fulfillment_key`.
    """
    return hmac_sha256(key, data)


def random_condition() -> bytes:
    """An unfulfillable condition, for a Prepare only meant to be rejected (RFC 29 §6.1)."""
    return os.urandom(32)


def _envelope(aead: AESGCM, plaintext: bytes, iv: bytes | None) -> bytes:
    if iv is None:
        iv = os.urandom(IV_LENGTH)
    else:
        iv = _bytes(iv, "iv")
        if len(iv) != IV_LENGTH:
            raise StreamCodecError(f"must be {IV_LENGTH} bytes, got {len(iv)}", field="iv")
    sealed = aead.encrypt(iv, _bytes(plaintext, "plaintext"), None)  # ciphertext | tag
    return b"".join((iv, sealed[-AUTH_TAG_LENGTH:], sealed[:-AUTH_TAG_LENGTH]))


def _open(aead: AESGCM, data: object, field: str) -> bytes:
    raw = _bytes(data, field)
    if len(raw) < ENCRYPTION_OVERHEAD:
        raise DecryptionError(
            f"{len(raw)} bytes is shorter than the {ENCRYPTION_OVERHEAD}-byte IV and tag",
            field=field,
        )
    try:
        return aead.decrypt(
            raw[:IV_LENGTH], raw[ENCRYPTION_OVERHEAD:] + raw[IV_LENGTH:ENCRYPTION_OVERHEAD], None
        )
    except InvalidTag:
        raise DecryptionError(
            "does not authenticate: encrypted with another key, or altered", field=field
        ) from None


def encrypt(key: bytes, plaintext: bytes, *, iv: bytes | None = None) -> bytes:
    """AES-256-GCM as STREAM lays it out: ``IV (12) | tag (16) | ciphertext``.

    ``iv`` is random unless given; give one only to reproduce a known envelope (tests), since a
    repeated IV under one key breaks GCM.
    """
    return _envelope(AESGCM(_key(key, "encryptionKey")), plaintext, iv)


def decrypt(key: bytes, data: bytes, *, field: str = "data") -> bytes:
    """Inverse of `encrypt`; ``field`` names ``data`` in errors.

    Raises:
        DecryptionError: fewer than 28 bytes, or the tag does not match (wrong key, changed
            bytes, or a truncated tag: unlike Node, a tag shorter than 16 bytes is never
            accepted).
    """
    return _open(AESGCM(_key(key, "encryptionKey")), data, field)


def shared_secret_from_token(server_secret: bytes, token: bytes) -> bytes:
    """The shared secret a server derives for the connection named by ``token``.

    ilp-protocol-stream's construction (RFC 29 §4.1 leaves it to the server):
    HMAC(HMAC(server_secret, ``"ilp_stream_shared_secret"``), token), where ``token`` is the
    raw bytes behind the last address segment (see `stream.address`).
    """
    keygen = hmac_sha256(_secret(server_secret, "serverSecret"), SHARED_SECRET_KEY_STRING)
    return hmac_sha256(keygen, _bytes(token, "token"))


class ConnectionKeys:
    """The keys of one connection, derived once from its shared secret.

    Holds the AES-GCM context so that each packet costs only the cipher itself.
    """

    __slots__ = ("_aead", "encryption_key", "fulfillment_key")

    def __init__(self, shared_secret: bytes) -> None:
        self.encryption_key = encryption_key(shared_secret)
        self.fulfillment_key = fulfillment_key(shared_secret)
        self._aead = AESGCM(self.encryption_key)

    def encrypt(self, plaintext: bytes, *, iv: bytes | None = None) -> bytes:
        """`encrypt` with this connection's key."""
        return _envelope(self._aead, plaintext, iv)

    def decrypt(self, data: bytes) -> bytes:
        """`decrypt` with this connection's key; raises `DecryptionError`."""
        return _open(self._aead, data, "data")

    def fulfillment(self, data: bytes) -> bytes:
        """The fulfillment for a Prepare carrying ``data`` (the encrypted packet)."""
        return hmac_sha256(self.fulfillment_key, data)

    def condition(self, data: bytes) -> bytes:
        """The execution condition for a Prepare carrying ``data``."""
        return condition_of(hmac_sha256(self.fulfillment_key, data))

    def __repr__(self) -> str:
        return "ConnectionKeys(<secret>)"
