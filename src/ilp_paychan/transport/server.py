"""`BtpListener`: the server role of the transport (PROTOCOL.md §b.3), on `websockets`.

Improvements over the reference: nothing listens before `start()`, and start-up errors (port in
use, unreadable TLS files) are raised from it (weakness 18); `ca` is optional (weakness 24); each
socket has its own auth deadline (weakness 15); one failing socket never affects the others
(weakness 17); and exactly one authenticated socket is active — a newer one replaces the older,
which is closed with code 4001 (weakness 14).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from datetime import datetime

from websockets.asyncio.server import Server, ServerConnection, serve

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.transport.auth import AuthCheck, secret_auth_check
from ilp_paychan.transport.connection import BtpConnection
from ilp_paychan.transport.events import Answer
from ilp_paychan.transport.peer import ActiveLink
from ilp_paychan.transport.session import CLOSE_REPLACED, BtpSession, utc_now

DEFAULT_PORT = 4195
DEFAULT_MAX_FRAME = 4 * 1024 * 1024


class BtpListener(ActiveLink):
    """Accepts BTP clients; the newest authenticated one is the peer.

    Args:
        port: TCP port (0 picks a free one; read `port` after `start()`).
        host: interface to bind; None binds all, as the reference does.
        cert, key, ca: PEM file paths. `cert` switches TLS on; `key` may be omitted when the
            cert file holds it; `ca` (optional) adds chain certificates to send to clients.
        incoming_secret: the token the default auth check expects (with an empty username).
        auth_check: replaces the default check; `(username, token) -> bool`, sync or async.
        auth_timeout: seconds a new socket has to authenticate.
        request_timeout: default seconds to wait for the peer's answer.
        max_frame: largest accepted message in bytes; a larger one closes that socket (1009).
        ping_interval, ping_timeout: WebSocket keepalive, None to disable.
        max_in_flight: the peer's requests handled at once per socket.
    """

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        host: str | None = None,
        *,
        cert: str | None = None,
        key: str | None = None,
        ca: str | None = None,
        incoming_secret: str | None = None,
        auth_check: AuthCheck | None = None,
        auth_timeout: float = 2.0,
        request_timeout: float = 5.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        max_in_flight: int = 1000,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(request_timeout=request_timeout)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise InvalidFieldsError(f"listener.port must be an integer in 0..65535, got {port!r}")
        if key is not None and cert is None:
            raise InvalidFieldsError("listener.key is given but listener.cert is not")
        if ca is not None and cert is None:
            raise InvalidFieldsError("listener.ca is given but listener.cert is not")
        self._port = port
        self._host = host
        self._cert, self._key, self._ca = cert, key, ca
        self._auth_check: AuthCheck = (
            auth_check if auth_check is not None else secret_auth_check(incoming_secret)
        )
        self._auth_timeout = auth_timeout
        self._max_frame = max_frame
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._max_in_flight = max_in_flight
        self._clock = clock
        self._server: Server | None = None
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
    def secure(self) -> bool:
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

    async def _listen(self) -> None:
        ssl_context = self._ssl_context()
        try:
            self._server = await serve(
                self._handle,
                self._host,
                self._port,
                ssl=ssl_context,
                max_size=self._max_frame,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
                compression=None,
                close_timeout=1.0,
            )
        except OSError as exc:
            where = f"{self._host or '*'}:{self._port}"
            raise InvalidFieldsError(
                f"listener.port: cannot listen on {where}: {exc.strerror or exc}"
            ) from exc
        for sock in self._server.sockets:
            self._port = sock.getsockname()[1]
            break
        self._started = True

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self._cert is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self._cert, self._key)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidFieldsError(
                f"listener.cert/listener.key: cannot load the certificate {self._cert!r}"
                f" and key {self._key!r}: {exc}"
            ) from exc
        if self._ca is not None:
            # OpenSSL builds the chain it sends from this store; clients are not asked for certs.
            try:
                context.load_verify_locations(cafile=self._ca)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidFieldsError(f"listener.ca: cannot load {self._ca!r}: {exc}") from exc
        return context

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
        connections = list(self._connections)
        if connections:
            await asyncio.gather(
                *(conn.close(1000, "listener stopping") for conn in connections),
                return_exceptions=True,
            )
        server.close()  # also closes (1001) any socket that was mid-handshake meanwhile
        await server.wait_closed()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self._set_active(None)

    async def _handle(self, ws: ServerConnection) -> None:
        if self._server is None:  # arrived while stopping
            await ws.close(1001, "listener stopping")
            return
        loop = asyncio.get_running_loop()
        session: BtpSession[asyncio.Future[Answer]] = BtpSession.server(
            now=loop.time(), auth_timeout=self._auth_timeout, clock=self._clock
        )
        connection = BtpConnection(
            ws,
            session,
            get_handler=self._current_handler,
            auth_check=self._auth_check,
            on_authenticated=self._promote,
            max_in_flight=self._max_in_flight,
            clock=self._clock,
        )
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
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
