"""`PeerLink`: all the plugin knows of the transport (docs/architecture.md, "transport").

`BtpListener` and `BtpClient` implement it on top of `ActiveLink`, which holds the single
active authenticated connection: requests go to it and only to it (never to a socket a newer one
replaced, whose answers nobody would wait for), and callers that
find no link wait for one up to their timeout instead of failing at once during a reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ilp_paychan.codec.btp import Response
from ilp_paychan.errors import NotConnectedError, UnreachableError
from ilp_paychan.transport.connection import AnyRequestHandler, BtpConnection
from ilp_paychan.transport.events import AnyPacket
from ilp_paychan.transport.session import SessionClosedError

logger = logging.getLogger("ilp_paychan.transport")

StateCallback = Callable[[bool], None]


@runtime_checkable
class PeerLink(Protocol):
    """The plugin's one view of its peer, listener or client: requests both ways over the
    active authenticated socket, and word when that link comes and goes."""

    async def start(self) -> None:
        """Listener: bind. Client: dial and authenticate (raises on refusal)."""

    async def stop(self) -> None:
        """Close every socket; `start()` may be called again afterwards."""

    def is_open(self) -> bool:
        """An authenticated socket exists now."""

    async def request(
        self,
        packet: AnyPacket,
        timeout: float | None = None,  # noqa: ASYNC109 - a session deadline, one timer
    ) -> Response:
        """Send a request to the peer and return its Response (the request id is filled in)."""

    def set_request_handler(self, handler: AnyRequestHandler | None) -> None:
        """Who answers the peer's requests (None: answer F00 "no request handler registered")."""

    def on_state_change(self, callback: StateCallback) -> None:
        """Call `callback(True)` when an authenticated socket becomes the active one (for a
        client also inside `start()`), `callback(False)` once it is gone with no successor
        (also inside `stop()`). A socket replacing another fires nothing. Sync, exceptions
        are logged."""


class ActiveLink:
    """What listener and client share: the active connection, the handler, state callbacks."""

    def __init__(self, *, request_timeout: float) -> None:
        if not request_timeout > 0:
            raise ValueError("request_timeout must be positive")
        self.request_timeout = request_timeout
        self._active: BtpConnection | None = None
        self._handler: AnyRequestHandler | None = None
        self._callbacks: list[StateCallback] = []
        self._link_up = asyncio.Event()
        self._started = False
        self._down_reason = "the BTP link is not started; call connect() first"

    def is_open(self) -> bool:
        """An authenticated socket is the active one now."""
        active = self._active
        return active is not None and active.is_open

    @property
    def peer_username(self) -> str | None:
        """The username the active connection authenticated with (None while there is none):
        a listener that names its client (an ILDCP address, say) reads it here."""
        active = self._active
        return None if active is None else active.username

    def set_request_handler(self, handler: AnyRequestHandler | None) -> None:
        """Who answers the peer's requests from now on (None: F00 "no request handler")."""
        self._handler = handler

    def _current_handler(self) -> AnyRequestHandler | None:
        return self._handler

    def on_state_change(self, callback: StateCallback) -> None:
        """Add a callback for the link going up or down (see `PeerLink.on_state_change`)."""
        self._callbacks.append(callback)

    async def request(
        self,
        packet: AnyPacket,
        timeout: float | None = None,  # noqa: ASYNC109 - a session deadline, one timer
    ) -> Response:
        """Send `packet` on the active connection, waiting for one if the link is down.

        Raises:
            PeerError: the peer answered with a BTP Error.
            PeerTimeoutError: no answer in time (`ConnectionLostError` if the socket dropped
                after the request was written: the outcome is unknown).
            UnreachableError: no authenticated connection came up within the timeout, so the
                request was never sent.
            NotConnectedError: the link is not started.
        """
        if timeout is None:
            timeout = self.request_timeout
        active = self._active
        if active is not None and active.is_open:
            try:
                return await active.request(packet, timeout)
            except SessionClosedError:
                pass  # the socket was closing and nothing was written: wait for the next one
        if not self._started:
            raise NotConnectedError(self._down_reason)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        try:
            async with asyncio.timeout_at(give_up):
                while True:
                    await self._link_up.wait()
                    if not self._started:
                        raise NotConnectedError(self._down_reason)
                    active = self._active
                    if active is not None and active.is_open:
                        break
                    self._link_up.clear()
        except TimeoutError:
            raise UnreachableError(
                f"no authenticated connection to the peer within {timeout:g} s"
            ) from None
        return await active.request(packet, max(give_up - loop.time(), 0.0))

    def _wake_waiters(self) -> None:
        """Let requests waiting for the link re-check it (after `stop()`, say)."""
        self._link_up.set()
        if self._active is None:
            self._link_up.clear()

    def _set_active(self, connection: BtpConnection | None) -> None:
        was_open = self._active is not None
        self._active = connection
        if connection is not None:
            self._link_up.set()
        else:
            self._link_up.clear()
        now_open = connection is not None
        if was_open != now_open:
            for callback in list(self._callbacks):
                try:
                    callback(now_open)
                except Exception:
                    logger.exception("state-change callback failed")
