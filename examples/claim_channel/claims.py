"""Ed25519 claims on a unidirectional payment channel: what the sender signs and how to check it.

A claim says "the receiver of channel C may take B units out of it". It is cumulative: a claim for
a larger B replaces every smaller one, so claims can be lost, repeated or reordered without harm
as long as the receiver keeps the largest valid one. The signed bytes are fixed so that the
JavaScript twin of this module (tests/interop/js/modules/claim_module.js) signs and verifies the
very same message.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CLAIM_DOMAIN = b"ilp-paychan example claim\x00"
CHANNEL_DOMAIN = b"ilp-paychan example channel\x00"
_HEX32 = re.compile(r"^[0-9a-f]{64}$")
_DECIMAL = re.compile(r"^[0-9]+$")


def parse_hex32(value: object, field: str) -> bytes:
    """32 bytes from 64 lowercase hex digits (a seed or a public key in the options)."""
    if not isinstance(value, str) or not _HEX32.match(value.lower()):
        raise ValueError(f"{field} must be 64 hex digits (32 bytes), got {value!r}")
    return bytes.fromhex(value)


def private_key(seed_hex: object) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(parse_hex32(seed_hex, "secret"))


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def channel_id(sender: bytes, receiver: bytes) -> str:
    """The id of the one channel from `sender` to `receiver` (raw public keys), 32 hex digits.

    Deterministic, so both peers know it from their keys alone; the sender opens it on the ledger.
    """
    return hashlib.sha256(CHANNEL_DOMAIN + sender + receiver).hexdigest()[:32]


def claim_message(channel: str, balance: int) -> bytes:
    """The bytes signed for a claim: domain, channel id, NUL, decimal balance."""
    return CLAIM_DOMAIN + channel.encode("ascii") + b"\x00" + str(balance).encode("ascii")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_claim(key: Ed25519PrivateKey, channel: str, balance: int) -> dict[str, str]:
    """The claim as it travels (JSON): channel id, balance as decimal text, base64url signature."""
    signature = key.sign(claim_message(channel, balance))
    return {"channel": channel, "balance": str(balance), "signature": b64url(signature)}


@dataclass(frozen=True, slots=True)
class Claim:
    channel: str
    balance: int
    signature: bytes

    def to_json(self) -> dict[str, str]:
        return {
            "channel": self.channel,
            "balance": str(self.balance),
            "signature": b64url(self.signature),
        }


def parse_claim(value: Any) -> Claim:
    """The claim in a peer's JSON value; ValueError naming the field when malformed."""
    if not isinstance(value, dict):
        raise ValueError(f"claim must be an object, got {type(value).__name__}")
    channel, balance, signature = value.get("channel"), value.get("balance"), value.get("signature")
    if not isinstance(channel, str) or not re.fullmatch(r"[0-9a-f]{32}", channel):
        raise ValueError(f"claim.channel must be 32 hex digits, got {channel!r}")
    if not isinstance(balance, str) or not _DECIMAL.match(balance) or len(balance) > 40:
        raise ValueError(f"claim.balance must be a decimal string, got {balance!r}")
    if not isinstance(signature, str):
        raise ValueError("claim.signature must be a base64url string")
    try:
        raw = b64url_decode(signature)
    except ValueError:
        raise ValueError("claim.signature must be a base64url string") from None
    if len(raw) != 64:
        raise ValueError(f"claim.signature must be 64 bytes, got {len(raw)}")
    return Claim(channel, int(balance), raw)


def claim_is_signed_by(public_key: bytes, claim: Claim) -> bool:
    """True when `claim` carries a valid signature of the holder of `public_key`."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            claim.signature, claim_message(claim.channel, claim.balance)
        )
    except InvalidSignature:
        return False
    return True
