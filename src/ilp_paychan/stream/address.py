"""A STREAM server's connection addresses and shared secrets, all derived from one server secret.

RFC 29 §4.1 lets a server derive each connection's secret from a single server secret and a
nonce in the address it hands out, so that it stores nothing per connection. This module does it
the way ilp-protocol-stream 2.7 does, so either implementation's server can be swapped in:

1. a token plaintext: 18 random bytes, then three var octet strings: the connection tag (ASCII,
   may be empty), the receipt nonce (empty or 16 bytes) and the receipt secret (empty or 32
   bytes; RFC 39 wants it encrypted when it rides in the address);
2. the token: that plaintext under AES-256-GCM with the server secret itself as the key, in the
   same ``IV | tag | ciphertext`` envelope as packets;
3. the address: the server's ILP address, ``"."``, and the token in base64url without padding;
4. the shared secret: HMAC(HMAC(server_secret, ``"ilp_stream_shared_secret"``), token).

A Prepare for ``<server address>.<token>[.more]`` names its connection by the first segment after
the server's address; the server recomputes the secret from it and opens the token for the tag
and the receipt settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from ..codec.condition import b64url_decode, b64url_encode
from ..codec.errors import CodecError
from ..codec.oer import Reader, ascii_bytes, ascii_text, encode_var_octets
from .crypto import KEY_LENGTH, decrypt, encrypt, shared_secret_from_token
from .errors import StreamCodecError

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "RECEIPT_NONCE_LENGTH",
    "RECEIPT_SECRET_LENGTH",
    "TOKEN_NONCE_LENGTH",
    "ConnectionToken",
    "connection_id_of",
    "generate_address_and_secret",
    "open_token",
    "seal_token",
    "token_of",
]

TOKEN_NONCE_LENGTH: Final = 18
RECEIPT_NONCE_LENGTH: Final = 16
RECEIPT_SECRET_LENGTH: Final = 32
MAX_ADDRESS_LENGTH: Final = 1023
"""The longest ILP address (RFC 15); a longer destination could not be routed."""


@dataclass(frozen=True, slots=True)
class ConnectionToken:
    """What a server's connection address carries, sealed.

    Attributes:
        nonce: 18 random bytes that make every address (and so every shared secret) unique.
        connection_tag: the application's label for the connection, ASCII; None when absent.
        receipt_nonce / receipt_secret: RFC 39 receipt settings, both or neither.
    """

    nonce: bytes
    connection_tag: str | None = None
    receipt_nonce: bytes | None = None
    receipt_secret: bytes | None = field(default=None, repr=False)


def _server_key(server_secret: object) -> bytes:
    if not isinstance(server_secret, bytes | bytearray | memoryview):
        raise StreamCodecError(
            f"expected bytes, got {type(server_secret).__name__}", field="serverSecret"
        )
    if len(server_secret) != KEY_LENGTH:
        raise StreamCodecError(
            f"must be {KEY_LENGTH} bytes, got {len(server_secret)}", field="serverSecret"
        )
    return bytes(server_secret)


def _optional(value: bytes | None, size: int, field: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise StreamCodecError(f"expected bytes, got {type(value).__name__}", field=field)
    if len(value) != size:
        raise StreamCodecError(f"must be {size} bytes, got {len(value)}", field=field)
    return bytes(value)


def seal_token(server_secret: bytes, token: ConnectionToken, *, iv: bytes | None = None) -> bytes:
    """Encrypt a token's fields under the server secret (``iv`` only to reproduce vectors).

    Raises:
        StreamCodecError: a server secret that is not 32 bytes, a nonce that is not 18 bytes, a
            non-ASCII connection tag, receipt fields of the wrong size or only one of the two.
    """
    key = _server_key(server_secret)
    nonce = _optional(token.nonce, TOKEN_NONCE_LENGTH, "tokenNonce")
    tag = "" if token.connection_tag is None else token.connection_tag
    try:
        tag_bytes = ascii_bytes(tag, "connectionTag")
    except CodecError as exc:
        raise StreamCodecError(exc.reason, field=exc.field) from None
    if (token.receipt_nonce is None) != (token.receipt_secret is None):
        raise StreamCodecError("receiptNonce and receiptSecret go together", field="receiptNonce")
    plaintext = b"".join(
        (
            nonce,
            encode_var_octets(tag_bytes),
            encode_var_octets(_optional(token.receipt_nonce, RECEIPT_NONCE_LENGTH, "receiptNonce")),
            encode_var_octets(
                _optional(token.receipt_secret, RECEIPT_SECRET_LENGTH, "receiptSecret")
            ),
        )
    )
    return encrypt(key, plaintext, iv=iv)


def open_token(server_secret: bytes, token: bytes) -> ConnectionToken:
    """Decrypt and read a token made by `seal_token` (or by ilp-protocol-stream's server).

    Bytes after the receipt secret are ignored, as ilp-protocol-stream ignores them.

    Raises:
        DecryptionError: not sealed with this server secret (a forged or foreign address).
        StreamCodecError: sealed, but not a token of this form.
    """
    plaintext = decrypt(_server_key(server_secret), token, field="token")
    r = Reader(plaintext)
    try:
        nonce = r.read(TOKEN_NONCE_LENGTH, "tokenNonce")
        tag = r.read_var_octets("connectionTag")
        receipt_nonce = r.read_var_octets("receiptNonce")
        receipt_secret = r.read_var_octets("receiptSecret")
    except CodecError as exc:
        raise StreamCodecError(exc.reason, field=exc.field) from None
    if len(receipt_nonce) not in (0, RECEIPT_NONCE_LENGTH):
        raise StreamCodecError(f"must be 16 bytes, got {len(receipt_nonce)}", field="receiptNonce")
    if len(receipt_secret) not in (0, RECEIPT_SECRET_LENGTH):
        raise StreamCodecError(
            f"must be 32 bytes, got {len(receipt_secret)}", field="receiptSecret"
        )
    if bool(receipt_nonce) != bool(receipt_secret):
        raise StreamCodecError("receiptNonce and receiptSecret go together", field="receiptNonce")
    return ConnectionToken(
        nonce,
        ascii_text(tag) if tag else None,
        receipt_nonce or None,
        receipt_secret or None,
    )


def generate_address_and_secret(
    server_secret: bytes,
    server_address: str,
    *,
    connection_tag: str | None = None,
    receipt_nonce: bytes | None = None,
    receipt_secret: bytes | None = None,
) -> tuple[str, bytes]:
    """A fresh ``(destination address, shared secret)`` pair to give one client (over SPSP).

    An empty ``connection_tag`` counts as none, as in ilp-protocol-stream.

    Raises:
        StreamCodecError: as `seal_token`, or the address would be longer than an ILP address
            may be (a long connection tag).
    """
    token = ConnectionToken(
        os.urandom(TOKEN_NONCE_LENGTH), connection_tag or None, receipt_nonce, receipt_secret
    )
    sealed = seal_token(server_secret, token)
    address = f"{server_address}.{b64url_encode(sealed)}"
    if len(address) > MAX_ADDRESS_LENGTH:
        raise StreamCodecError(
            f"would be {len(address)} characters, more than {MAX_ADDRESS_LENGTH}",
            field="destinationAccount",
        )
    return address, shared_secret_from_token(server_secret, sealed)


def connection_id_of(server_address: str, destination: str) -> str | None:
    """The segment naming the connection in a Prepare's destination; None if there is none.

    ``destination`` must be ``<server_address>.<id>``, optionally followed by more segments.
    """
    prefix = server_address + "."
    if not destination.startswith(prefix):
        return None
    connection_id = destination[len(prefix) :].split(".", 1)[0]
    return connection_id or None


def token_of(connection_id: str) -> bytes:
    """The sealed token behind a connection id (strict base64url, as `generate_...` writes it).

    Raises:
        StreamCodecError: not base64url; field ``"connectionId"``.
    """
    try:
        return b64url_decode(connection_id, field="connectionId")
    except CodecError as exc:
        raise StreamCodecError(exc.reason, field=exc.field) from None
