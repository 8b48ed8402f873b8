"""The asyncio shell around one WebSocket and its `BtpSession`.

It only moves bytes and runs callbacks: the WebSocket hands each complete message to
`message_received` in the loop turn that read it, and the session says what it means. An answer
settles the future its request waits on there and then; an incoming request runs as a task (at
most `max_in_flight` at once: beyond that the socket is not read, which pushes back on the peer);
the rare steps that must wait (a user's asynchronous auth check) hold the messages after them
until they are done, so nothing is processed out of order. Outgoing requests wait on a future
that an answer or the connection's single timer settles, at most `max_pending` of them
unanswered at once (one more waits for a slot within its own timeout, and is not sent if none
frees up: `PendingLimitError`). The session decides everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, cast

from ilp_paychan.codec.btp import Error, Response
from ilp_paychan.codec.errors import CodecError
from ilp_paychan.errors import (
    PeerError,
    PeerTimeoutError,
    PluginError,
    UnreachableError,
    error_name_for,
    ilp_code_for,
)
from ilp_paychan.transport.auth import AuthCheck, run_auth_check
from ilp_paychan.transport.events import (
    Answer,
    AnswerReceived,
    AnyPacket,
    AnyRequest,
    Authenticated,
    AuthRefused,
    AuthRequested,
    AuthTimedOut,
    Event,
    Request,
    Request2,
    RequestReceived,
    RequestTimedOut,
    UndecodableFrame,
    UnexpectedPacket,
    UnmatchedAnswer,
)
from ilp_paychan.transport.session import (
    CLOSE_POLICY_VIOLATION,
    BtpSession,
    Role,
    SessionClosedError,
    SessionState,
    error_data,
    with_request_id,
)
from ilp_paychan.transport.websocket import WebSocket

logger = logging.getLogger("ilp_paychan.transport")

RequestHandler = Callable[[Request], Awaitable[Response | Error]]
"""Answers one request of a BTP 1.0 peer. The answer's `request_id` is replaced by the
request's."""
Btp2RequestHandler = Callable[[Request2], Awaitable[Response | Error]]
"""Answers one request (Message or Transfer) of a BTP 2.0 peer, likewise."""
AnyRequestHandler = RequestHandler | Btp2RequestHandler
"""A handler of either version; a connection only hands it requests of its session's version."""


class ConnectionLostError(PeerTimeoutError):
    """The socket closed after the request was written and before its answer arrived.

    Like a timeout, the outcome is unknown (the peer may have acted on it), hence the subclass.
    A request that was never written fails with `UnreachableError` instead.
    """


class LogBudget:
    """At most `limit` log lines per `window` seconds for lines that anybody who reaches the
    port can trigger (a refused or timed-out auth, a text frame before auth), so that a flood of
    sockets cannot flood the log too. The first line let through after some were left out says
    how many."""

    def __init__(
        self, limit: int = 20, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._window_start = -window
        self._used = 0
        self._skipped = 0

    def allow(self) -> str | None:
        """None: leave this line out. Else a suffix for it ("" or a note of lines left out)."""
        now = self._clock()
        if now - self._window_start >= self.window:
            self._window_start = now
            self._used = 0
        if self._used >= self.limit:
            self._skipped += 1
            return None
        self._used += 1
        skipped, self._skipped = self._skipped, 0
        return f" ({skipped} similar lines left out before this one)" if skipped else ""


#: Shared by every connection of the process: the budget is per process, not per socket.
STRANGER_LOGS = LogBudget()


class PendingLimitError(UnreachableError):
    """`max_pending` requests already awaited the peer's answers for this request's whole
    timeout. Nothing was sent, so it is as safe to treat as refused as any `UnreachableError`."""


class BtpConnection:
    """One WebSocket carrying one BTP session (client or server side).

    It receives the socket's messages from construction on; `start()` arms the session's
    deadlines and sends what the session queued (a client's auth message). `wait_closed()`
    returns when the socket is gone, every pending request has failed and the request handlers
    have finished.
    """

    def __init__(
        self,
        ws: WebSocket,
        session: BtpSession[asyncio.Future[Answer]],
        *,
        get_handler: Callable[[], AnyRequestHandler | None],
        auth_check: AuthCheck | None = None,
        on_authenticated: Callable[[BtpConnection], None] | None = None,
        on_closed: Callable[[BtpConnection], None] | None = None,
        max_in_flight: int = 1000,
        max_pending: int = 1000,
        handler_grace: float = 2.0,
        clock: Callable[[], datetime],
    ) -> None:
        self._ws = ws
        self._session = session
        self._get_handler = get_handler
        self._auth_check = auth_check
        self._on_authenticated = on_authenticated
        self._on_closed = on_closed
        self._max_in_flight = max_in_flight
        self._running = 0
        self._waiting: deque[AnyRequest] = deque()
        self._held: list[bytes] | None = None
        self._paused_for_slots = False
        self._reading = True
        self._max_pending = max_pending
        self._out_slots = asyncio.Semaphore(max_pending)
        self._handler_grace = handler_grace
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dropped = 0
        self._started = False
        self._finishing: asyncio.Task[None] | None = None
        self._authenticated: asyncio.Future[None] = self._loop.create_future()
        self._closed = asyncio.Event()
        try:
            host, port = ws.remote_address[:2]
            self.peer = f"{host}:{port}"
        except (TypeError, ValueError):
            self.peer = "?"
        ws.attach(self)

    # ------------------------------------------------------------------ state

    @property
    def is_open(self) -> bool:
        """Authenticated, and the socket is not closing (a failed keepalive counts at once)."""
        return self._session.is_open and self._ws.is_open

    @property
    def close_code(self) -> int | None:
        """The close code the peer sent, once the socket is closed."""
        return self._ws.close_code

    @property
    def version(self) -> str:
        """The BTP version its session speaks ("1.0" or "2.0")."""
        return self._session.version

    @property
    def username(self) -> str:
        """The username of the auth handshake (empty for the reference's clients)."""
        return self._session.username

    def start(self) -> None:
        """Arm the auth deadline and (client side) send the auth message. Idempotent."""
        if self._started:
            return
        self._started = True
        deadline = self._session.next_deadline()
        if deadline is not None:
            self._arm(deadline)
        self._flush()

    async def wait_authenticated(self) -> None:
        """Return once authenticated.

        Raises:
            PeerError: the peer refused our credentials (a `NotAcceptedError` too).
            PeerTimeoutError: no auth answer before the auth deadline.
            UnreachableError: the socket closed first.
        """
        await asyncio.shield(self._authenticated)

    async def wait_closed(self) -> None:
        """Return once the socket is closed and the request handlers have finished."""
        await self._closed.wait()

    # ------------------------------------------------------------------ outgoing

    async def request(self, packet: AnyPacket, timeout: float) -> Response:  # noqa: ASYNC109
        """Send a request and wait for its answer (the packet's own `request_id` is ignored).

        Raises:
            PeerError: the peer answered with a BTP Error (also an instance of the named class).
            PeerTimeoutError: no answer within `timeout` seconds (`ConnectionLostError` when the
                socket closed while waiting).
            UnreachableError: the request could not be written (connection closed; or
                `PendingLimitError`, no slot freed up within the timeout).
            CodecError: the packet cannot be encoded (or is not of the session's BTP version).
        """
        ws = self._ws
        if not ws.is_open:
            raise SessionClosedError("the socket is closing; request not sent")
        loop = self._loop
        deadline = loop.time() + timeout
        slots = self._out_slots
        if slots.locked():
            await self._wait_for_slot(deadline)
        else:
            await slots.acquire()  # free: returns at once
        try:
            if not ws.is_open:
                raise SessionClosedError("the socket is closing; request not sent")
            future: asyncio.Future[Answer] = loop.create_future()
            request_id = self._session.send_request(packet, deadline=deadline, context=future)
            if self._timer is None or deadline < self._timer_at:
                self._arm(deadline)
            try:
                self._flush()
                if ws.must_drain:
                    await ws.drain()
                answer = await future
            except asyncio.CancelledError:
                self._session.forget(request_id)
                raise
        finally:
            slots.release()
        if type(answer) is Response:
            return answer
        assert isinstance(answer, Error)
        raise PeerError.from_btp_error(
            code=answer.code, name=answer.name, data=answer.data, triggered_at=answer.triggered_at
        )

    async def _wait_for_slot(self, deadline: float) -> None:
        try:
            async with asyncio.timeout_at(deadline):
                await self._out_slots.acquire()
        except TimeoutError:
            raise PendingLimitError(
                f"{self._max_pending} requests to {self.peer} were awaiting answers for this"
                " request's whole timeout; it was not sent"
            ) from None

    def _flush(self) -> None:
        """Hand the frames the session queued to the socket (written at the next loop turn,
        together with everything else queued meanwhile: one syscall, not one each)."""
        send = self._ws.send
        for frame in self._session.data_to_send():
            send(frame)

    # ------------------------------------------------------------------ timer

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        for event in self._session.expire(self._loop.time()):
            if isinstance(event, RequestTimedOut):
                future = event.context
                if not future.done():
                    future.set_exception(
                        PeerTimeoutError(
                            f"peer did not answer BTP request {event.request_id} in time"
                        )
                    )
            elif isinstance(event, AuthTimedOut):
                note = STRANGER_LOGS.allow()
                if note is not None:
                    logger.info("BTP auth with %s timed out; closing the socket%s", self.peer, note)
                self._settle_auth(PeerTimeoutError("no answer to the BTP auth message in time"))
                self._stop_reading()
                self._ws.close(CLOSE_POLICY_VIOLATION, "authentication timed out")
        following = self._session.next_deadline()
        if following is not None and self._session.state is not SessionState.CLOSED:
            self._arm(following)

    # ------------------------------------------------------------------ incoming (sink)

    def message_received(self, data: bytes) -> None:
        """A binary message from the socket: what the session makes of it, acted on now."""
        held = self._held
        if held is not None:
            held.append(data)
            return
        if not self._reading:
            return
        try:
            event = self._session.receive_frame(data)
            if isinstance(event, AnswerReceived):
                future = event.context
                if not future.done():
                    future.set_result(event.packet)
            elif isinstance(event, RequestReceived):
                self._admit(event.packet)
            else:
                self._other(event)
        except Exception:
            logger.exception("BTP connection with %s failed; closing it", self.peer)
            self._stop_reading()
            self._ws.fail(1011, "internal error")

    def text_received(self) -> None:
        """A text message: BTP is binary only, so the session ends with 1003."""
        if not self._reading:
            return
        note = "" if self._session.is_open else STRANGER_LOGS.allow()
        violation = self._session.receive_text()
        if note is not None:
            logger.warning("%s sent a text frame; closing with 1003%s", self.peer, note)
        self._stop_reading()
        self._ws.close(violation.close_code, violation.reason)

    def socket_closed(self) -> None:
        """The socket is gone: fail what is pending, let the handlers finish, then report."""
        self._reading = False
        self._held = None
        self._waiting.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sent_lost = 0
        for future, sent in self._session.close():
            if future.done():
                continue
            if sent:
                sent_lost += 1
                future.set_exception(
                    ConnectionLostError("connection to the peer closed before it answered")
                )
            else:
                future.set_exception(
                    UnreachableError("connection to the peer closed before the request was sent")
                )
        if sent_lost:
            logger.info("%d requests to %s lost with the socket", sent_lost, self.peer)
        self._settle_auth(UnreachableError("connection closed before authentication"))
        tasks = set(self._tasks)
        if tasks:
            self._finishing = self._loop.create_task(self._let_handlers_finish(tasks))
        else:
            self._done()

    async def _let_handlers_finish(self, tasks: set[asyncio.Task[Any]]) -> None:
        _, late = await asyncio.wait(tasks, timeout=self._handler_grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
        self._done()

    def _done(self) -> None:
        self._closed.set()
        if self._on_closed is not None:
            self._on_closed(self)

    def _stop_reading(self) -> None:
        """The session is over because of what was read: ignore whatever follows (the socket
        is read on, for the closing handshake)."""
        self._reading = False
        self._held = None
        self._waiting.clear()
        self._paused_for_slots = False
        self._ws.resume_reading()

    def _other(self, event: Event[asyncio.Future[Answer]]) -> None:
        if isinstance(event, AuthRequested):
            self._held = []  # messages after the auth wait for the check's verdict
            self._ws.pause_reading()
            self._spawn(self._authorise(event))
        elif isinstance(event, Authenticated):
            self._flush()
            self._settle_auth(None)
        elif isinstance(event, AuthRefused):
            self._refused(event)
        elif isinstance(event, UnmatchedAnswer):
            logger.debug(
                "dropping %s for unknown or expired request %d from %s",
                type(event.packet).__name__,
                event.packet.request_id,
                self.peer,
            )
        elif isinstance(event, UndecodableFrame):
            self._report_dropped("undecodable %d-byte frame: %s", event.size, event.error)
        elif isinstance(event, UnexpectedPacket):
            self._report_dropped(
                "%s %d: %s",
                type(event.packet).__name__,
                event.packet.request_id,
                event.reason,
            )

    def _report_dropped(self, what: str, *args: object) -> None:
        """Log a dropped frame; past the first few per socket only every 1000th, so a peer
        sending garbage cannot flood the log."""
        self._dropped += 1
        count = self._dropped
        if count <= 10 or count % 1000 == 0:
            logger.warning("dropping from %s (#%d) " + what, self.peer, count, *args)

    async def _authorise(self, event: AuthRequested) -> None:
        check = self._auth_check
        accepted = check is not None and await run_auth_check(check, event.username, event.token)
        outcome = (
            self._session.accept_auth(event.username) if accepted else self._session.refuse_auth()
        )
        held, self._held = self._held, None
        if outcome is None or held is None:  # the auth deadline passed, or the socket closed
            return
        if isinstance(outcome, AuthRefused):
            self._refused(outcome)
            return
        self._settle_auth(None)  # the listener makes us the active socket before the peer knows
        self._flush()
        for data in held:
            self.message_received(data)
        self._update_reading()

    def _refused(self, event: AuthRefused) -> None:
        error = event.error
        if self._session.role is Role.SERVER:
            note = STRANGER_LOGS.allow()
            if note is not None:
                logger.info("refused BTP auth from %s: %s%s", self.peer, error.data, note)
            self._flush()
            self._settle_auth(UnreachableError("peer failed to authenticate"))
        else:
            self._settle_auth(
                PeerError.from_btp_error(
                    code=error.code,
                    name=error.name,
                    data=error.data,
                    triggered_at=error.triggered_at,
                )
            )
        self._stop_reading()
        self._ws.close(event.close_code, "authentication failed")

    def _settle_auth(self, exc: BaseException | None) -> None:
        waiter = self._authenticated
        if waiter.done():
            return
        if exc is None:
            waiter.set_result(None)
            if self._on_authenticated is not None:
                self._on_authenticated(self)
        else:
            waiter.set_exception(exc)
            waiter.exception()  # retrieved: nobody may be waiting (server side)

    # ------------------------------------------------------------------ incoming requests

    def _admit(self, packet: AnyRequest) -> None:
        """Serve the request now, or once a slot frees up (the socket is not read meanwhile)."""
        if self._running < self._max_in_flight:
            self._running += 1
            self._spawn(self._serve(packet))
        else:
            self._waiting.append(packet)
            if not self._paused_for_slots:
                self._paused_for_slots = True
                self._ws.pause_reading()

    def _release_slot(self) -> None:
        """A request was answered: its slot goes to the next one waiting, if any."""
        if self._waiting:
            self._spawn(self._serve(self._waiting.popleft()))
            return
        self._running -= 1
        if self._paused_for_slots:
            self._paused_for_slots = False
            self._update_reading()

    def _update_reading(self) -> None:
        if self._held is None and not self._paused_for_slots:
            self._ws.resume_reading()

    async def _serve(self, packet: AnyRequest) -> None:
        request_id = packet.request_id
        encode = self._session.encode
        try:
            answer = await self._answer(packet)
            try:
                frame = encode(answer)
            except CodecError as exc:
                logger.error("request handler's answer cannot be encoded: %s", exc)
                frame = encode(self._error_for(request_id, exc))
            if answer.request_id != request_id:
                frame = with_request_id(frame, request_id)
            ws = self._ws
            ws.send(frame)
            if ws.must_drain:
                await ws.drain()
        finally:
            self._release_slot()

    async def _answer(self, packet: AnyRequest) -> Response | Error:
        handler = cast(
            "Callable[[AnyRequest], Awaitable[Response | Error]] | None", self._get_handler()
        )
        if handler is None:
            return Error(
                packet.request_id,
                "F00",
                "NotAcceptedError",
                self._clock(),
                error_data("no request handler registered"),
                (),
            )
        try:
            answer = await handler(packet)
        except Exception as exc:
            if isinstance(exc, PluginError):
                logger.debug("request %d refused: %r", packet.request_id, exc)
            else:
                logger.warning("request handler failed", exc_info=True)
            return self._error_for(packet.request_id, exc)
        if not isinstance(answer, Response | Error):
            logger.error("request handler returned %s, not Response or Error", type(answer))
            return self._error_for(
                packet.request_id, TypeError("request handler returned no Response or Error")
            )
        return answer

    def _error_for(self, request_id: int, exc: BaseException) -> Error:
        return Error(
            request_id,
            ilp_code_for(exc),
            error_name_for(exc),
            self._clock(),
            error_data(str(exc)),
            (),
        )

    # ------------------------------------------------------------------ tasks and closing

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (pending requests then fail) and wait until it is all done."""
        self._ws.close(code, reason)
        await self._closed.wait()
