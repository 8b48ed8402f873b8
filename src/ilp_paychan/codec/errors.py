"""The one exception the codecs raise.

Every decoder and encoder in `ilp_paychan.codec` turns bad input into `CodecError`, never into
`IndexError`, `struct.error`, `UnicodeError` or `OverflowError`, so callers need a single `except`.
"""

from __future__ import annotations


class CodecError(ValueError):
    """Bytes that cannot be decoded, or a value that cannot be encoded.

    Attributes:
        field: the wire name of the offending field (``"transferId"``, ``"amount"``,
            ``"protocolData"``, ``"length"``…), so the plugin can name it in its own error.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message
