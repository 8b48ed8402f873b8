"""What a `BtpSession` reports after it is fed a frame or asked to expire deadlines.

One frozen dataclass per kind of happening, in the manner of h11's events. The asyncio shells
(`connection.py`) turn them into I/O; the session itself never performs any.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ilp_paychan.codec.btp import Error, Fulfill, Message, Packet, Prepare, Reject, Response
from ilp_paychan.codec.btp2 import Transfer
from ilp_paychan.codec.errors import CodecError

C = TypeVar("C")

#: The requests of a BTP 1.0 session.
Request = Prepare | Fulfill | Reject | Message
#: The requests of a BTP 2.0 session (RFC 23: ILP packets travel inside a Message).
Request2 = Message | Transfer
#: A request of either version; a session only ever reports those of its own.
AnyRequest = Request | Transfer
#: A packet of either version (what a session may be asked to send or may decode).
AnyPacket = Packet | Transfer
Answer = Response | Error


@dataclass(frozen=True, slots=True)
class AuthRequested:
    """Server side: the first packet passed the auth message's shape checks; the shell must now
    run the auth check (it may be asynchronous) and call `accept_auth()` or `refuse_auth()`."""

    request_id: int
    username: str
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The handshake succeeded; requests may flow (client side: queued ones are in the outbox)."""

    username: str


@dataclass(frozen=True, slots=True)
class AuthRefused:
    """The handshake failed. Server side: `error` is the BTP Error we queued for the peer.
    Client side: `error` is the peer's answer. Either way the session is closed and the shell
    must close the socket with `close_code`."""

    error: Error
    close_code: int


@dataclass(frozen=True, slots=True)
class AuthTimedOut:
    """No successful handshake before the auth deadline; close the socket without a message."""


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """The peer sent a request on an open session: Prepare, Fulfill, Reject or Message (BTP
    1.0), Message or Transfer (BTP 2.0)."""

    packet: AnyRequest


@dataclass(frozen=True, slots=True)
class AnswerReceived(Generic[C]):
    """A Response or Error answered one of our pending requests; `context` is what the caller
    attached to it in `send_request()`."""

    packet: Answer
    context: C


@dataclass(frozen=True, slots=True)
class UnmatchedAnswer:
    """A Response or Error with an id we are not waiting for (unknown, or late after a timeout).
    Dropped without answer, as the reference and RFC 23 do."""

    packet: Answer


@dataclass(frozen=True, slots=True)
class RequestTimedOut(Generic[C]):
    """A pending request passed its deadline; a late answer will be an `UnmatchedAnswer`."""

    request_id: int
    context: C


@dataclass(frozen=True, slots=True)
class UndecodableFrame:
    """A binary frame the codec refused. Dropped without answer (no request id can be trusted
    in it); reported for logging."""

    error: CodecError
    size: int


@dataclass(frozen=True, slots=True)
class UnexpectedPacket:
    """A decodable packet that has no place in the current state (e.g. a request before auth)."""

    packet: AnyPacket
    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """Something that ends the session (a text frame): close the socket with `close_code`."""

    reason: str
    close_code: int


Event = (
    AuthRequested
    | Authenticated
    | AuthRefused
    | AuthTimedOut
    | RequestReceived
    | AnswerReceived[C]
    | UnmatchedAnswer
    | RequestTimedOut[C]
    | UndecodableFrame
    | UnexpectedPacket
    | ProtocolViolation
)
