"""BtpSession without sockets: the auth handshake byte for byte, request matching, deadlines."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.codec.btp import (
    ContentType,
    Error,
    Fulfill,
    Message,
    Prepare,
    ProtocolData,
    Response,
    decode,
    encode,
)
from ilp_paychan.transport.events import (
    AnswerReceived,
    Authenticated,
    AuthRefused,
    AuthRequested,
    AuthTimedOut,
    ProtocolViolation,
    RequestReceived,
    RequestTimedOut,
    UndecodableFrame,
    UnexpectedPacket,
    UnmatchedAnswer,
)
from ilp_paychan.transport.session import (
    CLOSE_UNSUPPORTED_DATA,
    BtpSession,
    SessionClosedError,
    SessionState,
    with_request_id,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
FIXED_TIME = datetime(2017, 12, 6, 19, 9, 28, 123000, tzinfo=UTC)


def fixed_clock() -> datetime:
    return FIXED_TIME


def vector_hex(file: str, vector_id: str) -> str:
    data = json.loads((VECTORS / "btp" / file).read_text(encoding="utf-8"))
    for vector in data["vectors"]:
        if vector["id"] == vector_id:
            return str(vector["hex"])
    raise KeyError(vector_id)


class ScriptedIds(random.Random):
    """A random source whose 32-bit draws follow a script (to pin request ids)."""

    def __init__(self, ids: list[int]) -> None:
        super().__init__(0)
        self._ids = list(ids)

    def getrandbits(self, k: int) -> int:
        return self._ids.pop(0)


def pd(name: str, content_type: int, data: bytes) -> ProtocolData:
    return ProtocolData(name, content_type, data)


AUTH = pd("auth", ContentType.OCTET_STREAM, b"")
USER = pd("auth_username", ContentType.TEXT_PLAIN_UTF8, b"")
TOKEN = pd("auth_token", ContentType.TEXT_PLAIN_UTF8, b"shared_secret")


def server(now: float = 0.0) -> BtpSession[str]:
    return BtpSession.server(now=now, auth_timeout=2.0, clock=fixed_clock)


def open_server() -> BtpSession[str]:
    session = server()
    event = session.receive_frame(encode(Message(7, (AUTH, USER, TOKEN))))
    assert isinstance(event, AuthRequested)
    session.accept_auth()
    session.data_to_send()
    return session


# ---------------------------------------------------------------- server handshake (auth)


def test_server_good_auth_asks_for_a_verdict_then_answers_an_empty_response() -> None:
    session = server()
    event = session.receive_frame(encode(Message(42, (AUTH, USER, TOKEN))))
    assert event == AuthRequested(42, "", "shared_secret")
    assert session.state is SessionState.AUTH_PENDING
    assert session.data_to_send() == []
    assert session.accept_auth() == Authenticated("")
    assert session.data_to_send() == [encode(Response(42, ()))]
    assert session.is_open


@pytest.mark.parametrize(
    ("first_packet", "vector_id"),
    [
        (
            Fulfill(100, "5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1", b"\0" * 32),
            "error-auth-wrong-method",
        ),
        (Message(100, ()), "error-auth-not-primary"),
        (Message(100, (USER, AUTH, TOKEN)), "error-auth-not-primary"),
        (Message(100, (AUTH, USER)), "error-auth-missing-token"),
        (Message(100, (AUTH, TOKEN)), "error-auth-missing-username"),
        (
            Message(100, (AUTH, USER, pd("auth_token", ContentType.OCTET_STREAM, b"x"))),
            "error-auth-rejected",
        ),
        (
            Message(100, (AUTH, pd("auth_username", ContentType.APPLICATION_JSON, b'""'), TOKEN)),
            "error-auth-rejected",
        ),
    ],
)
def test_server_refuses_a_bad_first_packet_with_the_reference_bytes(
    first_packet: Any, vector_id: str
) -> None:
    session = server()
    event = session.receive_frame(encode(first_packet))
    assert isinstance(event, AuthRefused)
    assert session.data_to_send() == [bytes.fromhex(vector_hex("error.json", vector_id))]
    assert session.state is SessionState.CLOSED


def test_server_refusal_after_a_failed_check_sends_the_rejected_error() -> None:
    session = server()
    session.receive_frame(encode(Message(100, (AUTH, USER, TOKEN))))
    event = session.refuse_auth()
    assert isinstance(event, AuthRefused)
    assert event.error.code == "F00"
    assert session.data_to_send() == [
        bytes.fromhex(vector_hex("error.json", "error-auth-rejected"))
    ]
    assert session.state is SessionState.CLOSED


def test_server_uses_the_first_entry_of_each_credential_name() -> None:
    session = server()
    second = pd("auth_token", ContentType.TEXT_PLAIN_UTF8, b"second")
    event = session.receive_frame(encode(Message(1, (AUTH, TOKEN, second, USER))))
    assert event == AuthRequested(1, "", "shared_secret")


def test_server_drops_an_undecodable_first_frame_and_keeps_waiting() -> None:
    session = server()
    event = session.receive_frame(b"\x06\x00\x00\x00\x01\x0b\x01")
    assert isinstance(event, UndecodableFrame)
    assert event.size == 7
    assert session.data_to_send() == []
    assert session.state is SessionState.AUTHENTICATING


def test_server_auth_deadline_is_its_own() -> None:
    session = server(now=10.0)
    assert session.next_deadline() == 12.0
    assert session.expire(11.999) == []
    assert session.expire(12.0) == [AuthTimedOut()]
    assert session.state is SessionState.CLOSED
    assert session.accept_auth() is None


def test_server_deadline_passing_during_a_slow_check_closes() -> None:
    session = server()
    session.receive_frame(encode(Message(1, (AUTH, USER, TOKEN))))
    assert session.expire(5.0) == [AuthTimedOut()]
    assert session.accept_auth() is None
    assert session.data_to_send() == []


def test_server_cannot_send_before_its_peer_authenticated() -> None:
    session = server()
    with pytest.raises(SessionClosedError):
        session.send_request(Message(0, ()), deadline=5.0, context="x")


def test_a_text_frame_ends_the_session_with_1003() -> None:
    session = open_server()
    violation = session.receive_text()
    assert isinstance(violation, ProtocolViolation)
    assert violation.close_code == CLOSE_UNSUPPORTED_DATA
    assert session.state is SessionState.CLOSED


# ---------------------------------------------------------------- client handshake


def test_client_auth_message_is_the_reference_frame() -> None:
    session: BtpSession[str] = BtpSession.client(
        "", "shared_secret", now=0.0, rng=ScriptedIds([0x12345678])
    )
    expected = bytes.fromhex(vector_hex("message.json", "message-auth-empty-username"))
    assert session.data_to_send() == [expected]


def test_client_auth_message_carries_unicode_token() -> None:
    session: BtpSession[str] = BtpSession.client(
        "", "shhh sécret", now=0.0, rng=ScriptedIds([0xFFFFFFFF])
    )
    expected = bytes.fromhex(vector_hex("message.json", "message-auth-unicode-token"))
    assert session.data_to_send() == [expected]


def test_client_requests_wait_behind_the_auth_message() -> None:
    session: BtpSession[str] = BtpSession.client("u", "t", now=0.0, rng=ScriptedIds([1, 2, 3]))
    [auth_frame] = session.data_to_send()
    first = session.send_request(Message(0, (pd("a", 0, b"1"),)), deadline=5.0, context="a")
    second = session.send_request(Message(0, (pd("b", 0, b"2"),)), deadline=5.0, context="b")
    assert (first, second) == (2, 3)
    assert session.data_to_send() == []
    assert session.receive_frame(encode(Response(1))) == Authenticated("u")
    frames = [decode(frame) for frame in session.data_to_send()]
    assert [f.request_id for f in frames] == [2, 3]
    assert decode(auth_frame).request_id == 1


def test_client_auth_error_refuses_and_returns_queued_requests_as_unsent() -> None:
    session: BtpSession[str] = BtpSession.client("u", "t", now=0.0, rng=ScriptedIds([1, 2]))
    session.send_request(Message(0, ()), deadline=5.0, context="queued")
    error = Error(1, "F00", "NotAcceptedError", FIXED_TIME, '{"message":"no"}')
    event = session.receive_frame(encode(error))
    assert event == AuthRefused(error, 1000)
    assert session.state is SessionState.CLOSED
    assert session.close() == [("queued", False)]


def test_client_ignores_answers_to_other_ids_while_authenticating() -> None:
    session: BtpSession[str] = BtpSession.client("u", "t", now=0.0, rng=ScriptedIds([1]))
    assert isinstance(session.receive_frame(encode(Response(99))), UnmatchedAnswer)
    event = session.receive_frame(encode(Message(5, ())))
    assert isinstance(event, UnexpectedPacket)
    assert session.state is SessionState.AUTHENTICATING


def test_client_auth_timeout() -> None:
    session: BtpSession[str] = BtpSession.client("u", "t", now=1.0, auth_timeout=5.0)
    assert session.next_deadline() == 6.0
    assert session.expire(6.0) == [AuthTimedOut()]


# ---------------------------------------------------------------- requests and answers


def test_answers_are_matched_by_id_in_any_order() -> None:
    session = open_server()
    ids = [session.send_request(Message(0, ()), deadline=5.0, context=name) for name in "abc"]
    frames = session.data_to_send()
    assert [decode(frame).request_id for frame in frames] == ids
    assert len(set(ids)) == 3
    for request_id, name in zip(reversed(ids), "cba", strict=True):
        event = session.receive_frame(encode(Response(request_id)))
        assert event == AnswerReceived(Response(request_id), name)
    assert session.pending_count == 0


def test_an_error_answer_is_matched_too() -> None:
    session = open_server()
    request_id = session.send_request(Message(0, ()), deadline=5.0, context="a")
    error = Error(request_id, "F04", "DuplicateIdError", FIXED_TIME, "{}")
    assert session.receive_frame(encode(error)) == AnswerReceived(error, "a")


def test_unknown_and_late_answers_are_unmatched() -> None:
    session = open_server()
    request_id = session.send_request(Message(0, ()), deadline=5.0, context="a")
    assert isinstance(session.receive_frame(encode(Response(request_id ^ 1))), UnmatchedAnswer)
    assert session.expire(5.0) == [RequestTimedOut(request_id, "a")]
    assert isinstance(session.receive_frame(encode(Response(request_id))), UnmatchedAnswer)


def test_requests_from_the_peer_are_events() -> None:
    session = open_server()
    prepare = Prepare(9, "5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1", 10, b"\1" * 32, FIXED_TIME)
    assert session.receive_frame(encode(prepare)) == RequestReceived(prepare)


def test_undecodable_frames_on_an_open_session_are_dropped_without_answer() -> None:
    session = open_server()
    assert isinstance(session.receive_frame(b"\x07garbage"), UndecodableFrame)
    assert session.data_to_send() == []
    assert session.is_open


def test_expiry_follows_deadline_order_whatever_the_send_order() -> None:
    session = open_server()
    late = session.send_request(Message(0, ()), deadline=9.0, context="late")
    early = session.send_request(Message(0, ()), deadline=3.0, context="early")
    middle = session.send_request(Message(0, ()), deadline=6.0, context="middle")
    assert session.next_deadline() == 3.0
    assert session.expire(2.9) == []
    assert session.expire(6.0) == [
        RequestTimedOut(early, "early"),
        RequestTimedOut(middle, "middle"),
    ]
    assert session.next_deadline() == 9.0
    session.receive_frame(encode(Response(late)))
    assert session.next_deadline() is None
    assert session.expire(100.0) == []


def test_colliding_random_ids_are_redrawn() -> None:
    session: BtpSession[str] = BtpSession.client("", "", now=0.0, rng=ScriptedIds([7, 7, 8, 8, 9]))
    session.receive_frame(encode(Response(7)))
    assert session.send_request(Message(0, ()), deadline=1.0, context="a") == 7
    assert session.send_request(Message(0, ()), deadline=1.0, context="b") == 8
    assert session.send_request(Message(0, ()), deadline=1.0, context="c") == 9


def test_forget_drops_the_pending_request() -> None:
    session = open_server()
    request_id = session.send_request(Message(0, ()), deadline=1.0, context="a")
    assert session.forget(request_id) == "a"
    assert session.forget(request_id) is None
    assert isinstance(session.receive_frame(encode(Response(request_id))), UnmatchedAnswer)
    assert session.expire(2.0) == []


def test_close_returns_pending_contexts_and_refuses_more() -> None:
    session = open_server()
    session.send_request(Message(0, ()), deadline=1.0, context="a")
    assert session.close() == [("a", True)]
    with pytest.raises(SessionClosedError):
        session.send_request(Message(0, ()), deadline=1.0, context="b")


def test_many_answered_requests_do_not_pile_up_deadlines() -> None:
    session = open_server()
    for _ in range(5000):
        request_id = session.send_request(Message(0, ()), deadline=5.0, context="x")
        session.receive_frame(encode(Response(request_id)))
    keep = session.send_request(Message(0, ()), deadline=4.0, context="keep")
    assert len(session._heap) < 3000
    assert session.next_deadline() == 4.0
    assert session.expire(5.0) == [RequestTimedOut(keep, "keep")]


def test_send_request_ignores_the_packet_id_and_encodes_once() -> None:
    session = open_server()
    request_id = session.send_request(Message(123, (TOKEN,)), deadline=1.0, context="a")
    [frame] = session.data_to_send()
    assert frame == encode(Message(request_id, (TOKEN,)))
    assert with_request_id(frame, 123) == encode(Message(123, (TOKEN,)))
