"""The errors the STREAM packet codec and its cryptography raise.

Both are `codec.CodecError`s (so `ValueError`s with a ``field``): a caller that handles bad bytes
from a peer needs one ``except CodecError``, whichever layer found the fault.
"""

from __future__ import annotations

from ..codec.errors import CodecError

__all__ = ["DecryptionError", "StreamCodecError"]


class StreamCodecError(CodecError):
    """A STREAM packet, frame, token or receipt that cannot be decoded, or a value that cannot be
    encoded.

    ``field`` names the offending field as RFC 29 and ilp-protocol-stream spell it, prefixed by
    the frame's name inside a frame (``"StreamMaxMoney.receiveMax"``).
    """


class DecryptionError(StreamCodecError):
    """Ciphertext that does not authenticate under the key: another connection's packet, a wrong
    shared secret, or bytes changed on the way. RFC 29 §4.2 has a receiver answer F06."""
