"""Whatever bytes arrive, a BtpSession answers with an event and never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ilp_paychan.codec.btp import ContentType, Message, ProtocolData, Response, encode
from ilp_paychan.transport.session import BtpSession, SessionState

AUTH = Message(
    5,
    (
        ProtocolData("auth", ContentType.OCTET_STREAM, b""),
        ProtocolData("auth_username", ContentType.TEXT_PLAIN_UTF8, b""),
        ProtocolData("auth_token", ContentType.TEXT_PLAIN_UTF8, b"s"),
    ),
)

frames = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda kind, rid, body: bytes([kind]) + rid.to_bytes(4, "big") + bytes([len(body)]) + body,
        st.integers(0, 8),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=40),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(frames, max_size=8))
def test_server_session_survives_any_frames(sequence: list[bytes]) -> None:
    before = BtpSession[str].server(now=0.0)
    opened = BtpSession[str].server(now=0.0)
    opened.receive_frame(encode(AUTH))
    opened.accept_auth()
    opened.send_request(Message(0, ()), deadline=1.0, context="x")
    for frame in sequence:
        for session in (before, opened):
            if session.state is SessionState.AUTH_PENDING:
                session.refuse_auth()
            session.receive_frame(frame)
            session.data_to_send()
    assert opened.state in (SessionState.OPEN, SessionState.CLOSED)


@settings(max_examples=300, deadline=None)
@given(st.lists(frames, max_size=8))
def test_client_session_survives_any_frames(sequence: list[bytes]) -> None:
    session = BtpSession[str].client("", "s", now=0.0)
    session.send_request(Message(0, ()), deadline=1.0, context="queued")
    for frame in sequence:
        session.receive_frame(frame)
    session.expire(10.0)
    assert session.close() == [] or session.state is SessionState.CLOSED
    assert isinstance(encode(Response(1)), bytes)
