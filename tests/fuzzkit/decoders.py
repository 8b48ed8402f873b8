"""Every decoder fed generated and mutated inputs; only its documented exception may come out.

Targets and what each may raise (anything else is a failure, reported with the input):
- ``btp``: `codec.btp.decode` -> CodecError. A decoded packet must re-encode (or refuse with
  CodecError, e.g. an unreadable timestamp) to bytes that decode to the same packet.
- ``ilp``: `codec.decode_ilp` -> CodecError, with the same round trip.
- ``timestamp``: `oer.decode_timestamp` -> CodecError exactly when `decode_timestamp_or_none`
  (which never raises) gives None; a result is UTC-aware and survives `encode_timestamp`.
- ``oer_reader``: random read programs on random bytes through `oer.Reader` -> CodecError.
- ``b64url``: `condition.b64url_decode` -> CodecError (a result re-encodes to the input), and the
  plugin's lenient `validate.parse_base64` -> InvalidFieldsError.
- ``int64``: `codec.decode_int64` -> CodecError (8-byte results re-encode to the input).
- ``protocol_data``: the plugin's `decode_entry`, `from_protocol_data`, `lpi_fields` and the
  module RPC's `decode_value` -> InvalidFieldsError.
- ``peer_errors``: a peer's Error and ILP error read back (`PeerError.from_btp_error`,
  `reasons.outgoing_reason`) -> nothing at all.
- ``session``: `transport.session.BtpSession` (both roles) fed frame sequences, text frames,
  auth verdicts, requests and deadlines -> only its documented events; every frame it writes
  decodes, and before authentication a listener writes only the handshake's answers.
"""

from __future__ import annotations

import contextlib
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ilp_paychan.codec import CodecError, btp, decode_ilp, encode_ilp
from ilp_paychan.codec.condition import b64url_decode, b64url_encode
from ilp_paychan.codec.ilp import IlpError
from ilp_paychan.codec.int64 import decode_int64, encode_int64
from ilp_paychan.codec.oer import (
    Reader,
    decode_timestamp,
    decode_timestamp_or_none,
    encode_timestamp,
)
from ilp_paychan.errors import InvalidFieldsError, PeerError
from ilp_paychan.plugin.protocol_data import (
    decode_entry,
    entries_by_name,
    from_protocol_data,
    lpi_fields,
)
from ilp_paychan.plugin.reasons import outgoing_reason
from ilp_paychan.plugin.rpc import decode_value
from ilp_paychan.plugin.validate import parse_base64
from ilp_paychan.transport import events as ev
from ilp_paychan.transport.session import BtpSession, SessionClosedError, SessionState

from . import generate
from .mutate import Mutator, mutate_text
from .seeds import Seeds, load_seeds

MAX_FAILURES_KEPT = 20


@dataclass
class Failure:
    """One undocumented outcome: which target, what happened, and the input that caused it."""

    target: str
    index: int
    problem: str
    input: str

    def line(self) -> str:
        return f"[{self.target} #{self.index}] {self.problem}\n    input: {self.input}"


@dataclass
class TargetStats:
    """Counts of one target: inputs fed, accepted (decoded), refused with the documented error."""

    name: str
    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    failures: int = 0
    kept: list[Failure] = field(default_factory=list)

    def fail(self, index: int, problem: str, raw: object) -> None:
        self.failures += 1
        if len(self.kept) < MAX_FAILURES_KEPT:
            self.kept.append(Failure(self.name, index, problem, _show(raw)))


def _show(raw: object) -> str:
    if isinstance(raw, bytes | bytearray):
        text = bytes(raw).hex()
        return text if len(text) <= 600 else f"{text[:600]}... ({len(raw)} bytes)"
    text = repr(raw)
    return text if len(text) <= 600 else f"{text[:600]}... ({len(text)} chars)"


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    place = f" at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno}" if where else ""
    return f"{type(exc).__name__}: {str(exc)[:300]}{place}"


class Target:
    """One decoder under test; `one()` makes an input, feeds it and checks the outcome."""

    name = ""

    def __init__(self, rng: random.Random, seeds: Seeds) -> None:
        self.rng = rng
        self.seeds = seeds
        self.stats = TargetStats(self.name)
        self.current: object = None

    def one(self, index: int) -> None:
        raise NotImplementedError

    def run(self, index: int) -> None:
        self.stats.inputs += 1
        try:
            self.one(index)
        except AssertionError as exc:
            self.stats.fail(index, f"check failed: {exc}", self.current)
        except Exception as exc:
            self.stats.fail(index, _describe(exc), self.current)


def _envelope(rng: random.Random, kind: int, body: bytes) -> bytes:
    size = len(body)
    prefix = bytes((size,)) if size < 128 else bytes((0x82,)) + size.to_bytes(2, "big")
    return bytes((kind,)) + rng.randbytes(4) + prefix + body


class BtpTarget(Target):
    name = "btp"

    def __init__(self, rng: random.Random, seeds: Seeds) -> None:
        super().__init__(rng, seeds)
        self.mutator = Mutator(rng, seeds.btp)

    def make(self) -> bytes:
        rng = self.rng
        pick = rng.random()
        if pick < 0.45:
            return self.mutator.mutate(rng.choice(self.seeds.btp), btp_frame=True)
        if pick < 0.75:
            frame = btp.encode(generate.btp_packet(rng))
            return self.mutator.mutate(frame, btp_frame=True) if rng.random() < 0.5 else frame
        if pick < 0.85:
            return rng.randbytes(rng.randrange(300))
        return _envelope(rng, rng.randrange(9), rng.randbytes(rng.randrange(120)))

    def one(self, index: int) -> None:
        raw = self.current = self.make()
        try:
            packet = btp.decode(raw)
        except CodecError:
            self.stats.refused += 1
            return
        self.stats.accepted += 1
        try:
            again = btp.encode(packet)
        except CodecError:
            return
        assert btp.decode(again) == packet, f"re-encoded {packet!r} decodes differently"


class IlpTarget(Target):
    name = "ilp"

    def __init__(self, rng: random.Random, seeds: Seeds) -> None:
        super().__init__(rng, seeds)
        self.mutator = Mutator(rng, seeds.ilp)

    def make(self) -> bytes:
        rng = self.rng
        pick = rng.random()
        if pick < 0.5:
            return self.mutator.mutate(rng.choice(self.seeds.ilp))
        if pick < 0.85:
            raw = encode_ilp(generate.ilp_packet(rng))
            return self.mutator.mutate(raw) if rng.random() < 0.5 else raw
        if pick < 0.93:
            return rng.randbytes(rng.randrange(200))
        body = rng.randbytes(rng.randrange(100))
        return bytes((rng.randrange(13), len(body))) + body

    def one(self, index: int) -> None:
        raw = self.current = self.make()
        try:
            packet = decode_ilp(raw)
        except CodecError:
            self.stats.refused += 1
            return
        self.stats.accepted += 1
        try:
            again = encode_ilp(packet)
        except CodecError:
            return
        assert decode_ilp(again) == packet, f"re-encoded {packet!r} decodes differently"


#: A Prepare's fixed fields (id, amount, condition), before its timestamp.
PREPARE_HEAD = b"\x11" * 16 + (1).to_bytes(8, "big") + b"\x22" * 32


class TimestampTarget(Target):
    name = "timestamp"

    def make(self) -> bytes:
        rng = self.rng
        pick = rng.random()
        if pick < 0.3:
            text = rng.choice(self.seeds.timestamps).decode("ascii")
            return mutate_text(rng, text, "0123456789.Z").encode("utf-8")
        if pick < 0.8:
            return generate.timestamp_bytes(rng)
        if pick < 0.9:
            return encode_timestamp(generate.moment(rng))
        return rng.randbytes(rng.randrange(24))

    def one(self, index: int) -> None:
        raw = self.current = self.make()
        lenient = decode_timestamp_or_none(raw)
        if len(raw) < 100:  # the BTP decoder reads the 19-byte form on a path of its own
            body = PREPARE_HEAD + bytes((len(raw),)) + raw + b"\x01\x00"
            frame = b"\x03\x00\x00\x00\x01" + bytes((len(body),)) + body
            packet = btp.decode(frame)
            assert isinstance(packet, btp.Prepare), "not a Prepare"
            assert packet.expires_at == lenient, f"a Prepare reads it as {packet.expires_at}"
        try:
            strict = decode_timestamp(raw)
        except CodecError:
            self.stats.refused += 1
            assert lenient is None, "decode_timestamp refused what decode_timestamp_or_none read"
            return
        self.stats.accepted += 1
        assert strict == lenient, "the two timestamp decoders disagree"
        assert isinstance(strict, datetime), "not a datetime"
        assert strict.utcoffset() is not None, "naive datetime"
        assert decode_timestamp(encode_timestamp(strict)) == strict, "timestamp round trip"


class ReaderTarget(Target):
    name = "oer_reader"

    OPS = (
        "read_uint8",
        "read_uint32",
        "read_uint64",
        "read_length",
        "read_var_octets",
        "read_ia5",
        "read_var_uint",
        "read_pd_count",
        "read",
    )

    def one(self, index: int) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            raw = rng.choice(self.seeds.btp + self.seeds.ilp)
            raw = Mutator(rng, ()).mutate(raw) if rng.random() < 0.5 else raw
        else:
            raw = rng.randbytes(rng.randrange(40))
        start = rng.randrange(len(raw) + 1)
        end = rng.randrange(start, len(raw) + 1)
        program = [rng.choice(self.OPS) for _ in range(rng.randrange(1, 8))]
        self.current = (raw, start, end, program)
        reader = Reader(raw, start, end)
        try:
            for op in program:
                if op == "read":
                    reader.read(rng.randrange(20), "field")
                else:
                    getattr(reader, op)("field")
                assert start <= reader.pos <= end, f"reader moved outside its bounds ({op})"
        except CodecError:
            self.stats.refused += 1
            return
        self.stats.accepted += 1


B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= \n"


class B64Target(Target):
    name = "b64url"

    def make(self) -> Any:
        rng = self.rng
        pick = rng.random()
        if pick < 0.5:
            return mutate_text(rng, rng.choice(self.seeds.b64url), B64_ALPHABET)
        if pick < 0.75:
            return b64url_encode(rng.randbytes(rng.randrange(48)))
        if pick < 0.97:
            return "".join(rng.choice(B64_ALPHABET) for _ in range(rng.randrange(50)))
        return rng.choice((None, b"AAAA", 42, ["A"]))

    def one(self, index: int) -> None:
        text = self.current = self.make()
        try:
            data = b64url_decode(text)
        except CodecError:
            self.stats.refused += 1
        else:
            self.stats.accepted += 1
            assert b64url_encode(data) == text, "b64url_decode accepted a non-canonical form"
        with contextlib.suppress(InvalidFieldsError):
            parse_base64(text)


class Int64Target(Target):
    name = "int64"

    def one(self, index: int) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            raw = Mutator(rng, self.seeds.int64).mutate(rng.choice(self.seeds.int64))
        else:
            raw = rng.randbytes(rng.randrange(13))
        self.current = raw
        try:
            value = decode_int64(raw)
        except CodecError:
            self.stats.refused += 1
            return
        self.stats.accepted += 1
        assert 1 <= len(raw) <= 8, f"decoded {len(raw)} bytes"
        if len(raw) == 8:
            assert encode_int64(value) == raw, "int64 round trip"


class ProtocolDataTarget(Target):
    name = "protocol_data"

    def __init__(self, rng: random.Random, seeds: Seeds) -> None:
        super().__init__(rng, seeds)
        self.mutator = Mutator(rng, seeds.btp)

    def make(self) -> tuple[btp.ProtocolData, ...]:
        rng = self.rng
        if rng.random() < 0.4:
            try:
                return btp.decode(self.mutator.mutate(rng.choice(self.seeds.btp))).protocol_data
            except CodecError:
                pass
        if rng.random() < 0.3:
            picked = rng.sample(self.seeds.entries, min(3, len(self.seeds.entries)))
            return tuple(
                btp.ProtocolData(e.protocol_name, rng.choice((0, 1, 2, e.content_type)), e.data)
                for e in picked
            )
        return generate.entries(rng, 5)

    def one(self, index: int) -> None:
        entries = self.current = self.make()
        refused = False
        for entry in entries:
            try:
                decode_entry(entry)
            except InvalidFieldsError:
                refused = True
            try:
                decode_value(entry)
            except InvalidFieldsError:
                refused = True
        for call in (from_protocol_data, lambda e: lpi_fields(entries_by_name(e))):
            try:
                call(entries)
            except InvalidFieldsError:
                refused = True
        if refused:
            self.stats.refused += 1
        else:
            self.stats.accepted += 1


class PeerErrorTarget(Target):
    """What a peer says when it refuses: a BTP Error's fields, a Reject's ILP error."""

    name = "peer_errors"

    def __init__(self, rng: random.Random, seeds: Seeds) -> None:
        super().__init__(rng, seeds)
        self.btp_mutator = Mutator(rng, seeds.btp)
        self.ilp_mutator = Mutator(rng, seeds.ilp)

    def one(self, index: int) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            seeds = [s for s in self.seeds.btp if s[:1] == b"\x02"] or list(self.seeds.btp)
            raw = rng.choice(seeds)
            raw = self.btp_mutator.mutate(raw, btp_frame=True) if rng.random() < 0.7 else raw
            self.current = raw
            try:
                packet = btp.decode(raw)
            except CodecError:
                packet = generate.btp_packet(rng)
            if not isinstance(packet, btp.Error):
                packet = btp.Error(
                    0, "F00", "X", None, generate.json_text(rng).decode("utf-8", "replace")
                )
            self.current = packet
            error = PeerError.from_btp_error(
                code=packet.code,
                name=packet.name,
                data=packet.data,
                triggered_at=packet.triggered_at,
            )
            assert isinstance(error, PeerError), "from_btp_error built no PeerError"
            str(error)
        else:
            raw = (
                encode_ilp(generate.ilp_packet(rng))
                if rng.random() < 0.5
                else rng.choice(self.seeds.ilp)
            )
            raw = self.ilp_mutator.mutate(raw) if rng.random() < 0.5 else raw
            self.current = raw
            try:
                packet_ilp = decode_ilp(raw)
            except CodecError:
                self.stats.refused += 1
                return
            if not isinstance(packet_ilp, IlpError):
                self.stats.refused += 1
                return
            self.current = packet_ilp
            outgoing_reason(packet_ilp)
        self.stats.accepted += 1


EVENT_TYPES = (
    ev.AuthRequested,
    ev.Authenticated,
    ev.AuthRefused,
    ev.AuthTimedOut,
    ev.RequestReceived,
    ev.AnswerReceived,
    ev.UnmatchedAnswer,
    ev.RequestTimedOut,
    ev.UndecodableFrame,
    ev.UnexpectedPacket,
    ev.ProtocolViolation,
)
#: What a listener may write before the peer authenticated: the handshake's refusals, or OK.
HANDSHAKE_ANSWERS = {
    ("F01", "InvalidFieldsError"),
    ("F00", "NotAcceptedError"),
}
SECRET = "s3cret"


def auth_message(rng: random.Random, token: str = SECRET) -> btp.Message:
    return btp.Message(
        rng.randrange(2**32),
        (
            btp.ProtocolData("auth", 0, b""),
            btp.ProtocolData("auth_username", 1, b""),
            btp.ProtocolData("auth_token", 1, token.encode()),
        ),
    )


class SessionTarget(Target):
    """Sequences of frames (one input each) and other stimuli against fresh sessions."""

    name = "session"

    def __init__(self, rng: random.Random, seeds: Seeds) -> None:
        super().__init__(rng, seeds)
        self.mutator = Mutator(rng, seeds.btp)
        self.session: BtpSession[int] | None = None
        self.now = 0.0
        self.sent_ids: list[int] = []
        self.trail: list[object] = []

    def _fresh(self) -> BtpSession[int]:
        rng = self.rng
        self.now = 0.0
        self.sent_ids = []
        self.trail = []
        session_rng = random.Random(rng.randrange(2**32))
        if rng.random() < 0.5:
            session: BtpSession[int] = BtpSession.server(now=0.0, rng=session_rng)
        else:
            session = BtpSession.client("", SECRET, now=0.0, rng=session_rng)
        self._collect(session)
        return session

    def _collect(self, session: BtpSession[int]) -> None:
        """Check every frame the session wants written; remember the request ids it used."""
        server_unauthenticated = session.role.value == "server" and session.state in (
            SessionState.AUTHENTICATING,
            SessionState.AUTH_PENDING,
        )
        for frame in session.data_to_send():
            packet = btp.decode(frame)  # a frame we write must decode: CodecError is a failure
            self.sent_ids.append(packet.request_id)
            if server_unauthenticated or (
                session.role.value == "server" and session.state is SessionState.CLOSED
            ):
                if isinstance(packet, btp.Error):
                    assert (packet.code, packet.name) in HANDSHAKE_ANSWERS, (
                        f"listener wrote {packet!r} before authentication"
                    )
                else:
                    assert isinstance(packet, btp.Response | btp.Message), (
                        f"listener wrote {packet!r} before authentication"
                    )

    def _frame(self) -> bytes:
        rng = self.rng
        pick = rng.random()
        if pick < 0.15:
            return btp.encode(auth_message(rng, SECRET if rng.random() < 0.8 else "wrong"))
        if pick < 0.35 and self.sent_ids:
            rid = rng.choice(self.sent_ids)
            if rng.random() < 0.7:
                packet: btp.Packet = btp.Response(rid, generate.entries(rng, 2))
            else:
                packet = btp.Error(rid, "F00", "NotAcceptedError", generate.moment(rng), "{}")
            frame = btp.encode(packet)
            return self.mutator.mutate(frame, btp_frame=True) if rng.random() < 0.2 else frame
        if pick < 0.7:
            return self.mutator.mutate(rng.choice(self.seeds.btp), btp_frame=True)
        if pick < 0.9:
            return btp.encode(generate.btp_packet(rng))
        return rng.randbytes(rng.randrange(64))

    def one(self, index: int) -> None:
        rng = self.rng
        if self.session is None or rng.random() < 0.12:
            self.session = self._fresh()
        session = self.session
        frame = self._frame()
        self.trail.append(frame)
        self.current = (session.role.value, [_show(x) for x in self.trail[-6:]])
        event = session.receive_frame(frame)
        assert isinstance(event, EVENT_TYPES), f"receive_frame returned {event!r}"
        if isinstance(event, ev.AuthRequested):
            outcome = session.accept_auth("") if rng.random() < 0.6 else session.refuse_auth()
            assert outcome is None or isinstance(outcome, ev.Authenticated | ev.AuthRefused)
        self._collect(session)
        self._stimulate(session)
        if isinstance(event, ev.UndecodableFrame):
            self.stats.refused += 1
        else:
            self.stats.accepted += 1

    def _stimulate(self, session: BtpSession[int]) -> None:
        rng = self.rng
        pick = rng.random()
        if pick < 0.25:
            try:
                session.send_request(
                    generate.btp_packet(rng), deadline=self.now + rng.random() * 3, context=1
                )
            except SessionClosedError:
                assert not session.is_open or session.role.value == "client"
            except CodecError:
                pass  # a generated packet the codec cannot write (e.g. an Error's name)
        elif pick < 0.35:
            self.now += rng.random() * 2
            for event in session.expire(self.now):
                assert isinstance(event, ev.AuthTimedOut | ev.RequestTimedOut), repr(event)
        elif pick < 0.37:
            event = session.receive_text()
            assert isinstance(event, ev.ProtocolViolation)
            assert session.state is SessionState.CLOSED
        elif pick < 0.39:
            session.close()
            assert session.state is SessionState.CLOSED
            assert session.pending_count == 0
        elif pick < 0.45 and self.sent_ids:
            session.forget(rng.choice(self.sent_ids))
        deadline = session.next_deadline()
        assert deadline is None or isinstance(deadline, float), repr(deadline)
        assert session.pending_count >= 0
        self._collect(session)


TARGETS: dict[str, tuple[type[Target], float]] = {
    "btp": (BtpTarget, 0.32),
    "ilp": (IlpTarget, 0.14),
    "session": (SessionTarget, 0.16),
    "protocol_data": (ProtocolDataTarget, 0.1),
    "timestamp": (TimestampTarget, 0.07),
    "oer_reader": (ReaderTarget, 0.06),
    "b64url": (B64Target, 0.06),
    "int64": (Int64Target, 0.04),
    "peer_errors": (PeerErrorTarget, 0.05),
}


def run_decoders(
    seed: int,
    count: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, TargetStats]:
    """Feed `count` inputs in all, split over the targets by weight, interleaved."""
    seeds = load_seeds()
    master = random.Random(seed)
    targets = [
        (cls(random.Random(master.randrange(2**64)), seeds), weight)
        for cls, weight in TARGETS.values()
    ]
    total_weight = sum(w for _, w in targets)
    quotas = [max(1, round(count * w / total_weight)) for _, w in targets]
    schedule: list[int] = []
    for i, quota in enumerate(quotas):
        schedule += [i] * quota
    master.shuffle(schedule)
    for index, which in enumerate(schedule[:count] if count >= len(targets) else schedule):
        targets[which][0].run(index)
        if progress is not None and index % 50_000 == 0:
            progress(index)
    return {t.name: t.stats for t, _ in targets}
