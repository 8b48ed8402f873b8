"""`BtpClient`: the client role of the transport, on `transport.websocket`.

It dials the URL's host directly, as the reference does: no HTTP proxy, and a redirect answer
to the opening handshake is a refusal like any other non-101 status.

`start()` dials once and returns when authenticated; it raises if the peer is unreachable
(`UnreachableError`), refuses the credentials (`NotAcceptedError`, never retried) or does not
answer the auth in time (`PeerTimeoutError`), so `connect()` reports the problem at once.
Once up, a dropped socket is redialled and re-authenticated: the first redial is immediate, later
ones wait a jittered, doubling delay capped at one second (`transport.backoff`), so a restarted
peer is found again within about a second; only one attempt runs at a time and requests wait for
the link instead of racing the auth. A socket closed by the listener with code 4001 means another
client took our place with the same credentials: the client then stays down rather than fight
over it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from datetime import datetime

from websockets.exceptions import WebSocketException
from websockets.uri import parse_uri

from ilp_paychan.errors import InvalidFieldsError, PluginError, UnreachableError
from ilp_paychan.transport.backoff import DEFAULT_INITIAL, DEFAULT_MAXIMUM, Backoff
from ilp_paychan.transport.connection import BtpConnection
from ilp_paychan.transport.events import Answer
from ilp_paychan.transport.peer import ActiveLink
from ilp_paychan.transport.session import CLOSE_REPLACED, BtpSession, session_class, utc_now
from ilp_paychan.transport.url import parse_btp_url
from ilp_paychan.transport.websocket import WebSocket, client_socket

logger = logging.getLogger("ilp_paychan.transport")

DEFAULT_MAX_FRAME = 4 * 1024 * 1024


class BtpClient(ActiveLink):
    """Dials a `btp+ws://` / `btp+wss://` URL and keeps one authenticated socket to it.

    Args:
        url: ``btp+ws(s)://USER:TOKEN@host[:port][/path]``; InvalidFieldsError (naming
            ``server``) when malformed.
        ca: PEM file of CA certificates to trust for ``btp+wss`` instead of the system store.
        cert, key: PEM files of the certificate (and its key, unless the cert file holds it)
            that this client presents to a listener that verifies clients (mutual TLS).
        request_timeout: default seconds to wait for an answer; also bounds dialling and auth.
        max_frame: largest accepted message in bytes.
        ping_interval, ping_timeout: WebSocket keepalive, None to disable.
        backoff_initial, backoff_max: reconnect delays (see `Backoff`): the first redial after
            a drop is immediate, attempt n >= 1 waits a random time in ``[w/2, w]``,
            ``w = min(backoff_max, backoff_initial * 2**(n-1))``; a session that stayed up
            `backoff_max` seconds starts the sequence over.
        backoff: a ready `Backoff` instead of the two numbers above (tests inject one).
        max_in_flight: the peer's requests handled at once; while that many run, the socket
            is not read (the peer's further requests wait in its send buffer).
        max_pending: our requests awaiting the peer's answer; one more waits for a free slot
            within its own timeout.
        version: the BTP version spoken, "1.0" (default) or "2.0" (RFC 23); the auth Message
            is the same in both. InvalidFieldsError naming ``version`` otherwise.
    """

    def __init__(
        self,
        url: str,
        *,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        request_timeout: float = 5.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        backoff_initial: float = DEFAULT_INITIAL,
        backoff_max: float = DEFAULT_MAXIMUM,
        backoff: Backoff | None = None,
        max_in_flight: int = 1000,
        max_pending: int = 1000,
        clock: Callable[[], datetime] = utc_now,
        version: str = "1.0",
    ) -> None:
        super().__init__(request_timeout=request_timeout)
        self._session_class = session_class(version)
        self.url = parse_btp_url(url)
        if key is not None and cert is None:
            raise InvalidFieldsError("clientKey is given but clientCert is not")
        self._ca = ca
        self._cert, self._key = cert, key
        self._max_pending = max_pending
        self._max_frame = max_frame
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self.backoff = backoff if backoff is not None else Backoff(backoff_initial, backoff_max)
        self._max_in_flight = max_in_flight
        self._clock = clock
        self._opened_at = 0.0
        self._start_lock = asyncio.Lock()
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def version(self) -> str:
        """The BTP version the client speaks ("1.0" or "2.0")."""
        return self._session_class.version

    async def start(self) -> None:
        """Dial and authenticate; returns when the link is open. Idempotent.

        Raises:
            InvalidFieldsError: the `ca`, `cert` or `key` file cannot be read.
            UnreachableError: the peer cannot be reached (nothing is retried).
            NotAcceptedError: the peer refused the credentials (a `PeerError` with its code).
            PeerTimeoutError: the peer did not answer the auth message in time.
        """
        async with self._start_lock:
            if self._started:
                return
            ssl_context = self._ssl_context()
            self.backoff.reset()
            connection = await self._dial(ssl_context)
            self._opened_at = asyncio.get_running_loop().time()
            self._started = True
            self._set_active(connection)
            self._supervisor = asyncio.get_running_loop().create_task(
                self._keep_up(connection, ssl_context)
            )

    async def stop(self) -> None:
        """Stop reconnecting and close the socket with code 1000; `start()` works again after."""
        async with self._start_lock:
            self._started = False
            self._down_reason = "the BTP link is stopped; call connect() first"
            supervisor, self._supervisor = self._supervisor, None
            if supervisor is not None:
                supervisor.cancel()
                try:
                    await supervisor
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise
            active = self._active
            self._set_active(None)
            self._wake_waiters()
            if active is not None:
                await active.close(1000, "client stopping")

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.secure:
            return None
        try:
            context = ssl.create_default_context(cafile=self._ca)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidFieldsError(f"ca: cannot load {self._ca!r}: {exc}") from exc
        if self._cert is not None:
            try:
                context.load_cert_chain(self._cert, self._key)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidFieldsError(
                    f"clientCert/clientKey: cannot load the certificate {self._cert!r}"
                    f" and key {self._key!r}: {exc}"
                ) from exc
        return context

    async def _dial(self, ssl_context: ssl.SSLContext | None) -> BtpConnection:
        """One connection attempt: TCP (and TLS), the WebSocket handshake, then BTP auth."""
        timeout = self.request_timeout
        loop = asyncio.get_running_loop()
        ws: WebSocket | None = None
        try:
            uri = parse_uri(self.url.ws_url)
            factory = client_socket(
                uri,
                max_size=self._max_frame,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
            )
            async with asyncio.timeout(timeout):
                _, ws = await loop.create_connection(
                    factory,
                    uri.host,
                    uri.port,
                    ssl=ssl_context,
                    server_hostname=uri.host if ssl_context is not None else None,
                )
                await ws.opened
        except (OSError, TimeoutError, EOFError, WebSocketException) as exc:
            if ws is not None:
                ws.abort()
            reason = str(exc) or type(exc).__name__
            raise UnreachableError(f"cannot reach {self.url.redacted()}: {reason}") from exc
        session: BtpSession[asyncio.Future[Answer]] = self._session_class.client(
            self.url.username,
            self.url.token,
            now=loop.time(),
            auth_timeout=timeout,
            clock=self._clock,
        )
        connection = BtpConnection(
            ws,
            session,
            get_handler=self._current_handler,
            max_in_flight=self._max_in_flight,
            max_pending=self._max_pending,
            clock=self._clock,
        )
        connection.start()
        try:
            await connection.wait_authenticated()
        except BaseException:
            await connection.close(1000, "authentication failed")
            raise
        return connection

    async def _keep_up(self, connection: BtpConnection, ssl_context: ssl.SSLContext | None) -> None:
        """Wait for the socket to drop, then redial until it is back; runs until `stop()`."""
        loop = asyncio.get_running_loop()
        while True:
            await connection.wait_closed()
            self.backoff.session_ended(loop.time() - self._opened_at)
            if self._active is connection:
                self._set_active(None)
            if connection.close_code == CLOSE_REPLACED:
                logger.warning(
                    "the listener at %s replaced this connection by another client's; "
                    "not reconnecting",
                    self.url.redacted(),
                )
                self._started = False
                self._down_reason = (
                    "the listener replaced this connection by another client's with the same"
                    " credentials; call connect() to take it back"
                )
                self._wake_waiters()
                return
            logger.info("connection to %s lost; reconnecting", self.url.redacted())
            connection = await self._redial(ssl_context)
            self._opened_at = loop.time()
            self._set_active(connection)
            logger.info("reconnected to %s", self.url.redacted())

    async def _redial(self, ssl_context: ssl.SSLContext | None) -> BtpConnection:
        """Dial until a connection authenticates, waiting as `backoff` says between attempts."""
        attempt = 0
        while True:
            delay = self.backoff.next_delay()
            if delay > 0:
                await asyncio.sleep(delay)
            attempt += 1
            try:
                return await self._dial(ssl_context)
            except Exception as exc:
                if not isinstance(exc, PluginError):
                    logger.exception("unexpected error while reconnecting; retrying")
                    continue
                if attempt <= 3 or attempt % 60 == 0:  # about once a minute in a long outage
                    logger.info(
                        "reconnect attempt %d to %s failed: %s", attempt, self.url.redacted(), exc
                    )
