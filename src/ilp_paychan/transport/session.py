"""The BTP session as a sans-I/O state machine: bytes in, events and bytes out, no sockets.

Rules this module keeps (everything that decides what a frame means lives here):
- The server side checks the first packet exactly as the reference does (the same order, error
  codes, names and message texts), then waits for the shell's verdict on the
  credentials, because a user's `auth_check` may be asynchronous.
- The client side writes the auth Message first; requests made before the answer are queued and
  never overtake it (a request sent before the auth would be refused as unauthenticated).
- Every session has its own auth deadline and every pending request its own
  deadline; `next_deadline()` and `expire(now)` let the shell run one timer for all of them.
- Answers are matched by request id only; unknown or late answers are reported and dropped, and
  undecodable frames are reported and never answered (as RFC 23 and the reference do).
- Times are the caller's monotonic clock readings (floats, seconds); only `triggeredAt` of the
  Error packets uses the injected wall clock.

Two versions share this machinery: `BtpSession` speaks BTP 1.0 (`codec.btp`) and
`Btp2Session` BTP 2.0 (`codec.btp2`: Message and Transfer requests, ILP packets inside a
Message). They differ only in the codec and in the server's checks of the auth Message, which
follow the peer software of each generation (see `Btp2Session`). `session_class(version)` picks
one.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any, ClassVar, Final, Generic, TypeVar

from ilp_paychan.codec import btp, btp2
from ilp_paychan.codec.btp import (
    ContentType,
    Error,
    Message,
    ProtocolData,
    Response,
)
from ilp_paychan.codec.errors import CodecError
from ilp_paychan.errors import InvalidFieldsError, UnreachableError
from ilp_paychan.transport.events import (
    AnswerReceived,
    AnyPacket,
    Authenticated,
    AuthRefused,
    AuthRequested,
    AuthTimedOut,
    Event,
    ProtocolViolation,
    RequestReceived,
    RequestTimedOut,
    UndecodableFrame,
    UnexpectedPacket,
    UnmatchedAnswer,
)

C = TypeVar("C")

CLOSE_NORMAL = 1000
CLOSE_POLICY_VIOLATION = 1008
CLOSE_UNSUPPORTED_DATA = 1003
#: Sent by a listener to the older of two sockets that authenticated for the same peer.
CLOSE_REPLACED = 4001

_EMPTY_PD: tuple[ProtocolData, ...] = ()

#: The BTP versions a session speaks, by the names the `version` options take.
BTP_VERSIONS: Final = ("1.0", "2.0")


class Role(Enum):
    """Which side of the auth handshake a session plays: the client sends it."""

    CLIENT = "client"
    SERVER = "server"


class SessionState(Enum):
    """Where a session is in its life; only an OPEN one carries requests."""

    AUTHENTICATING = "authenticating"
    #: server side only: checks 1-4 passed, waiting for `accept_auth()` / `refuse_auth()`
    AUTH_PENDING = "auth_pending"
    OPEN = "open"
    CLOSED = "closed"


class SessionClosedError(UnreachableError):
    """A request was offered to a session that cannot send it (closed, or a server side that
    has not authenticated its peer). Nothing was written, so the peer never saw it."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock of a session)."""
    return datetime.now(UTC)


def error_data(message: str) -> str:
    """The reference's Error data: `JSON.stringify({message})` (no spaces, non-ASCII kept)."""
    return json.dumps({"message": message}, separators=(",", ":"), ensure_ascii=False)


def with_request_id(frame: bytes, request_id: int) -> bytes:
    """The frame with another request id: it sits in bytes 1-4 of every BTP envelope, so
    a packet is encoded once whatever id it is finally sent under."""
    return b"".join((frame[:1], request_id.to_bytes(4, "big"), frame[5:]))


class _Pending(Generic[C]):
    __slots__ = ("context", "deadline", "request_id", "sent")

    def __init__(self, request_id: int, deadline: float, context: C, sent: bool) -> None:
        self.request_id = request_id
        self.deadline = deadline
        self.context = context
        self.sent = sent


# Auth refusals: (code, name, message), in the order the reference checks them.
_NOT_A_MESSAGE = ("F01", "InvalidFieldsError", "invalid method on unauthenticated socket")
_AUTH_NOT_PRIMARY = (
    "F01",
    "InvalidFieldsError",
    "auth must be primary protocol on unauthenticated message",
)
_NO_TOKEN = ("F01", "InvalidFieldsError", 'missing "auth_token" secondary protocol')
_NO_USERNAME = ("F01", "InvalidFieldsError", 'missing "auth_username" secondary protocol')
_BAD_CREDENTIALS = ("F00", "NotAcceptedError", "invalid auth token and/or username")


class BtpSession(Generic[C]):
    """One BTP session over one WebSocket, either side.

    Build one with `BtpSession.server(...)` or `BtpSession.client(...)`. After every call, the
    shell writes `data_to_send()` to the socket in order. `C` is whatever the shell attaches to
    a pending request (an asyncio future, say); the session hands it back in events.

    Request ids are random 32-bit numbers (as the reference's `crypto.randomBytes(4)`),
    redrawn when they collide with a pending request, so two requests in flight never share one.

    This class speaks BTP 1.0; `Btp2Session` is the BTP 2.0 variant.
    """

    #: The BTP version this session speaks (one of BTP_VERSIONS).
    version: ClassVar[str] = "1.0"
    _bad_credentials: ClassVar[tuple[str, str, str]] = _BAD_CREDENTIALS

    def __init__(
        self,
        role: Role,
        *,
        now: float,
        auth_timeout: float,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.role = role
        self.encode: Callable[[Any], bytes]
        self._decode: Callable[[bytes], AnyPacket]
        self.encode, self._decode = _CODECS[self.version]
        self.state = SessionState.AUTHENTICATING
        self.username = ""
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._auth_deadline = now + auth_timeout
        self._auth_request_id: int | None = None
        self._pending: dict[int, _Pending[C]] = {}
        self._heap: list[tuple[float, int, _Pending[C]]] = []
        self._seq = 0
        self._queued: list[tuple[_Pending[C], bytes]] = []
        self._outbox: list[bytes] = []

    @classmethod
    def server(
        cls,
        *,
        now: float,
        auth_timeout: float = 2.0,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> BtpSession[C]:
        """A listener's session: the peer must authenticate within `auth_timeout` seconds."""
        return cls(Role.SERVER, now=now, auth_timeout=auth_timeout, clock=clock, rng=rng)

    @classmethod
    def client(
        cls,
        username: str,
        token: str,
        *,
        now: float,
        auth_timeout: float = 5.0,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> BtpSession[C]:
        """A dialler's session; the auth Message is already in `data_to_send()`."""
        session: BtpSession[C] = cls(
            Role.CLIENT, now=now, auth_timeout=auth_timeout, clock=clock, rng=rng
        )
        session.username = username
        auth_id = session._new_request_id()
        session._auth_request_id = auth_id
        auth = Message(
            request_id=auth_id,
            protocol_data=(
                ProtocolData("auth", ContentType.OCTET_STREAM, b""),
                ProtocolData("auth_username", ContentType.TEXT_PLAIN_UTF8, username.encode()),
                ProtocolData("auth_token", ContentType.TEXT_PLAIN_UTF8, token.encode()),
            ),
        )
        session._outbox.append(session.encode(auth))
        return session

    # ------------------------------------------------------------------ output

    def data_to_send(self) -> list[bytes]:
        """The frames to write, oldest first; each is one binary WebSocket message."""
        out = self._outbox
        if out:
            self._outbox = []
        return out

    @property
    def is_open(self) -> bool:
        """Authenticated and not closed: requests may be sent and answered."""
        return self.state is SessionState.OPEN

    @property
    def pending_count(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._pending)

    # ------------------------------------------------------------------ requests

    def send_request(self, packet: AnyPacket, *, deadline: float, context: C) -> int:
        """Queue a request (its own `request_id` is ignored) and return the id it goes out with.

        On a client that is still authenticating the frame waits behind the auth Message.

        Raises:
            CodecError: the packet cannot be encoded, or is not of this session's BTP version
                (nothing is queued).
            SessionClosedError: the session is closed, or is a server side not yet open.
        """
        state = self.state
        if state is not SessionState.OPEN and (
            state is SessionState.CLOSED or self.role is Role.SERVER
        ):
            raise SessionClosedError(f"BTP session is {state.value}; request not sent")
        frame = self.encode(packet)
        request_id = self._new_request_id()
        frame = with_request_id(frame, request_id)
        opened = state is SessionState.OPEN
        pending = _Pending(request_id, deadline, context, opened)
        self._pending[request_id] = pending
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, pending))
        if opened:
            self._outbox.append(frame)
        else:
            self._queued.append((pending, frame))
        return request_id

    def forget(self, request_id: int) -> C | None:
        """Stop waiting for an answer (the caller gave up); a later answer will be unmatched."""
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return None
        if not pending.sent:
            self._queued = [item for item in self._queued if item[0] is not pending]
        return pending.context

    def _new_request_id(self) -> int:
        getrandbits = self._rng.getrandbits
        request_id = getrandbits(32)
        while request_id in self._pending or request_id == self._auth_request_id:
            request_id = getrandbits(32)
        return request_id

    # ------------------------------------------------------------------ input

    def receive_frame(self, frame: bytes) -> Event[C]:
        """Feed one binary WebSocket message; returns what it meant."""
        try:
            packet = self._decode(frame)
        except CodecError as exc:
            return UndecodableFrame(exc, len(frame))
        if self.state is SessionState.OPEN:
            if isinstance(packet, Response | Error):
                pending = self._pending.pop(packet.request_id, None)
                if pending is None:
                    return UnmatchedAnswer(packet)
                if len(self._heap) > 2 * len(self._pending) + 1024:
                    self._compact()
                return AnswerReceived(packet, pending.context)
            return RequestReceived(packet)
        if self.state is SessionState.AUTHENTICATING:
            if self.role is Role.SERVER:
                return self._check_auth_packet(packet)
            return self._receive_auth_answer(packet)
        if self.state is SessionState.AUTH_PENDING:
            return UnexpectedPacket(packet, "received while the auth check is running")
        if isinstance(packet, Response | Error):
            return UnmatchedAnswer(packet)
        return UnexpectedPacket(packet, "received on a closed session")

    def receive_text(self) -> ProtocolViolation:
        """A text WebSocket message: BTP is binary only, so the session ends."""
        self._close()
        return ProtocolViolation("text frames are not BTP", CLOSE_UNSUPPORTED_DATA)

    # ------------------------------------------------------------------ server auth

    def _check_auth_packet(self, packet: AnyPacket) -> Event[C]:
        if not isinstance(packet, Message):
            return self._refuse(packet.request_id, _NOT_A_MESSAGE)
        entries = packet.protocol_data
        if not entries or entries[0].protocol_name != "auth":
            return self._refuse(packet.request_id, _AUTH_NOT_PRIMARY)
        token_entry = _first_named(entries, "auth_token")
        if token_entry is None:
            return self._refuse(packet.request_id, _NO_TOKEN)
        username_entry = _first_named(entries, "auth_username")
        if username_entry is None:
            return self._refuse(packet.request_id, _NO_USERNAME)
        if (
            token_entry.content_type != ContentType.TEXT_PLAIN_UTF8
            or username_entry.content_type != ContentType.TEXT_PLAIN_UTF8
        ):
            return self._refuse(packet.request_id, _BAD_CREDENTIALS)
        self.state = SessionState.AUTH_PENDING
        self._auth_request_id = packet.request_id
        return AuthRequested(
            packet.request_id,
            username_entry.data.decode("utf-8", errors="replace"),
            token_entry.data.decode("utf-8", errors="replace"),
        )

    def accept_auth(self, username: str = "") -> Authenticated | None:
        """The credentials of the `AuthRequested` event are good: answer Response, open.

        Returns None when the session closed meanwhile (auth deadline passed).
        """
        if self.state is not SessionState.AUTH_PENDING:
            if self.state is SessionState.CLOSED:
                return None
            raise RuntimeError(f"accept_auth() in state {self.state.value}")
        assert self._auth_request_id is not None
        self._outbox.append(self.encode(Response(self._auth_request_id, _EMPTY_PD)))
        self._auth_request_id = None
        self.state = SessionState.OPEN
        self.username = username
        return Authenticated(username)

    def refuse_auth(self) -> AuthRefused | None:
        """The credentials are wrong: answer the reference's NotAcceptedError, then close."""
        if self.state is not SessionState.AUTH_PENDING:
            if self.state is SessionState.CLOSED:
                return None
            raise RuntimeError(f"refuse_auth() in state {self.state.value}")
        assert self._auth_request_id is not None
        return self._refuse(self._auth_request_id, self._bad_credentials)

    def _refusal_data(self, message: str) -> str:
        """The data of an auth refusal: the reference's JSON `{"message": ...}`."""
        return error_data(message)

    def _refuse(self, request_id: int, reason: tuple[str, str, str]) -> AuthRefused:
        code, name, message = reason
        error = Error(request_id, code, name, self._clock(), self._refusal_data(message), _EMPTY_PD)
        self._outbox.append(self.encode(error))
        self._close()
        return AuthRefused(error, CLOSE_POLICY_VIOLATION)

    # ------------------------------------------------------------------ client auth

    def _receive_auth_answer(self, packet: AnyPacket) -> Event[C]:
        if not isinstance(packet, Response | Error):
            return UnexpectedPacket(packet, "request received before the auth answer")
        if packet.request_id != self._auth_request_id:
            return UnmatchedAnswer(packet)
        if isinstance(packet, Error):
            self._close()
            return AuthRefused(packet, CLOSE_NORMAL)
        self.state = SessionState.OPEN
        self._auth_request_id = None
        for pending, frame in self._queued:
            pending.sent = True
            self._outbox.append(frame)
        self._queued = []
        return Authenticated(self.username)

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """The earliest time at which `expire()` has something to do, if any."""
        heap = self._heap
        pending = self._pending
        while heap and pending.get(heap[0][2].request_id) is not heap[0][2]:
            heapq.heappop(heap)
        earliest = heap[0][0] if heap else None
        if self.state in (SessionState.AUTHENTICATING, SessionState.AUTH_PENDING) and (
            earliest is None or self._auth_deadline < earliest
        ):
            return self._auth_deadline
        return earliest

    def expire(self, now: float) -> list[Event[C]]:
        """Everything whose deadline is at or before `now`: the auth deadline first, then the
        timed-out requests in deadline order. A timed-out request is forgotten."""
        events: list[Event[C]] = []
        if (
            self.state in (SessionState.AUTHENTICATING, SessionState.AUTH_PENDING)
            and self._auth_deadline <= now
        ):
            self.state = SessionState.CLOSED
            events.append(AuthTimedOut())
        heap = self._heap
        pending_map = self._pending
        while heap and heap[0][0] <= now:
            _, _, pending = heapq.heappop(heap)
            if pending_map.get(pending.request_id) is pending:
                del pending_map[pending.request_id]
                if not pending.sent:
                    self._queued = [item for item in self._queued if item[0] is not pending]
                events.append(RequestTimedOut(pending.request_id, pending.context))
        return events

    def _compact(self) -> None:
        """Drop heap entries of answered requests so the heap stays near the live count."""
        pending = self._pending
        self._heap = [entry for entry in self._heap if pending.get(entry[2].request_id) is entry[2]]
        heapq.heapify(self._heap)

    # ------------------------------------------------------------------ end

    def close(self) -> list[tuple[C, bool]]:
        """End the session; returns every pending request's context and whether its frame was
        handed out for writing (False: it was still queued behind the auth and never sent)."""
        pending = [(p.context, p.sent) for p in self._pending.values()]
        self._close()
        self._pending = {}
        self._heap = []
        return pending

    def _close(self) -> None:
        """Stop the session; pending requests stay until `close()` hands them to the shell."""
        self.state = SessionState.CLOSED
        self._queued = []


def _first_named(entries: tuple[ProtocolData, ...], name: str) -> ProtocolData | None:
    for entry in entries:
        if entry.protocol_name == name:
            return entry
    return None


# Auth refusals of a BTP 2.0 listener: ilp-plugin-btp 1.5.0's checks, in its order, all
# answered F00 NotAcceptedError with the message itself as data.
_V2_NOT_A_MESSAGE = (
    "F00",
    "NotAcceptedError",
    "First message sent over BTP connection must be auth packet",
)
_V2_TOO_FEW = ("F00", "NotAcceptedError", "Auth packet must have auth and auth_token subprotocols")
_V2_AUTH_NOT_FIRST = ("F00", "NotAcceptedError", "First subprotocol must be auth")
_V2_NO_TOKEN = ("F00", "NotAcceptedError", "auth_token subprotocol is required")
_V2_BAD_TOKEN = ("F00", "NotAcceptedError", "invalid auth_token")


class Btp2Session(BtpSession[C]):
    """A BTP 2.0 session (RFC 23): Message and Transfer requests, decoded with `codec.btp2`.

    The client side sends the same auth Message as BTP 1.0 (`auth` empty octet stream,
    `auth_username` and `auth_token` as text, RFC 23 "Authentication"). The server side checks
    it as ilp-plugin-btp 1.5.0 does, so every client that software accepts is accepted here:
    the first packet must be a Message with at least two entries, `auth` first, and an
    `auth_token` entry; `auth_username` may be absent (then the username is "") and content
    types are not checked. Refusals are F00 NotAcceptedError whose data is the message itself
    (not JSON), as that software sends them.
    """

    version: ClassVar[str] = "2.0"
    _bad_credentials: ClassVar[tuple[str, str, str]] = _V2_BAD_TOKEN

    def _refusal_data(self, message: str) -> str:
        """ilp-plugin-btp puts the bare message in the data of an auth refusal."""
        return message

    def _check_auth_packet(self, packet: AnyPacket) -> Event[C]:
        if not isinstance(packet, Message):
            return self._refuse(packet.request_id, _V2_NOT_A_MESSAGE)
        entries = packet.protocol_data
        if len(entries) < 2:
            return self._refuse(packet.request_id, _V2_TOO_FEW)
        if entries[0].protocol_name != "auth":
            return self._refuse(packet.request_id, _V2_AUTH_NOT_FIRST)
        token_entry = _first_named(entries, "auth_token")
        if token_entry is None:
            return self._refuse(packet.request_id, _V2_NO_TOKEN)
        username_entry = _first_named(entries, "auth_username")
        username = "" if username_entry is None else username_entry.data.decode("utf-8", "replace")
        self.state = SessionState.AUTH_PENDING
        self._auth_request_id = packet.request_id
        return AuthRequested(
            packet.request_id, username, token_entry.data.decode("utf-8", errors="replace")
        )


_CODECS: Final[dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], AnyPacket]]]] = {
    "1.0": (btp.encode, btp.decode),
    "2.0": (btp2.encode, btp2.decode),
}


def check_version(version: object) -> str:
    """The BTP version of a `version` option, checked.

    Raises:
        InvalidFieldsError: naming ``version``, for anything but "1.0" or "2.0".
    """
    if version not in BTP_VERSIONS:
        raise InvalidFieldsError(
            f'invalid "version": expected one of {", ".join(map(repr, BTP_VERSIONS))};'
            f" got {version!r}"
        )
    return str(version)


def session_class(version: str) -> type[BtpSession[Any]]:
    """The session class of a BTP version ("1.0" or "2.0"; see `check_version`)."""
    return Btp2Session if check_version(version) == "2.0" else BtpSession
