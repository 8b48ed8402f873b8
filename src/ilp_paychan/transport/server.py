"""`BtpListener`: the server role of the transport, on `transport.websocket`.

Improvements over the reference: nothing listens before `start()`, and start-up errors (port in
use, unreadable TLS files) are raised from it; `ca` is optional; each socket has its own auth
deadline, counted from its TCP accept; one failing socket never affects the others; and exactly
one authenticated socket is active — a newer one replaces the older, which is closed with code
4001.

Limits, so that nobody who lacks the secret can exhaust the listener: at most
`max_unauthenticated` sockets wait for authentication (the oldest is dropped when one more
arrives, see `transport.gate`); until it authenticates, a socket may send no message larger than
`max_auth_frame` bytes; it has `auth_timeout` seconds from its TCP accept, WebSocket handshake
included, to authenticate (with TLS the TLS handshake must also end within `auth_timeout`, so at
worst twice that in all). With `client_ca`, TLS clients must also present a certificate signed
by one of those CAs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from websockets.http11 import Request, Response
from websockets.protocol import Protocol
from websockets.server import ServerProtocol

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.transport.auth import AuthCheck, secret_auth_check
from ilp_paychan.transport.connection import BtpConnection
from ilp_paychan.transport.events import Answer
from ilp_paychan.transport.gate import AuthGate
from ilp_paychan.transport.peer import ActiveLink
from ilp_paychan.transport.session import CLOSE_REPLACED, BtpSession, session_class, utc_now
from ilp_paychan.transport.websocket import WebSocket

logger = logging.getLogger("ilp_paychan.transport")

DEFAULT_PORT = 4195
DEFAULT_MAX_FRAME = 4 * 1024 * 1024
DEFAULT_AUTH_TIMEOUT = 2.0
DEFAULT_MAX_UNAUTHENTICATED = 64
#: The auth Message holds a user name and a token: 64 KiB is far more than it needs.
DEFAULT_MAX_AUTH_FRAME = 64 * 1024
DEFAULT_MAX_IN_FLIGHT = 1000
DEFAULT_MAX_PENDING = 1000


def limit_messages(protocol: Protocol, size: int) -> None:
    """Set the largest message websockets' parser accepts from the next frame on.

    The attribute is `max_message_size` from websockets 16 and `max_size` before; the parser
    reads it anew for every frame, so the limit can change while the socket is open.
    """
    name = "max_message_size" if hasattr(protocol, "max_message_size") else "max_size"
    setattr(protocol, name, size)


def _drop_oldest(gate: AuthGate[WebSocket], ws: WebSocket) -> None:
    """Drop an unauthenticated socket to make room for a newer one."""
    evicted = gate.evicted
    if evicted <= 10 or evicted % 1000 == 0:  # a flood must not flood the log too
        logger.warning(
            "more than %d sockets waiting to authenticate; dropped the oldest (#%d)",
            gate.limit,
            evicted,
        )
    ws.abort()


class _ListenerSocket(WebSocket):
    """A server socket of one listener: counted as unauthenticated from its TCP accept on
    (its creation; with TLS that is before the TLS handshake), turned into a `BtpConnection`
    when its opening handshake succeeds."""

    def __init__(self, listener: BtpListener, **options: Any) -> None:
        protocol = ServerProtocol(max_size=listener._max_auth_frame)  # before any byte is parsed
        super().__init__(protocol, **options)
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        listener = self._listener
        listener._sockets.add(self)
        oldest = listener._gate.admit(self)
        if oldest is not None:
            _drop_oldest(listener._gate, oldest)

    def respond(self, request: Request) -> Response:
        if self._listener._server is None:  # stopping
            assert isinstance(self.protocol, ServerProtocol)
            return self.protocol.reject(503, "The listener is stopping.\n")
        return super().respond(request)

    def on_open(self) -> None:
        self._listener._opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener._gate.leave(self)
        self._listener._sockets.discard(self)
        super().connection_lost(exc)


class BtpListener(ActiveLink):
    """Accepts BTP clients; the newest authenticated one is the peer.

    Args:
        port: TCP port (0 picks a free one; read `port` after `start()`).
        host: interface to bind; None binds all, as the reference does.
        cert, key, ca: PEM file paths. `cert` switches TLS on; `key` may be omitted when the
            cert file holds it; `ca` (optional) adds chain certificates to send to clients.
        client_ca: PEM file of the CAs that sign client certificates: with it, a TLS client
            must present a certificate signed by one of them (mutual TLS). Needs `cert`.
        incoming_secret: the token the default auth check expects: with an empty username for
            BTP 1.0 (the reference's rule), with any username for BTP 2.0 (ilp-plugin-btp's).
        auth_check: replaces the default check; `(username, token) -> bool`, sync or async.
        version: the BTP version spoken, "1.0" (default) or "2.0" (RFC 23; see
            `session.Btp2Session`). InvalidFieldsError naming ``version`` otherwise.
        auth_timeout: seconds a new socket has, from its TCP accept, to authenticate.
        request_timeout: default seconds to wait for the peer's answer.
        max_frame: largest accepted message in bytes; a larger one closes that socket (1009).
        max_auth_frame: largest message accepted before the socket authenticated (1009 too).
        max_unauthenticated: sockets that may wait for authentication at once; one more
            drops the oldest of them.
        ping_interval, ping_timeout: WebSocket keepalive, None to disable.
        max_in_flight: the peer's requests handled at once per socket; while that many run,
            the socket is not read (the peer's further requests wait in its send buffer).
        max_pending: our requests awaiting the peer's answer per socket; one more waits for
            a free slot within its own timeout.
    """

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        host: str | None = None,
        *,
        cert: str | None = None,
        key: str | None = None,
        ca: str | None = None,
        client_ca: str | None = None,
        incoming_secret: str | None = None,
        auth_check: AuthCheck | None = None,
        auth_timeout: float = DEFAULT_AUTH_TIMEOUT,
        request_timeout: float = 5.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_auth_frame: int = DEFAULT_MAX_AUTH_FRAME,
        max_unauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_pending: int = DEFAULT_MAX_PENDING,
        clock: Callable[[], datetime] = utc_now,
        version: str = "1.0",
    ) -> None:
        super().__init__(request_timeout=request_timeout)
        self._session_class = session_class(version)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise InvalidFieldsError(f"listener.port must be an integer in 0..65535, got {port!r}")
        if key is not None and cert is None:
            raise InvalidFieldsError("listener.key is given but listener.cert is not")
        if ca is not None and cert is None:
            raise InvalidFieldsError("listener.ca is given but listener.cert is not")
        if client_ca is not None and cert is None:
            raise InvalidFieldsError("listener.clientCa is given but listener.cert is not")
        self._port = port
        self._host = host
        self._cert, self._key, self._ca, self._client_ca = cert, key, ca, client_ca
        self._auth_check: AuthCheck = (
            auth_check
            if auth_check is not None
            else secret_auth_check(incoming_secret, any_username=version == "2.0")
        )
        self._auth_timeout = auth_timeout
        self._max_frame = max_frame
        self._max_auth_frame = min(max_auth_frame, max_frame)
        self._gate: AuthGate[WebSocket] = AuthGate(max_unauthenticated)
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._max_in_flight = max_in_flight
        self._max_pending = max_pending
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._sockets: set[_ListenerSocket] = set()
        self._connections: set[BtpConnection] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._start_lock = asyncio.Lock()

    @property
    def port(self) -> int:
        """The bound port once started (useful with port 0), else the configured one.

        With port 0, a restart after `stop()` asks for the port bound the first time again, so
        clients find the listener where it was.
        """
        return self._port

    @property
    def version(self) -> str:
        """The BTP version the listener speaks ("1.0" or "2.0")."""
        return self._session_class.version

    @property
    def secure(self) -> bool:
        """Whether the listener speaks TLS (wss:), i.e. a certificate was given."""
        return self._cert is not None

    async def start(self) -> None:
        """Bind and listen. Idempotent.

        Raises:
            InvalidFieldsError: TLS files unreadable or mismatched, or the port cannot be bound
                (the message names the `listener.*` field and the OS reason).
        """
        async with self._start_lock:
            if self._server is None:
                await self._listen()

    @property
    def unauthenticated_count(self) -> int:
        """Sockets accepted that have neither authenticated nor closed yet."""
        return len(self._gate)

    async def _listen(self) -> None:
        ssl_context = self._ssl_context()
        options: dict[str, Any] = {
            "ping_interval": self._ping_interval,
            "ping_timeout": self._ping_timeout,
            "close_timeout": 1.0,
            "open_timeout": self._auth_timeout,
        }

        def new_socket() -> _ListenerSocket:
            return _ListenerSocket(self, **options)

        try:
            self._server = await asyncio.get_running_loop().create_server(
                new_socket,
                self._host,
                self._port,
                ssl=ssl_context,
                ssl_handshake_timeout=self._auth_timeout if ssl_context is not None else None,
            )
        except OSError as exc:
            where = f"{self._host or '*'}:{self._port}"
            # asyncio's strerror repeats the address; the errno's own words are enough
            reason = os.strerror(exc.errno) if exc.errno else exc.strerror or exc
            raise InvalidFieldsError(f"listener.port: cannot listen on {where}: {reason}") from exc
        for sock in self._server.sockets:
            self._port = sock.getsockname()[1]
            break
        self._started = True

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self._cert is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self._client_ca is None:
            self._load_cert_chain(context, self._cert)
            if self._ca is not None:
                # OpenSSL builds the chain it sends from this store; no client certs are asked.
                try:
                    context.load_verify_locations(cafile=self._ca)
                except (OSError, ssl.SSLError) as exc:
                    raise InvalidFieldsError(
                        f"listener.ca: cannot load {self._ca!r}: {exc}"
                    ) from exc
            return context
        # Mutual TLS: the verify store must hold the client CAs only (a CA in it would vouch for
        # client certificates), so chain certificates from `ca` travel in the chain file.
        if self._ca is None:
            self._load_cert_chain(context, self._cert)
        else:
            self._load_with_chain(context, self._cert, self._ca)
        try:
            context.load_verify_locations(cafile=self._client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidFieldsError(
                f"listener.clientCa: cannot load {self._client_ca!r}: {exc}"
            ) from exc
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _load_cert_chain(self, context: ssl.SSLContext, certfile: str) -> None:
        try:
            context.load_cert_chain(certfile, self._key)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidFieldsError(
                f"listener.cert/listener.key: cannot load the certificate {self._cert!r}"
                f" and key {self._key!r}: {exc}"
            ) from exc

    def _load_with_chain(self, context: ssl.SSLContext, cert: str, ca: str) -> None:
        """Load the certificate followed by the `ca` chain certificates (a private temp file,
        since `ssl` reads chains from files only)."""
        try:
            chain = Path(ca).read_bytes()
        except OSError as exc:
            raise InvalidFieldsError(f"listener.ca: cannot load {ca!r}: {exc}") from exc
        try:
            leaf = Path(cert).read_bytes()
        except OSError:
            leaf = b""  # let load_cert_chain report it, naming the fields
        fd, combined = tempfile.mkstemp(suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(leaf + b"\n" + chain)
            self._load_cert_chain(context, combined if leaf else cert)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(combined)

    async def stop(self) -> None:
        """Close every socket (code 1000) and stop listening; `start()` works again after."""
        async with self._start_lock:
            await self._shut()

    async def _shut(self) -> None:
        server, self._server = self._server, None
        self._started = False
        self._down_reason = "the BTP listener is stopped; call connect() first"
        self._wake_waiters()
        if server is None:
            return
        server.close()  # no new sockets; a handshake under way is answered 503
        connections = list(self._connections)
        if connections:
            await asyncio.gather(
                *(conn.close(1000, "listener stopping") for conn in connections),
                return_exceptions=True,
            )
        sockets = list(self._sockets)  # mid-handshake ones, or closing for another reason
        for ws in sockets:
            ws.close(1001, "listener stopping")
        if sockets:
            await asyncio.gather(*(ws.wait_closed() for ws in sockets))
        await server.wait_closed()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self._set_active(None)

    def _opened(self, ws: _ListenerSocket) -> None:
        """A socket finished its opening handshake: it carries a BTP session from now on."""
        session: BtpSession[asyncio.Future[Answer]] = self._session_class.server(
            now=ws.created_at, auth_timeout=self._auth_timeout, clock=self._clock
        )

        def authenticated(connection: BtpConnection) -> None:
            self._gate.leave(ws)
            limit_messages(ws.protocol, self._max_frame)
            self._promote(connection)

        connection = BtpConnection(
            ws,
            session,
            get_handler=self._current_handler,
            auth_check=self._auth_check,
            on_authenticated=authenticated,
            on_closed=self._closed_connection,
            max_in_flight=self._max_in_flight,
            max_pending=self._max_pending,
            clock=self._clock,
        )
        self._connections.add(connection)
        connection.start()

    def _closed_connection(self, connection: BtpConnection) -> None:
        self._connections.discard(connection)
        if self._active is connection:
            self._set_active(None)

    def _promote(self, connection: BtpConnection) -> None:
        """A socket authenticated: it becomes the peer; the previous one is closed."""
        previous = self._active
        if self._server is None:  # stopping
            return
        self._set_active(connection)
        if previous is not None and previous is not connection:
            task = asyncio.get_running_loop().create_task(
                previous.close(CLOSE_REPLACED, "replaced by a newer authenticated connection")
            )
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
