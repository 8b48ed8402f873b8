"""A live listener fed generated and mutated frames over real WebSockets, while a well-behaved
client keeps paying it.

The listener is `listener_proc` in a child process (a stateful Plugin on SQLite), so its memory
is its own. Three phases:

1. Unauthenticated: a few sockets that never authenticate send junk, mutated frames, wrong first
   packets and bad credentials, text, oversized and fragmented messages, or nothing at all (the
   auth deadline must close them); meanwhile a real Plugin client, authenticated on its own
   socket, pays the listener transfer after transfer.
2. Authenticated: the listener serves exactly one authenticated peer (a newer authenticated
   socket replaces the older with close code 4001, and a replaced plugin client does not redial),
   so an authenticated fuzzer *is* the peer. It interleaves well-behaved transfers (which must all
   be fulfilled) with junk and with valid-but-wrong packets: unknown transfer ids, wrong
   conditions and fulfillments, expired or unreadable dates, huge amounts, duplicate ids and
   request ids, bad side-protocol data. Some of its messages close its socket (text, oversized)
   or replace it (a second authenticated socket); it then authenticates again. Unauthenticated
   junk keeps arriving on other sockets.
3. A fresh Plugin client connects and pays again.

Checked throughout: the child never dies; the listener writes only decodable frames, answers
before authentication only with the handshake's documented Errors, and after it only Responses
and Errors of the documented classes (never the catch-all "internal error"); close codes are
documented ones; the listener logs no ERROR (an exception a handler let out); every well-behaved
transfer is fulfilled, unless it was still unread on a socket the fuzzer's own text or oversized
message made the listener close (then it was never prepared); the listener's balance equals the
sum of the fulfilled ones and its set of fulfilled ids is theirs; every Fulfill it sent was
acknowledged; its resident memory grows by less than a generous bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ilp_paychan import Plugin
from ilp_paychan.codec import CodecError, btp, encode_ilp
from ilp_paychan.codec.condition import b64url_encode
from ilp_paychan.codec.ilp import IlpError, IlpPayment
from ilp_paychan.errors import ERRORS_BY_NAME
from ilp_paychan.transport.session import with_request_id

from . import generate
from .listener_proc import SECRET, condition_for, fulfillment_for
from .mutate import Mutator
from .seeds import load_seeds
from .sockets import (
    DOCUMENTED_CLOSES,
    WAIT,
    ListenerChild,
    SocketStats,
    close,
    close_code,
    dial,
    note_close,
    open_socket,
    oversize_length,
    send_input,
    write,
)

LISTENER = Path(__file__).resolve().with_name("listener_proc.py")
#: (code, name) of every Error a listener may answer with.
DOCUMENTED_ERRORS = {(cls.ilp_code, name) for name, cls in ERRORS_BY_NAME.items()}
HANDSHAKE_MESSAGES = {
    "invalid method on unauthenticated socket",
    "auth must be primary protocol on unauthenticated message",
    'missing "auth_token" secondary protocol',
    'missing "auth_username" secondary protocol',
    "invalid auth token and/or username",
}
REQUESTS = (btp.Prepare, btp.Fulfill, btp.Reject, btp.Message)
#: How long the listener may take to re-deliver a Fulfill: its re-delivery backoff grows to
#: 30 s while the link keeps dropping, so allow two of those and a margin.
ACK_WAIT = 90.0


@dataclass
class LiveStats(SocketStats):
    """What the live run did and found."""

    good_lost: int = 0  # sent on a socket that closed before it was answered; never prepared


# ---------------------------------------------------------------------------- frames


@dataclass
class Item:
    """One input for the listener: a binary frame, text, fragments of one message, or an
    oversized message; `expect` is what a well-behaved listener must answer, if anything."""

    kind: str
    binary: bytes = b""
    text: str | None = None
    cuts: list[int] | None = None  # sent as fragments of one message, cut at these offsets
    expect: str = "any"  # "any" | "response" | "error" | "none"
    good: tuple[str, int] | None = None  # (transfer id, amount) of a well-behaved Prepare


def _is_request(raw: bytes) -> btp.Packet | None:
    try:
        packet = btp.decode(raw)
    except CodecError:
        return None
    return packet if isinstance(packet, REQUESTS) else None


def _would_authenticate(raw: bytes) -> bool:
    """True for a first frame the listener's default check would accept (never sent unauth)."""
    try:
        packet = btp.decode(raw)
    except CodecError:
        return False
    if not isinstance(packet, btp.Message) or not packet.protocol_data:
        return False
    if packet.protocol_data[0].protocol_name != "auth":
        return False
    by_name: dict[str, btp.ProtocolData] = {}
    for entry in packet.protocol_data:  # the session takes the first entry of each name
        by_name.setdefault(entry.protocol_name, entry)
    token, user = by_name.get("auth_token"), by_name.get("auth_username")
    return token is not None and user is not None and token.data == SECRET.encode()


def auth_frame(request_id: int, token: str = SECRET, username: str = "") -> bytes:
    return btp.encode(
        btp.Message(
            request_id,
            (
                btp.ProtocolData("auth", 0, b""),
                btp.ProtocolData("auth_username", 1, username.encode()),
                btp.ProtocolData("auth_token", 1, token.encode()),
            ),
        )
    )


class Frames:
    """Makes the inputs: junk, mutations of real and sent frames, valid-but-wrong packets."""

    def __init__(self, rng: random.Random, oversize: int) -> None:
        self.rng = rng
        self.seeds = load_seeds()
        self.mutator = Mutator(rng, self.seeds.btp)
        self.oversize = oversize
        self.sent_good: list[bytes] = []
        self.junk_ids: list[str] = []
        self.good_ids: set[str] = set()
        self.good_amounts: dict[str, int] = {}

    # -- shapes every phase uses

    def special(self) -> Item | None:
        """Now and then a text, fragmented, oversized or very large message."""
        rng = self.rng
        pick = rng.random()
        if pick < 0.004:
            return Item("text", text=rng.choice(("", "hello", "\x00" * 10, "{}", "é" * 100)))
        if pick < 0.0045:
            size = rng.choice((64 * 1024 + 1, 1024 * 1024, self.oversize))
            return Item("oversized", binary=b"\x06" + b"\x00" * (size - 1))
        if pick < 0.0055:
            return Item("big", binary=self.big_frame())
        if pick < 0.03:
            raw = self.binary_junk()
            cuts = sorted(rng.sample(range(len(raw) + 1), min(len(raw) + 1, rng.randrange(1, 5))))
            return Item("fragmented", binary=raw, cuts=cuts)
        return None

    def big_frame(self) -> bytes:
        """A large message of many tiny protocol-data entries (memory per byte at its worst)."""
        rng = self.rng
        count = rng.choice((1000, 20_000, 100_000))
        if rng.random() < 0.05:  # as many as the largest allowed message holds
            count = (self.oversize - 40) // 3
        entries = b"\x00\x00\x00" * count  # empty name, type 0, empty data
        pd = bytes((4,)) + count.to_bytes(4, "big") + entries
        if rng.random() < 0.5:
            pd = bytes((4,)) + (count + 1).to_bytes(4, "big") + entries  # one entry short
        size = len(pd)
        k = (size.bit_length() + 7) // 8
        return bytes((6,)) + rng.randbytes(4) + bytes((0x80 | k,)) + size.to_bytes(k, "big") + pd

    def binary_junk(self) -> bytes:
        rng = self.rng
        pick = rng.random()
        if pick < 0.45:
            return self.mutator.mutate(rng.choice(self.seeds.btp), btp_frame=True)
        if pick < 0.75:
            frame = btp.encode(generate.btp_packet(rng, datetime.now(UTC)))
            return self.mutator.mutate(frame, btp_frame=True) if rng.random() < 0.3 else frame
        if pick < 0.85 and self.sent_good:
            return self.mutator.mutate(rng.choice(self.sent_good), btp_frame=True)
        if pick < 0.95:
            return rng.randbytes(rng.randrange(1, 200))
        return rng.choice(self.seeds.btp)

    # -- before authentication

    def unauthenticated(self) -> Item:
        special = self.special()
        if special is not None:
            return special
        rng = self.rng
        if rng.random() < 0.15:
            token = rng.choice(("", "wrong", SECRET + "x", SECRET.upper()))
            user = rng.choice(("", "", "alice"))
            raw = auth_frame(rng.randrange(2**32), token if token else SECRET, user)
            if user == "" and token == "":
                raw = auth_frame(rng.randrange(2**32), "nope")
            return Item("bad-auth", binary=raw)
        raw = self.binary_junk()
        while _would_authenticate(raw):
            raw = self.binary_junk()
        return Item("junk", binary=raw)

    # -- after authentication

    def good_prepare(self, now: datetime) -> Item:
        rng = self.rng
        tid = generate.uuid_text(rng)
        amount = rng.randrange(1, 1000)
        self.good_ids.add(tid)
        self.good_amounts[tid] = amount
        packet = btp.Prepare(
            0, tid, amount, condition_for(tid), now + timedelta(seconds=120), self.pd_maybe()
        )
        return Item(
            "good-prepare", binary=btp.encode(packet), expect="response", good=(tid, amount)
        )

    def accepted_good(self, raw: bytes) -> None:
        """A well-behaved Prepare was answered OK: from now on it may be repeated or altered
        (before that, an altered copy could overtake it and be prepared first)."""
        self.sent_good.append(raw)
        if len(self.sent_good) > 200:
            self.sent_good.pop(0)

    def pd_maybe(self) -> tuple[btp.ProtocolData, ...]:
        rng = self.rng
        if rng.random() < 0.7:
            return ()
        ilp = encode_ilp(IlpPayment(5, "fuzz.client", rng.randbytes(rng.randrange(20))))
        return (btp.ProtocolData("ilp", 0, ilp),)

    def authenticated(self, now: datetime) -> Item:
        special = self.special()
        if special is not None:
            return special
        rng = self.rng
        pick = rng.random()
        if pick < 0.15:
            return self.good_prepare(now)
        if pick < 0.5:
            return self.wrong(now)
        raw = self.binary_junk()
        packet = _is_request(raw)
        if isinstance(packet, btp.Reject | btp.Fulfill) and packet.transfer_id in self.good_ids:
            raw = rng.randbytes(8)  # never let junk settle a well-behaved transfer
        elif isinstance(packet, btp.Prepare) and packet.transfer_id in self.good_ids:
            raw = rng.randbytes(8)  # nor prepare one under its id first
        return Item("junk", binary=raw)

    def wrong(self, now: datetime) -> Item:
        """A packet that decodes fine but is wrong for the listener's state."""
        rng = self.rng
        tid = generate.uuid_text(rng)
        pick = rng.randrange(17)
        if pick == 0:  # a prepare the listener will hold until its (short) expiry
            expires = now + timedelta(milliseconds=rng.randrange(200, 5000))
            amount = rng.randrange(1, 10_000)
            self.junk_ids.append(tid)
            if len(self.junk_ids) > 500:
                self.junk_ids.pop(0)
            p = btp.Prepare(0, tid, amount, rng.randbytes(32), expires, self.pd_maybe())
            # Accepted, or refused as expired when the listener gets to it late: either is right.
            return Item("prepare-junk-condition", binary=btp.encode(p), expect="any")
        if pick == 1:
            past = now - timedelta(seconds=rng.choice((1, 60, 10**6)))
            p = btp.Prepare(0, tid, 10, rng.randbytes(32), past)
            return Item("prepare-expired", binary=btp.encode(p), expect="error")
        if pick == 2:
            amount = rng.choice((0, 10**12 + 1, 2**63, 2**64 - 1))
            p = btp.Prepare(0, tid, amount, rng.randbytes(32), now + timedelta(seconds=5))
            return Item("prepare-huge-or-zero", binary=btp.encode(p), expect="error")
        if pick == 3:  # an unreadable timestamp (month 13)
            p = btp.Prepare(0, tid, 10, rng.randbytes(32), now + timedelta(seconds=5))
            raw = bytearray(btp.encode(p))
            stamp = raw.index(b"\x13", 6 + 56) + 1
            raw[stamp + 4 : stamp + 6] = b"13"
            return Item("prepare-bad-date", binary=bytes(raw), expect="error")
        if pick == 4 and self.junk_ids:  # same id, other content
            old = rng.choice(self.junk_ids)
            p = btp.Prepare(
                0, old, 1 + rng.randrange(99), rng.randbytes(32), now + timedelta(seconds=3)
            )
            return Item("prepare-duplicate-id", binary=btp.encode(p), expect="any")
        if pick == 5 and self.sent_good:  # a well-behaved transfer sent again, maybe altered
            sent = rng.choice(self.sent_good)
            if rng.random() < 0.5:
                packet = btp.decode(sent)
                assert isinstance(packet, btp.Prepare)
                altered = btp.encode(dataclasses.replace(packet, amount=packet.amount + 1))
                return Item("prepare-good-id-other-amount", binary=altered, expect="error")
            return Item("prepare-good-repeated", binary=sent, expect="any")
        if pick == 6:
            target = rng.choice(self.junk_ids) if self.junk_ids and rng.random() < 0.5 else tid
            f = btp.Fulfill(0, target, rng.randbytes(32))
            return Item("fulfill-wrong", binary=btp.encode(f), expect="error")
        if pick == 7 and self.sent_good:  # the sender fulfilling its own transfer
            packet = btp.decode(rng.choice(self.sent_good))
            assert isinstance(packet, btp.Prepare)
            f = btp.Fulfill(0, packet.transfer_id, fulfillment_for(packet.transfer_id))
            return Item("fulfill-by-sender", binary=btp.encode(f), expect="error")
        if pick == 8:
            target = rng.choice(self.junk_ids) if self.junk_ids and rng.random() < 0.7 else tid
            error = IlpError("F99", "Nope", "fuzz.x", (), now, generate.json_text(rng)[:200])
            pd = rng.choice(
                (
                    (btp.ProtocolData("ilp", 0, encode_ilp(error)),),
                    (btp.ProtocolData("ilp", 0, encode_ilp(IlpPayment(1, "a", b""))),),
                    (btp.ProtocolData("ilp", 0, rng.randbytes(10)),),
                    (),
                )
            )
            return Item("reject", binary=btp.encode(btp.Reject(0, target, pd)), expect="any")
        if pick == 9:
            name = rng.choice(("info", "balance", "limit"))
            data = rng.choice((b"", b"\x00", b"\x02"))
            m = btp.Message(0, (btp.ProtocolData(name, rng.choice((0, 1, 2)), data),))
            return Item("message-query", binary=btp.encode(m), expect="response")
        if pick == 10:
            custom = btp.ProtocolData("custom", 2, generate.json_text(rng))
            return Item("message-custom", binary=btp.encode(btp.Message(0, (custom,))))
        if pick == 11:
            ilp = btp.ProtocolData("ilp", 0, encode_ilp(generate.ilp_packet(rng)))
            return Item("message-ilp", binary=btp.encode(btp.Message(0, (ilp,))))
        if pick == 12:
            m = btp.Message(0, generate.entries(rng, 3))
            return Item("message-random", binary=btp.encode(m))
        if pick == 13:
            return Item("auth-again", binary=auth_frame(0), expect="any")
        if pick == 14:  # an answer to nothing
            answer = (
                btp.Response(rng.randrange(2**32))
                if rng.random() < 0.5
                else btp.Error(rng.randrange(2**32), "F00", "NotAcceptedError", now, "{}")
            )
            return Item("unmatched-answer", binary=btp.encode(answer), expect="none")
        if pick == 15:  # side data the listener must store with the transfer
            custom = btp.ProtocolData("custom", 2, generate.json_text(rng))
            expires = now + timedelta(milliseconds=rng.randrange(500, 5000))
            p = btp.Prepare(0, tid, rng.randrange(1, 100), rng.randbytes(32), expires, (custom,))
            return Item("prepare-with-custom", binary=btp.encode(p), expect="any")
        m = btp.Message(0, (btp.ProtocolData("frobnicate", 1, b"x"),))
        return Item("message-unknown-protocol", binary=btp.encode(m), expect="error")


# ---------------------------------------------------------------------------- sockets


def _check_frame(stats: LiveStats, raw: bytes, *, authenticated: bool) -> btp.Packet | None:
    """Check one frame the listener wrote; returns the packet if it decodes."""
    try:
        packet = btp.decode(raw)
    except CodecError as exc:
        stats.fail(f"listener wrote an undecodable frame {raw[:80].hex()}: {exc}")
        return None
    if isinstance(packet, btp.Error):
        stats.answers[f"{packet.code} {packet.name}"] += 1
        if (packet.code, packet.name) not in DOCUMENTED_ERRORS:
            stats.fail(f"undocumented Error {packet!r}")
        try:
            message = json.loads(packet.data)["message"]
        except (ValueError, KeyError, TypeError):
            stats.fail(f"Error data is not the documented JSON: {packet.data[:200]!r}")
            return packet
        if "internal error" in message:
            stats.fail(f"a handler let out an exception: {packet!r}")
        if not authenticated and message not in HANDSHAKE_MESSAGES:
            stats.fail(f"unauthenticated socket got {packet!r}")
    elif isinstance(packet, btp.Response):
        stats.answers["Response"] += 1
        if not authenticated:
            stats.fail(f"unauthenticated socket got a Response: {packet!r}")
    else:
        stats.answers[type(packet).__name__] += 1
        if not authenticated:
            stats.fail(f"unauthenticated socket got a request: {packet!r}")
    return packet


class Budget:
    """A shared count of inputs still to send."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


async def unauthenticated_worker(
    port: int, frames: Frames, budget: Budget, stats: LiveStats, idle: list[asyncio.Task[None]]
) -> None:
    """Sockets that never authenticate; each sends a few inputs, then goes one of three ways."""
    rng = frames.rng
    while budget.left > 0:
        if rng.random() < 0.01 and sum(not t.done() for t in idle) < 3 and budget.take():
            stats.frames += 1
            stats.kinds["idle-socket"] += 1
            idle.append(asyncio.get_running_loop().create_task(_idle_socket(port, stats)))
            continue
        ws = await dial(port, stats)
        if ws is None:
            await asyncio.sleep(0.1)
            continue
        reader = asyncio.get_running_loop().create_task(_drain(ws, stats, authenticated=False))
        rude = oversized = False
        for _ in range(rng.randrange(1, 6)):
            if not budget.take():
                break
            item = frames.unauthenticated()
            stats.frames += 1
            stats.kinds[item.kind] += 1
            oversized |= item.kind in ("oversized", "big")
            if not await send_input(ws, item) or reader.done():
                break
        ending = rng.random()
        if ending < 0.1:
            # (asyncio 3.11 fails to abort a transport that a graceful close already released)
            if not ws.transport.is_closing():
                ws.transport.abort()
            rude = True
        elif ending < 0.15 and sum(not t.done() for t in idle) < 3:
            # Leave it open: the listener must close it by itself (answer or auth deadline).
            idle.append(
                asyncio.get_running_loop().create_task(
                    _linger(ws, reader, stats, tolerate_abnormal=oversized)
                )
            )
            continue
        if not rude:
            await close(ws)
        await _linger(ws, reader, stats, tolerate_abnormal=rude or oversized)


async def _linger(
    ws: ClientConnection, reader: asyncio.Task[None], stats: LiveStats, *, tolerate_abnormal: bool
) -> None:
    """Wait for the socket's end (bounded), then check how it was closed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT):
            await reader
    if not reader.done():
        reader.cancel()
        stats.fail("an unauthenticated socket stayed open past its auth deadline")
    await close(ws)
    note_close(stats, ws, tolerate_abnormal=tolerate_abnormal)


async def _idle_socket(port: int, stats: LiveStats) -> None:
    """A socket that sends nothing: the auth deadline must close it (1008)."""
    ws = await dial(port, stats)
    if ws is None:
        return
    try:
        async with asyncio.timeout(WAIT):
            await _drain(ws, stats, authenticated=False)
    except TimeoutError:
        stats.fail("an idle unauthenticated socket was never closed")
    await close(ws)
    code = close_code(ws)
    stats.closes[str(code)] += 1
    if code not in (1008, None):  # None: dropped as the oldest of too many waiting sockets
        stats.fail(f"an idle socket was closed with {code}, not by the auth deadline")


async def _drain(ws: ClientConnection, stats: LiveStats, *, authenticated: bool) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            if isinstance(message, str):
                stats.fail(f"listener wrote a text frame {message[:100]!r}")
            else:
                _check_frame(stats, message, authenticated=authenticated)


@dataclass
class _Link:
    """One authenticated socket of the fuzzer and the requests it still waits answers for."""

    ws: ClientConnection
    reader: asyncio.Task[None] | None = None
    outstanding: dict[int, list[Item]] = field(default_factory=dict)
    rude: bool = False  # we sent something that makes the listener close it (text, too big)

    @property
    def usable(self) -> bool:
        return self.reader is not None and not self.reader.done()


class AuthenticatedPeer:
    """The fuzzer as the listener's peer: one authenticated socket at a time."""

    WINDOW = 64

    def __init__(self, port: int, frames: Frames, stats: LiveStats) -> None:
        self.port = port
        self.frames = frames
        self.stats = stats
        self.link: _Link | None = None
        self.slots = asyncio.Semaphore(self.WINDOW)
        self.next_id = frames.rng.randrange(2**31)
        self.accepted: dict[str, int] = {}  # good transfers whose Prepare was answered OK
        self.uncertain: dict[str, int] = {}  # good transfers whose answer was lost with a socket
        self.fulfilled: dict[str, int] = {}
        self.fulfilled_changed = asyncio.Event()
        self.sent: set[str] = set()

    def new_id(self) -> int:
        self.next_id = (self.next_id + 1) % 2**32
        return self.next_id

    async def connect(self) -> None:
        """Open a socket and authenticate; the previous socket, if still open, is replaced."""
        old = self.link
        ws = await open_socket(self.port)
        self.stats.connections += 1
        rid = self.new_id()
        if not await write(ws, auth_frame(rid)):
            raise RuntimeError("the listener closed a new socket before its auth")
        async with asyncio.timeout(WAIT):
            raw = await ws.recv()
        answer = btp.decode(raw) if isinstance(raw, bytes) else None
        if not (isinstance(answer, btp.Response) and answer.request_id == rid):
            raise RuntimeError(f"valid auth answered with {answer!r}")
        link = _Link(ws)
        link.reader = asyncio.get_running_loop().create_task(self._read(link))
        self.link = link
        if old is not None and old.reader is not None:
            was_open = not old.reader.done()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WAIT):
                    await old.reader
            code = close_code(old.ws)
            if was_open and not old.rude and code != 4001:
                self.stats.fail(f"a replaced socket was closed with {code}, not 4001")

    async def _read(self, link: _Link) -> None:
        stats = self.stats
        try:
            async for message in link.ws:
                if isinstance(message, str):
                    stats.fail(f"listener wrote a text frame {message[:100]!r}")
                    continue
                packet = _check_frame(stats, message, authenticated=True)
                if packet is None:
                    continue
                if isinstance(packet, btp.Response | btp.Error):
                    self._answered(link, packet)
                else:
                    await self._serve(link.ws, packet)
        except ConnectionClosed:
            pass
        finally:
            self._lost(link)

    def _answered(self, link: _Link, packet: btp.Response | btp.Error) -> None:
        waiting = link.outstanding.get(packet.request_id)
        if not waiting:
            self.stats.fail(f"answer to a request never sent: {packet!r}")
            return
        item = waiting.pop(0)
        if not waiting:
            del link.outstanding[packet.request_id]
        self.slots.release()
        is_error = isinstance(packet, btp.Error)
        if item.expect == "response" and is_error:
            self.stats.fail(f"{item.kind} refused: {packet!r}")
        elif item.expect == "error" and not is_error:
            self.stats.fail(f"{item.kind} accepted: {packet!r}")
        elif item.expect == "none":
            self.stats.fail(f"{item.kind} was answered: {packet!r}")
        if item.good is not None and not is_error:
            tid, amount = item.good
            self.accepted[tid] = amount
            self.uncertain.pop(tid, None)
            self.frames.accepted_good(item.binary)

    async def _serve(self, ws: ClientConnection, packet: btp.Packet) -> None:
        """The listener's own requests: Fulfills of the well-behaved transfers, answered OK."""
        if isinstance(packet, btp.Fulfill):
            tid = packet.transfer_id
            if tid not in self.frames.good_ids:
                self.stats.fail(f"listener fulfilled a transfer nobody made well: {tid}")
            elif hashlib.sha256(packet.fulfillment).digest() != condition_for(tid):
                self.stats.fail(f"listener sent a wrong fulfillment for {tid}")
            else:
                amount = self.accepted.get(tid, self.uncertain.get(tid))
                if amount is None:  # its Prepare's answer is still on the way, or was lost
                    amount = self.frames.good_amounts[tid]
                self.fulfilled[tid] = amount
                self.fulfilled_changed.set()
        await write(ws, btp.encode(btp.Response(packet.request_id)))

    def _lost(self, link: _Link) -> None:
        """The socket closed: what it still waited for will never be answered."""
        for items in link.outstanding.values():
            for item in items:
                self.slots.release()
                if item.good is not None and item.good[0] not in self.accepted:
                    self.uncertain[item.good[0]] = item.good[1]
        link.outstanding.clear()
        code = close_code(link.ws)
        self.stats.closes[str(code)] += 1
        if code is None and not link.rude and link.ws.protocol.close_sent is None:
            self.stats.fail("the listener dropped the authenticated socket without a close frame")
        elif code is not None and code not in DOCUMENTED_CLOSES:
            self.stats.fail(f"undocumented close code {code}")

    async def send(self, item: Item) -> None:
        """Send one input; a request waits for a window slot and is tracked until answered."""
        if self.link is None or not self.link.usable:
            await self.connect()
        link = self.link
        assert link is not None
        rng = self.frames.rng
        if item.text is None and item.kind != "oversized":
            packet = _is_request(item.binary)
            if packet is not None:
                # Now and then reuse the id of a request still in flight: the answers can then
                # come in any order, so only junk whose answer may be anything shares an id.
                shared = [
                    rid
                    for rid, items in link.outstanding.items()
                    if all(i.expect == "any" and i.good is None for i in items)
                ]
                duplicate = shared and item.good is None and rng.random() < 0.03
                if duplicate:
                    rid = rng.choice(shared)
                    item.expect = "any"
                    self.stats.kinds["duplicate-request-id"] += 1
                else:
                    rid = self.new_id()
                item.binary = with_request_id(item.binary, rid)
                await self.slots.acquire()
                if not link.usable:  # closed while we waited for the slot
                    self.slots.release()
                    if item.good is not None:
                        self.uncertain[item.good[0]] = item.good[1]
                    return
                link.outstanding.setdefault(rid, []).append(item)
        link.rude |= item.kind in ("oversized", "big", "text")
        if item.good is not None:
            self.stats.good_sent += 1
            self.sent.add(item.good[0])
        await send_input(link.ws, item)

    async def stay_connected(self) -> None:
        """Be connected, as a peer that redials, on a socket the listener has no reason to close.

        A socket we sent text or a too-large message on is replaced even while it still reads as
        usable: the listener closes it, but perhaps only after this check (the closing handshake
        may take a second), and nobody would redial then. The listener, holding Fulfills the
        closed socket never answered, can deliver them only to a socket we open.
        """
        link = self.link
        if link is None or not link.usable or link.rude:
            await self.connect()

    async def settle(self) -> None:
        """Wait (bounded) until every accepted well-behaved transfer was fulfilled."""
        try:
            async with asyncio.timeout(WAIT):
                while set(self.accepted) - set(self.fulfilled):
                    self.fulfilled_changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await self.fulfilled_changed.wait()
                    await self.stay_connected()
        except TimeoutError:
            missing = sorted(set(self.accepted) - set(self.fulfilled))
            self.stats.fail(
                f"{len(missing)} accepted transfers never fulfilled, e.g. {missing[:3]}"
            )

    def account(self) -> None:
        """Every well-behaved transfer sent was fulfilled, or lost with its socket unanswered."""
        lost = self.sent - set(self.fulfilled)
        self.stats.good_lost = len(lost)
        unexplained = lost - set(self.uncertain)
        if unexplained:
            example = sorted(unexplained)[:3]
            self.stats.fail(f"{len(unexplained)} well-behaved transfers vanished, e.g. {example}")

    async def close(self) -> None:
        link = self.link
        if link is None:
            return
        await close(link.ws)
        if link.reader is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WAIT):
                    await link.reader


class GoodClient:
    """A real Plugin client that pays the listener, a few transfers in flight, until told."""

    def __init__(self, port: int, rng: random.Random, stats: LiveStats) -> None:
        # A generous timeout: this checks that it is served, not how fast (shared machines).
        self.plugin = Plugin(
            {"server": f"btp+ws://:{SECRET}@127.0.0.1:{port}", "requestTimeout": WAIT}
        )
        self.rng = rng
        self.stats = stats
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.fulfilled: dict[str, int] = {}
        self.plugin.on("outgoing_fulfill", self._on_fulfill)

    def _on_fulfill(self, transfer: dict[str, Any], *_: Any) -> None:
        future = self.waiting.get(transfer["id"])
        if future is not None and not future.done():
            future.set_result(None)

    async def pay_one(self) -> None:
        tid = generate.uuid_text(self.rng)
        amount = self.rng.randrange(1, 1000)
        future = asyncio.get_running_loop().create_future()
        self.waiting[tid] = future
        transfer = {
            "id": tid,
            "to": self.plugin.get_peer_account(),
            "amount": str(amount),
            "executionCondition": b64url_encode(condition_for(tid)),
            "expiresAt": (datetime.now(UTC) + timedelta(seconds=60)).isoformat(),
        }
        self.stats.good_sent += 1
        try:
            await self.plugin.send_transfer(transfer)
            async with asyncio.timeout(WAIT):
                await future
        except Exception as exc:
            self.stats.fail(f"well-behaved client's transfer {tid} failed: {exc!r}")
            return
        finally:
            del self.waiting[tid]
        self.fulfilled[tid] = amount

    async def pay_until(self, done: Callable[[], bool], in_flight: int = 2) -> None:
        """Pay steadily (a transfer every few ms per lane, not flat out) until `done()`."""

        async def lane() -> None:
            while not done():
                await self.pay_one()
                await asyncio.sleep(0.02)

        await asyncio.gather(*(lane() for _ in range(in_flight)))

    async def pay(self, count: int) -> None:
        for _ in range(count):
            await self.pay_one()


# ---------------------------------------------------------------------------- the run


async def run_live(
    seed: int,
    count: int,
    progress: Callable[[str], None] | None = None,
    rss_growth_limit_kb: int = 200 * 1024,
) -> LiveStats:
    """Feed about `count` inputs to a fresh listener child; see the module docstring."""
    stats = LiveStats()
    rng = random.Random(seed)
    frames = Frames(rng, oversize_length())
    started = time.monotonic()
    say = progress or (lambda _text: None)
    with tempfile.TemporaryDirectory(prefix="fuzz-listener-") as tmp:
        child = await ListenerChild.start(LISTENER, Path(tmp))
        idle: list[asyncio.Task[None]] = []
        good: dict[str, int] = {}
        try:
            await _phases(child, frames, count, stats, idle, say, good)
        finally:
            for task in idle:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(WAIT):
                        await task
            if child.alive:
                stats.rss_end_kb, stats.rss_peak_kb = child.memory_kb()
            else:
                stats.fail(f"listener died (exit {child.proc.returncode})")
            await child.stop_into(stats)
    _check_ledger(stats, good)
    stats.check_growth(rss_growth_limit_kb)
    stats.seconds = time.monotonic() - started
    return stats


async def _phases(
    child: ListenerChild,
    frames: Frames,
    count: int,
    stats: LiveStats,
    idle: list[asyncio.Task[None]],
    say: Callable[[str], None],
    good_amounts: dict[str, int],
) -> None:
    """Warm-up, then the three phases; fills `good_amounts` with the fulfilled good transfers."""
    rng = frames.rng
    started = time.monotonic()

    # Warm up (imports, first connections, SQLite cache) before the baseline measurement.
    client = GoodClient(child.port, random.Random(rng.randrange(2**32)), stats)
    await client.plugin.connect()
    await client.pay(20)
    warm = Budget(min(200, count // 10))
    await unauthenticated_worker(child.port, frames, warm, stats, idle)
    stats.rss_start_kb, _ = child.memory_kb()
    say(f"listener pid {child.proc.pid} port {child.port}, RSS {stats.rss_start_kb} KiB")

    # Phase 1: unauthenticated junk while the client pays.
    budget = Budget(int(count * 0.3))
    workers = [unauthenticated_worker(child.port, frames, budget, stats, idle) for _ in range(3)]
    done = asyncio.Event()

    async def fuzz() -> None:
        try:
            await asyncio.gather(*workers)
        finally:
            done.set()

    await asyncio.gather(fuzz(), client.pay_until(done.is_set))
    good_amounts.update(client.fulfilled)
    await _acknowledged(child, stats, say)
    await client.plugin.disconnect()
    _check_alive(child, stats, "after the unauthenticated phase")
    _progress(say, "phase 1 done", started, stats, child)

    # Phase 2: the fuzzer is the peer; unauthenticated junk continues on the side.
    peer = AuthenticatedPeer(child.port, frames, stats)
    await peer.connect()
    side = Budget(int(count * 0.1))
    side_task = asyncio.get_running_loop().create_task(
        unauthenticated_worker(child.port, frames, side, stats, idle)
    )
    main = Budget(max(count - stats.frames - side.left, 0))
    while main.take():
        item = frames.authenticated(datetime.now(UTC))
        if rng.random() < 0.002:
            item = Item("replace")  # a second authenticated socket replaces the first
        stats.frames += 1
        stats.kinds[item.kind] += 1
        if item.kind == "replace":
            await peer.connect()
            continue
        await peer.send(item)
        if stats.frames % 10_000 == 0:
            _check_alive(child, stats, "during the authenticated phase")
            _progress(say, " ", started, stats, child)
    await side_task
    await peer.stay_connected()  # Fulfills of transfers prepared just before a close come now
    await peer.settle()
    await _acknowledged(child, stats, say, peer.stay_connected)
    good_amounts.update(peer.fulfilled)  # with Fulfills of prepares whose answer was lost
    peer.account()
    await peer.close()
    _check_alive(child, stats, "after the authenticated phase")
    _progress(say, "phase 2 done", started, stats, child)

    # Phase 3: a fresh well-behaved client is served as before.
    client = GoodClient(child.port, random.Random(rng.randrange(2**32)), stats)
    await client.plugin.connect()
    await client.pay(20)
    good_amounts.update(client.fulfilled)
    await _acknowledged(child, stats, say)
    await client.plugin.disconnect()
    stats.good_fulfilled = len(good_amounts)
    stats.good_amount = sum(good_amounts.values())


async def _acknowledged(
    child: ListenerChild,
    stats: LiveStats,
    say: Callable[[str], None],
    stay_connected: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Wait (bounded) until the peer acknowledged every Fulfill the listener sent; with
    `stay_connected`, the peer redials meanwhile if its socket is lost."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(ACK_WAIT):
            while True:
                report = await child.report()
                if not report["unacknowledged"] and not report["pending_fulfils"]:
                    break
                if stay_connected is not None:
                    await stay_connected()
                await asyncio.sleep(0.05)
    except TimeoutError:
        stats.fail(f"the listener still has unacknowledged fulfilments after {ACK_WAIT:g} s")
    waited = time.monotonic() - started
    if waited > 1:
        say(f"  the listener re-delivered its last Fulfills after {waited:.1f} s")


def _progress(
    say: Callable[[str], None], what: str, started: float, stats: LiveStats, child: ListenerChild
) -> None:
    seconds = time.monotonic() - started
    say(f"{what} ({seconds:.1f} s): {stats.frames} inputs, RSS {child.memory_kb()[0]} KiB")


def _check_alive(child: ListenerChild, stats: LiveStats, when: str) -> None:
    if not child.alive:
        raise RuntimeError(f"listener died {when} (exit {child.proc.returncode})")


def _check_ledger(stats: LiveStats, good: dict[str, int]) -> None:
    """The listener's books must hold exactly the well-behaved transfers, fulfilled."""
    ledger = stats.ledger
    if not ledger:
        stats.fail("no final report from the listener")
        return
    if ledger.get("errors_logged"):
        stats.fail(f"listener logged {ledger['errors_logged']} errors: {ledger['first_errors']}")
    if ledger.get("fulfil_failures"):
        stats.fail(f"fulfill_condition failed: {ledger['fulfil_failures']}")
    expected = str(stats.good_amount)
    for key in ("balance", "incoming_fulfilled", "fulfilled_sum"):
        if ledger.get(key) != expected:
            stats.fail(
                f"listener {key} is {ledger.get(key)}, well-behaved transfers sum to {expected}"
            )
    if ledger.get("fulfilled_count") != stats.good_fulfilled:
        stats.fail(
            f"listener fulfilled {ledger.get('fulfilled_count')} transfers, the clients saw "
            f"{stats.good_fulfilled} fulfilled"
        )
    digest = hashlib.sha256("\n".join(sorted(good)).encode()).hexdigest()
    if ledger.get("fulfilled_digest") != digest:
        stats.fail("the listener's fulfilled transfers are not the ones the clients saw fulfilled")
    if ledger.get("outgoing_fulfilled_and_prepared") != "0":
        stats.fail(f"listener has outgoing money: {ledger.get('outgoing_fulfilled_and_prepared')}")


def kinds_summary(counts: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts, key=lambda kv: -kv[1]))
