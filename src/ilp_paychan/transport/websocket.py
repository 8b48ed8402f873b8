"""One WebSocket on an asyncio transport, framed by the `websockets` library's sans-I/O protocol.

Why not the library's own asyncio connection: it hands every message through a queue to a
reader task, so each message costs a future, a task switch and a loop turn before the BTP
session sees it. Here the message goes to a callback (`MessageSink`) in the loop turn that read
its last byte, and what is sent during one loop turn leaves in one socket write.

The library still does everything the WebSocket protocol asks for, through its documented
sans-I/O API (`ServerProtocol`, `ClientProtocol`): the opening handshake and its checks,
parsing, masking, UTF-8 and size checks, answering pings and close frames, close codes. What
its asyncio layer added is here instead: message reassembly from fragments (at most
`MAX_FRAGMENTS` pieces, so empty fragments cannot grow a message without bound), keepalive
pings, time limits for opening and closing, and write flow control.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol, cast

from websockets.client import ClientProtocol
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import USER_AGENT, Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import WebSocketURI

#: Pieces one fragmented message may arrive in (the library's asyncio layer allows as many).
MAX_FRAGMENTS = 4096
#: Bytes read from a socket at once.
READ_SIZE = 64 * 1024

_OPEN = State.OPEN
_BINARY = Opcode.BINARY
_CONT = Opcode.CONT


class MessageSink(Protocol):
    """What a `WebSocket` reports to the layer above it; every call is synchronous."""

    def message_received(self, data: bytes) -> None:
        """A complete binary message arrived."""

    def text_received(self) -> None:
        """A text message began (BTP is binary only)."""

    def socket_closed(self) -> None:
        """The TCP connection is gone; nothing more will arrive or leave."""


class HandshakeError(ConnectionError):
    """The opening handshake failed: refused, malformed, or the connection dropped first."""


class _ReadBuffer(threading.local):
    """One receive buffer per thread, shared by its sockets: the transport fills it and the
    socket copies the bytes out in the same call, so no two sockets ever use it at once. (A
    plain protocol gets a new 256 KiB object from every read, which the allocator maps and
    unmaps each time.)"""

    def __init__(self) -> None:
        self.array = bytearray(READ_SIZE)
        self.view = memoryview(self.array)


_read_buffer = _ReadBuffer()


class WebSocket(asyncio.BufferedProtocol):
    """One WebSocket connection, client or server side, as an asyncio protocol.

    The opening handshake runs by itself (a client sends its request on `connection_made`; a
    server answers the request it reads, see `respond`); `opened` settles when it is done.
    Then `send` queues binary messages and complete messages go to the `sink`.

    Args:
        protocol: the library's sans-I/O protocol for this side (its `max_size` is the limit
            on incoming messages; it may be changed while open, see `server.limit_messages`).
        ping_interval, ping_timeout: keepalive: a ping every `ping_interval` seconds, and the
            connection fails (1011) when its pong is `ping_timeout` seconds late. None: off.
        close_timeout: seconds the closing handshake may take before the socket is aborted.
        open_timeout: server side: seconds from the TCP accept (the creation of this object)
            to a completed opening handshake; the socket is aborted otherwise.
        write_limit: bytes buffered in the transport above which `must_drain` says wait.
    """

    def __init__(
        self,
        protocol: ServerProtocol | ClientProtocol,
        *,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 1.0,
        open_timeout: float | None = None,
        write_limit: int = 256 * 1024,
    ) -> None:
        self.protocol = protocol
        self.loop = asyncio.get_running_loop()
        self.created_at = self.loop.time()
        self.transport: asyncio.Transport | None = None
        self.sink: MessageSink | None = None
        self.opened: asyncio.Future[None] = self.loop.create_future()
        self._lost: asyncio.Future[None] = self.loop.create_future()
        self._early: list[bytes] = []
        self._parts: list[Any] | None = None  # the pieces of a fragmented message
        self._flush_scheduled = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._ping_payload: bytes | None = None
        self._ping_sent_at = 0.0
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._close_timeout = close_timeout
        self._close_timer: asyncio.TimerHandle | None = None
        self._open_timer: asyncio.TimerHandle | None = None
        self._open_timeout = open_timeout
        self._write_limit = write_limit

    # ------------------------------------------------------------------ state

    @property
    def is_open(self) -> bool:
        """The opening handshake is done and no close frame was sent or received."""
        return self.protocol.state is _OPEN

    @property
    def state(self) -> State:
        """The WebSocket state (CONNECTING, OPEN, CLOSING, CLOSED)."""
        return self.protocol.state

    @property
    def close_code(self) -> int | None:
        """The close code the peer sent (1006 if none), once the socket is closed."""
        return self.protocol.close_code

    @property
    def remote_address(self) -> Any:
        """The peer's address as the socket reports it (None before the TCP connection)."""
        if self.transport is None:
            return None
        return self.transport.get_extra_info("peername")

    @property
    def must_drain(self) -> bool:
        """The transport's buffer is over the write limit: await `drain()` before more."""
        return self._write_paused

    def attach(self, sink: MessageSink) -> None:
        """Deliver messages to `sink` from now on (and those that arrived before it, and the
        closure if the socket is gone already)."""
        self.sink = sink
        early, self._early = self._early, []
        for data in early:
            sink.message_received(data)
        if self._lost.done():
            sink.socket_closed()

    # ------------------------------------------------------------------ sending

    def send(self, data: bytes) -> None:
        """Queue one binary message; the queued ones leave in one write at the next loop turn.

        Dropped silently unless the socket is open: whoever waits for an answer learns of the
        closure from `socket_closed`.
        """
        protocol = self.protocol
        if protocol.state is not _OPEN:
            return
        protocol.send_binary(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._scheduled_flush)

    async def drain(self) -> None:
        """Wait until the transport's buffer is below the write limit (or the socket closed)."""
        if not self._write_paused or self._lost.done():
            return
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._drain_waiters:
                self._drain_waiters.remove(waiter)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write whatever the protocol has queued now, in one write when it can."""
        chunks = self.protocol.data_to_send()
        if not chunks:
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if all(chunks):
            transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            return
        # An empty chunk is the library's end-of-stream marker (closing handshake done).
        for chunk in chunks:
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()

    # ------------------------------------------------------------------ closing

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (abort if it takes over `close_timeout`); a socket
        still opening is aborted; one already closing is left alone. See `wait_closed`."""
        protocol = self.protocol
        if protocol.state is _OPEN:
            protocol.send_close(code, reason)
            self.flush()
            self._expect_close()
        elif protocol.state is State.CONNECTING:
            self.abort()

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): send a close frame, read no more."""
        if self.protocol.state is _OPEN:
            self.protocol.fail(code, reason)
            self.flush()
            self._expect_close()

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self) -> None:
        """Return once the TCP connection is gone."""
        await asyncio.shield(self._lost)

    def _expect_close(self) -> None:
        if self._close_timer is None and not self._lost.done():
            self._close_timer = self.loop.call_later(self._close_timeout, self.abort)

    # ------------------------------------------------------------------ flow control

    def pause_reading(self) -> None:
        """Stop reading from the socket (the peer's data waits in the kernel's buffers)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again after `pause_reading`."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def pause_writing(self) -> None:  # asyncio callback
        self._write_paused = True

    def resume_writing(self) -> None:  # asyncio callback
        self._write_paused = False
        self._wake_drainers()

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses of it
        self.transport = transport
        transport.set_write_buffer_limits(high=self._write_limit)
        if self._open_timeout is not None:
            self._open_timer = self.loop.call_at(
                self.created_at + self._open_timeout, self._open_overdue
            )
        protocol = self.protocol
        if isinstance(protocol, ClientProtocol):
            request = protocol.connect()
            request.headers["User-Agent"] = USER_AGENT
            protocol.send_request(request)
            self.flush()

    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_buffer.view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_read_buffer.array[:nbytes])

    def data_received(self, data: bytes | bytearray) -> None:
        """Bytes from the peer: parse them, answer what the protocol answers by itself, and act
        on every event (handshake, frames) now."""
        protocol = self.protocol
        protocol.receive_data(data)
        events = protocol.events_received()
        self.flush()  # the protocol's own answers: pongs, the close frame's echo
        for event in events:
            if type(event) is Frame:
                self._frame(event)
            else:
                self._handshake(event)
        if not self.opened.done() and protocol.handshake_exc is not None:
            self._open_failed(protocol.handshake_exc)
        if protocol.close_expected():
            self._expect_close()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self.flush()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        protocol = self.protocol
        protocol.receive_eof()  # idempotent; the state is CLOSED after it
        for timer in (self._open_timer, self._ping_timer, self._pong_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._open_timer = self._ping_timer = self._pong_timer = self._close_timer = None
        if not self.opened.done():
            cause = protocol.handshake_exc or exc
            reason = f": {cause}" if cause is not None else ""
            failure = HandshakeError(f"connection closed during the opening handshake{reason}")
            failure.__cause__ = cause
            self._open_failed(failure)
        self._lost.set_result(None)
        self._wake_drainers()
        sink = self.sink
        if sink is not None:
            sink.socket_closed()

    # ------------------------------------------------------------------ incoming

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is _BINARY:
            if frame.fin:
                self._deliver(frame.data)
            else:
                self._parts = [frame.data]
        elif opcode is _CONT:
            parts = self._parts
            if parts is None:  # the rest of a text message, refused at its first frame
                return
            parts.append(frame.data)
            if frame.fin:
                self._parts = None
                self._deliver(b"".join(parts))
            elif len(parts) >= MAX_FRAGMENTS:
                self._parts = None
                self.fail(CloseCode.MESSAGE_TOO_BIG, "too many fragments")
        elif opcode is Opcode.TEXT:
            self._parts = None
            if self.sink is not None:
                self.sink.text_received()
            else:
                self.fail(CloseCode.UNSUPPORTED_DATA, "text frames are not accepted")
        elif opcode is Opcode.PONG:
            self._pong(frame.data)

    def _deliver(self, data: Any) -> None:
        message = data if type(data) is bytes else bytes(data)
        sink = self.sink
        if sink is None:
            self._early.append(message)
        else:
            sink.message_received(message)

    def _handshake(self, event: object) -> None:
        protocol = self.protocol
        if isinstance(event, Request) and isinstance(protocol, ServerProtocol):
            protocol.send_response(self.respond(event))
            self.flush()
        if protocol.state is _OPEN and not self.opened.done():
            self._opened()

    def respond(self, request: Request) -> Response:
        """Server side: the answer to the client's opening request (the library's checks);
        a subclass may refuse instead, with `self.protocol.reject(status, text)`."""
        assert isinstance(self.protocol, ServerProtocol)
        return self.protocol.accept(request)

    def _opened(self) -> None:
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        self.opened.set_result(None)
        if self._ping_interval is not None:
            self._ping_timer = self.loop.call_later(self._ping_interval, self._ping)
        self.on_open()

    def on_open(self) -> None:
        """Called once the opening handshake succeeded (a subclass's hook)."""

    def _open_failed(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
            self.opened.exception()  # retrieved: nobody may be waiting (server side)

    def _open_overdue(self) -> None:
        self._open_timer = None
        if self.protocol.state is State.CONNECTING:
            self._open_failed(TimeoutError("the opening handshake timed out"))
            self.abort()

    # ------------------------------------------------------------------ keepalive

    def _ping(self) -> None:
        self._ping_timer = None
        if self.protocol.state is not _OPEN:
            return
        payload = os.urandom(4)
        self._ping_payload = payload
        self._ping_sent_at = self.loop.time()
        self.protocol.send_ping(payload)
        self.flush()
        if self._ping_timeout is not None:
            self._pong_timer = self.loop.call_later(self._ping_timeout, self._pong_overdue)
        else:
            self._next_ping()

    def _pong(self, data: Any) -> None:
        if self._ping_payload is None or bytes(data) != self._ping_payload:
            return  # unsolicited, or for an older ping
        self._ping_payload = None
        if self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None
        self._next_ping()

    def _next_ping(self) -> None:
        if self._ping_interval is not None and self._ping_timer is None:
            when = self._ping_sent_at + self._ping_interval
            self._ping_timer = self.loop.call_at(when, self._ping)

    def _pong_overdue(self) -> None:
        self._pong_timer = None
        self.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")


def client_socket(
    uri: WebSocketURI,
    *,
    max_size: int,
    ping_interval: float | None,
    ping_timeout: float | None,
    close_timeout: float = 1.0,
) -> Callable[[], WebSocket]:
    """A protocol factory for `loop.create_connection`: a client WebSocket to `uri`, without
    compression (no extension is offered), as the reference's peers expect."""

    def factory() -> WebSocket:
        return WebSocket(
            ClientProtocol(uri, max_size=max_size),
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
        )

    return factory
