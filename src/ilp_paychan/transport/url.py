"""Client URLs of the form ``btp+ws(s)://USER:TOKEN@host[:port][/path][?query]``.

The credentials are percent-decoded and split off; what remains, with ``btp+`` cut from the scheme,
is the WebSocket URL dialled verbatim. The token is a secret: it is kept out of `repr()` and
`redacted()` gives the form to log (``btp+ws://USER:***@host...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ilp_paychan.errors import InvalidFieldsError

_SCHEMES = {"btp+ws": "ws", "btp+wss": "wss"}
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class BtpUrl:
    """A parsed client URL: where to dial, and the credentials of the auth handshake."""

    ws_url: str
    username: str
    token: str = field(repr=False)

    @property
    def secure(self) -> bool:
        """Whether the connection uses TLS (a `btp+wss:` URL)."""
        return self.ws_url.startswith("wss:")

    def redacted(self) -> str:
        """The URL with the token masked, for logs and error messages."""
        scheme, rest = self.ws_url.split("://", 1)
        if not self.username and not self.token:
            return f"btp+{scheme}://{rest}"
        mask = "***" if self.token else ""
        return f"btp+{scheme}://{self.username}:{mask}@{rest}"


def parse_btp_url(url: str) -> BtpUrl:
    """Split a ``btp+ws://`` or ``btp+wss://`` URL into the WebSocket URL and the credentials.

    Raises:
        InvalidFieldsError: naming ``server`` when the scheme, host, port or percent-encoding is
            wrong. The message never contains the token.
    """
    if not isinstance(url, str):
        raise InvalidFieldsError(f"server must be a string, got {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    ws_scheme = _SCHEMES.get(scheme.lower()) if sep else None
    if ws_scheme is None:
        raise InvalidFieldsError('server protocol must be "btp+wss:" or "btp+ws:"')
    authority_end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            authority_end = min(authority_end, index)
    authority, tail = rest[:authority_end], rest[authority_end:]
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        hostport = authority
    if "#" in tail:
        raise InvalidFieldsError("server URL must not contain a fragment (#...)")
    if not hostport or hostport.startswith(":"):
        raise InvalidFieldsError("server URL has no host")
    try:
        port = urlsplit(f"{ws_scheme}://{hostport}").port
    except ValueError as exc:
        raise InvalidFieldsError(f"server URL has an invalid port: {exc}") from None
    if port == 0:
        raise InvalidFieldsError("server URL has an invalid port: 0")
    raw_user, _, raw_token = userinfo.partition(":")
    username = _percent_decode(raw_user, "username")
    token = _percent_decode(raw_token, "token")
    return BtpUrl(ws_url=f"{ws_scheme}://{hostport}{tail}", username=username, token=token)


def _percent_decode(text: str, what: str) -> str:
    """`decodeURIComponent`: malformed escapes and invalid UTF-8 are errors, as in the reference."""
    if _BAD_PERCENT.search(text):
        raise InvalidFieldsError(f"server URL {what} has a malformed percent-escape")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidFieldsError(f"server URL {what} is not valid UTF-8 once decoded") from None
