"""transport layer: BTP frames over WebSockets (auth, reconnects, request/response matching).

`session` is the sans-I/O core; `websocket` frames a socket with the `websockets` library's
sans-I/O protocol; `connection`, `server` and `client` are the asyncio shells around them;
`peer.PeerLink` is the only surface the plugin uses. Listener and client speak BTP 1.0 by default
and BTP 2.0 with ``version="2.0"`` (the same machinery, another codec and auth check).
"""

from .client import BtpClient
from .connection import (
    AnyRequestHandler,
    Btp2RequestHandler,
    BtpConnection,
    ConnectionLostError,
    PendingLimitError,
    RequestHandler,
)
from .peer import PeerLink
from .server import BtpListener
from .session import BTP_VERSIONS, Btp2Session, BtpSession, SessionClosedError, session_class
from .url import BtpUrl, parse_btp_url

__all__ = [
    "BTP_VERSIONS",
    "AnyRequestHandler",
    "Btp2RequestHandler",
    "Btp2Session",
    "BtpClient",
    "BtpConnection",
    "BtpListener",
    "BtpSession",
    "BtpUrl",
    "ConnectionLostError",
    "PeerLink",
    "PendingLimitError",
    "RequestHandler",
    "SessionClosedError",
    "parse_btp_url",
    "session_class",
]
