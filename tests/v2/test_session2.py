"""Btp2Session without sockets: ilp-plugin-btp 1.5.0's auth checks, BTP 2.0 frames both ways."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ilp_paychan.codec import btp, btp2
from ilp_paychan.codec.btp import ContentType, Error, Message, ProtocolData, Response
from ilp_paychan.codec.btp2 import Transfer
from ilp_paychan.codec.errors import CodecError
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.transport.events import (
    AnswerReceived,
    Authenticated,
    AuthRefused,
    AuthRequested,
    RequestReceived,
    UndecodableFrame,
)
from ilp_paychan.transport.session import (
    Btp2Session,
    BtpSession,
    SessionState,
    check_version,
    session_class,
)

FIXED_TIME = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)

AUTH = ProtocolData("auth", ContentType.OCTET_STREAM, b"")
USER = ProtocolData("auth_username", ContentType.TEXT_PLAIN_UTF8, b"alice")
TOKEN = ProtocolData("auth_token", ContentType.TEXT_PLAIN_UTF8, b"secret")


def server() -> Btp2Session[str]:
    return Btp2Session.server(now=0.0, auth_timeout=2.0, clock=lambda: FIXED_TIME)


def open_pair() -> tuple[Btp2Session[str], Btp2Session[str]]:
    """A client and a server session, authenticated by passing frames by hand."""
    client: Btp2Session[str] = Btp2Session.client("", "secret", now=0.0)
    srv = server()
    (auth,) = client.data_to_send()
    event = srv.receive_frame(auth)
    assert isinstance(event, AuthRequested)
    srv.accept_auth(event.username)
    (answer,) = srv.data_to_send()
    assert client.receive_frame(answer) == Authenticated("")
    return client, srv


def test_version_picks_the_session_class() -> None:
    assert session_class("1.0") is BtpSession
    assert session_class("2.0") is Btp2Session
    assert Btp2Session.version == "2.0"
    assert BtpSession.version == "1.0"


@pytest.mark.parametrize("bad", ["2", 2, None, "3.0", "v2"])
def test_an_unknown_version_is_refused_naming_the_field(bad: Any) -> None:
    with pytest.raises(InvalidFieldsError, match='"version"'):
        check_version(bad)


def test_the_client_auth_message_is_rfc23s_and_ilp_plugin_btps() -> None:
    client: Btp2Session[str] = Btp2Session.client("", "tok", now=0.0)
    (frame,) = client.data_to_send()
    packet = btp2.decode(frame)
    assert isinstance(packet, Message)
    assert packet.protocol_data == (
        AUTH,
        ProtocolData("auth_username", ContentType.TEXT_PLAIN_UTF8, b""),
        ProtocolData("auth_token", ContentType.TEXT_PLAIN_UTF8, b"tok"),
    )


@pytest.mark.parametrize(
    "entries",
    [
        (AUTH, USER, TOKEN),
        (AUTH, TOKEN),  # no auth_username at all: accepted, username ""
        (AUTH, ProtocolData("auth_token", ContentType.OCTET_STREAM, b"secret")),
    ],
)
def test_the_server_accepts_what_ilp_plugin_btp_accepts(entries: tuple[ProtocolData, ...]) -> None:
    srv = server()
    event = srv.receive_frame(btp2.encode(Message(9, entries)))
    assert isinstance(event, AuthRequested)
    assert event.token == "secret"
    assert event.username == ("alice" if USER in entries else "")
    assert srv.accept_auth(event.username) == Authenticated(event.username)
    assert srv.data_to_send() == [btp2.encode(Response(9, ()))]


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (Transfer(5, 10), "First message sent over BTP connection must be auth packet"),
        (Message(5, (AUTH,)), "Auth packet must have auth and auth_token subprotocols"),
        (Message(5, (TOKEN, AUTH)), "First subprotocol must be auth"),
        (Message(5, (AUTH, USER)), "auth_token subprotocol is required"),
    ],
)
def test_the_server_refuses_with_ilp_plugin_btps_texts(first: Any, message: str) -> None:
    srv = server()
    event = srv.receive_frame(btp2.encode(first))
    assert isinstance(event, AuthRefused)
    (frame,) = srv.data_to_send()
    assert btp2.decode(frame) == Error(5, "F00", "NotAcceptedError", FIXED_TIME, message, ())
    assert srv.state is SessionState.CLOSED


def test_a_wrong_token_is_refused_as_invalid_auth_token() -> None:
    srv = server()
    srv.receive_frame(btp2.encode(Message(5, (AUTH, TOKEN))))
    assert isinstance(srv.refuse_auth(), AuthRefused)
    (frame,) = srv.data_to_send()
    assert btp2.decode(frame) == Error(
        5, "F00", "NotAcceptedError", FIXED_TIME, "invalid auth_token", ()
    )


def test_btp1_frames_are_undecodable_on_a_btp2_session() -> None:
    _, srv = open_pair()
    prepare = btp.Prepare(1, "5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1", 1, b"\0" * 32, FIXED_TIME)
    assert isinstance(srv.receive_frame(btp.encode(prepare)), UndecodableFrame)
    with pytest.raises(CodecError):
        srv.send_request(prepare, deadline=1.0, context="x")  # type: ignore[arg-type]


def test_a_btp1_session_cannot_send_a_transfer() -> None:
    session: BtpSession[str] = BtpSession.client("", "t", now=0.0)
    with pytest.raises(CodecError):
        session.send_request(Transfer(0, 1), deadline=1.0, context="x")


@given(
    amount=st.integers(0, 2**64 - 1),
    entries=st.lists(
        st.builds(
            ProtocolData,
            st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=8),
            st.sampled_from([0, 1, 2]),
            st.binary(max_size=16),
        ),
        max_size=3,
    ),
    as_message=st.booleans(),
)
def test_requests_and_answers_cross_an_open_pair(
    amount: int, entries: list[ProtocolData], as_message: bool
) -> None:
    client, srv = open_pair()
    pd = tuple(entries)
    request: Message | Transfer = Message(0, pd) if as_message else Transfer(0, amount, pd)
    request_id = client.send_request(request, deadline=5.0, context="ctx")
    (frame,) = client.data_to_send()
    event = srv.receive_frame(frame)
    assert isinstance(event, RequestReceived)
    expected = Message(request_id, pd) if as_message else Transfer(request_id, amount, pd)
    assert event.packet == expected
    answer = client.receive_frame(btp2.encode(Response(request_id, pd)))
    assert answer == AnswerReceived(Response(request_id, pd), "ctx")
    assert client.pending_count == 0
