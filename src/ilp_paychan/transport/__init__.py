"""transport layer: BTP frames over WebSockets (auth, reconnects, request/response matching).

`session` is the sans-I/O core; `websocket` frames a socket with the `websockets` library's
sans-I/O protocol; `connection`, `server` and `client` are the asyncio shells around them;
`peer.PeerLink` is the only surface the plugin uses.
"""

from .client import BtpClient
from .connection import BtpConnection, ConnectionLostError, PendingLimitError, RequestHandler
from .peer import PeerLink
from .server import BtpListener
from .session import BtpSession, SessionClosedError
from .url import BtpUrl, parse_btp_url

__all__ = [
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
]
