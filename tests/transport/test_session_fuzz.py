"""Whatever bytes arrive, a BtpSession answers with an event and never raises."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzkit.mutate import Mutator
from fuzzkit.seeds import load_seeds
from ilp_paychan.codec.btp import (
    ContentType,
    Error,
    Message,
    ProtocolData,
    Response,
    decode,
    encode,
)
from ilp_paychan.transport.events import (
    AnswerReceived,
    AuthRequested,
    RequestReceived,
    UndecodableFrame,
    UnmatchedAnswer,
)
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


# --- mutated real frames (the mutators of tests/fuzzkit, also run long by tools/fuzz.py)

SEEDS = load_seeds().btp
HANDSHAKE_REFUSALS = {
    ("F01", "InvalidFieldsError", "invalid method on unauthenticated socket"),
    ("F01", "InvalidFieldsError", "auth must be primary protocol on unauthenticated message"),
    ("F01", "InvalidFieldsError", 'missing "auth_token" secondary protocol'),
    ("F01", "InvalidFieldsError", 'missing "auth_username" secondary protocol'),
    ("F00", "NotAcceptedError", "invalid auth token and/or username"),
}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_listener_writes_only_a_handshake_refusal_before_auth(
    seeds: list[bytes], rng: random.Random
) -> None:
    """Whatever an unauthenticated peer sends (mutated real frames, auth Messages among them),
    the listener writes at most one Error, one of the handshake's documented refusals, and then
    nothing more; a valid auth is only ever answered after the shell's verdict."""
    mutator = Mutator(rng, SEEDS)
    session = BtpSession[str].server(now=0.0)
    written: list[bytes] = []
    for seed in seeds:
        frame = mutator.mutate(seed, btp_frame=True) if rng.random() < 0.7 else seed
        event = session.receive_frame(frame)
        if isinstance(event, AuthRequested):
            session.refuse_auth()
        written += session.data_to_send()
    assert len(written) <= 1
    for raw in written:
        packet = decode(raw)
        assert isinstance(packet, Error)
        assert (packet.code, packet.name, json.loads(packet.data)["message"]) in HANDSHAKE_REFUSALS
        assert session.state is SessionState.CLOSED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(SEEDS), max_size=8), st.randoms(use_true_random=False))
def test_open_sessions_fed_mutated_frames_report_only_documented_events(
    seeds: list[bytes], rng: random.Random
) -> None:
    """On an open session every frame is an answer (matched by id or not), a request, or an
    undecodable frame; the session writes nothing by itself and stays open."""
    mutator = Mutator(rng, SEEDS)
    session = BtpSession[str].server(now=0.0)
    session.receive_frame(encode(AUTH))
    session.accept_auth()
    session.data_to_send()
    sent = session.send_request(Message(0, ()), deadline=5.0, context="mine")
    for seed in seeds:
        frame = mutator.mutate(seed, btp_frame=True) if rng.random() < 0.7 else seed
        if rng.random() < 0.1:
            frame = encode(Response(sent))
        event = session.receive_frame(frame)
        assert isinstance(
            event, AnswerReceived | UnmatchedAnswer | RequestReceived | UndecodableFrame
        ), event
        if isinstance(event, AnswerReceived):
            assert event.context == "mine"
            assert event.packet.request_id == sent
    assert session.state is SessionState.OPEN
    (request,) = session.data_to_send()
    assert decode(request) == Message(sent, ())
