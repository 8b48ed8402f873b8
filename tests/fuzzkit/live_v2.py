"""A live BTP 2.0 listener (`BtpPlugin` with the durable trustline on SQLite) fed generated and
mutated BTP 2.0 frames and ILPv4 packets over many short WebSockets, while well-behaved peers
pay it.

The listener is `listener_v2_proc` in a child process. Phases:

1. Unauthenticated sockets send junk (mutated BTP 2.0 and BTP 1.0 frames, random bytes), auth
   variants the listener must refuse (wrong token, no `auth_token`, `auth` not first, a single
   entry, a Transfer first), text, oversized and fragmented messages, or nothing; meanwhile a
   real `BtpPlugin` client pays with `send_data`.
2. The fuzzer authenticates (accepted auth variants: with and without `auth_username`, extra
   entries) on one short socket after another and mixes well-behaved Prepares (some behind a
   junk `ilp` entry: the last one counts) with junk: mutated and invalid ILPv4 packets in `ilp`,
   Messages without `ilp`, oversized and duplicated protocol data, ILDCP requests, Transfers
   with junk amounts and junk `ilp_paychan_money` bodies, Transfers repeated with their id,
   junk for the `ilp_paychan_trustline` side protocol, answers to nothing, BTP 1.0 packets.
   A good Prepare or an identified Transfer whose answer was lost with its socket is sent
   again, identical, on a later socket (the trustline answers a repeat as before).
3. A fresh `BtpPlugin` client pays again.

Checked: the child never dies; every frame it writes decodes; before authentication it answers
only the handshake's refusals; after it, Errors are of documented classes and never carry an
exception that escaped a handler; a Message with `ilp` is answered with an ILPv4 Fulfill or
Reject; close codes are documented; it logs no ERROR; every good Prepare is fulfilled; at the
end nothing is held, and the trustline's balance equals the fulfilled good amounts minus the
money it accepted (which equals what its money handler heard, and lies between the Transfers
known accepted and those plus the unidentified ones whose answer was lost); its RSS grows by
less than a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from ilp_paychan.codec import btp, btp2, ilp4
from ilp_paychan.codec.btp import ProtocolData
from ilp_paychan.codec.errors import CodecError
from ilp_paychan.codec.ildcp import IldcpRequest, encode_request
from ilp_paychan.errors import ERRORS_BY_NAME
from ilp_paychan.v2.plugin import BtpPlugin

from . import generate
from .listener_v2_proc import ADDRESS, GOOD, SECRET, SLOW, condition_v2, expiry_key
from .mutate import Mutator
from .seeds import load_seeds
from .sockets import (
    WAIT,
    ListenerChild,
    SocketStats,
    close,
    dial,
    note_close,
    oversize_length,
    send_input,
)

LISTENER = Path(__file__).resolve().with_name("listener_v2_proc.py")
VECTORS_V4 = Path(__file__).resolve().parent.parent / "vectors" / "v4"
DOCUMENTED_ERRORS = {(cls.ilp_code, name) for name, cls in ERRORS_BY_NAME.items()}
HANDSHAKE_MESSAGES = {
    "First message sent over BTP connection must be auth packet",
    "Auth packet must have auth and auth_token subprotocols",
    "First subprotocol must be auth",
    "auth_token subprotocol is required",
    "invalid auth_token",
}
SIDE = "ilp_paychan_trustline"
MONEY = "ilp_paychan_money"
WINDOW = 32


@dataclass
class LiveV2Stats(SocketStats):
    """What the run did and found."""

    FAILURE_TEXT_LIMIT = 1500

    good_resent: int = 0
    money_known: int = 0
    money_uncertain: int = 0

    def text(self) -> str:
        def summary(counts: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in counts.most_common())

        balance = self.ledger.get("balance", {})
        lines = [
            f"BTP 2.0 listener ({self.seconds:.1f} s): {self.frames} inputs over "
            f"{self.connections} connections, {self.failure_count} failures",
            f"  inputs: {summary(self.kinds)}",
            f"  answers: {summary(self.answers)}",
            f"  closes: {summary(self.closes)}",
            f"  good Prepares: {self.good_sent} sent ({self.good_resent} again after a lost "
            f"answer), {self.good_fulfilled} fulfilled ({self.good_amount} in all); money "
            f"accepted {self.money_known} (+ up to {self.money_uncertain} unidentified, answer "
            f"lost); listener balance {balance}, errors logged "
            f"{self.ledger.get('errors_logged')}",
            f"  listener RSS: {self.rss_start_kb} KiB after warm-up, {self.rss_end_kb} KiB at "
            f"the end, peak {self.rss_peak_kb} KiB",
        ]
        if self.failures:
            lines += ["  failures:", *(f"    {f}" for f in self.failures)]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- inputs


def good_prepare(
    rng: random.Random, amount: int | None = None, prefix: bytes = GOOD
) -> tuple[bytes, int]:
    """A well-behaved ILPv4 Prepare (the listener fulfils it) and its amount."""
    data = prefix + rng.randbytes(12).hex().encode()
    value = rng.randrange(1, 1000) if amount is None else amount
    now = datetime.now(UTC) + timedelta(seconds=120)
    expires = now.replace(microsecond=now.microsecond // 1000 * 1000)
    destination = f"{ADDRESS}.x"
    condition = condition_v2(value, expiry_key(expires), destination, data)
    prepare = ilp4.IlpPrepare(value, expires, condition, destination, data)
    return ilp4.encode_prepare(prepare), value


def auth_frame(
    request_id: int, token: str = SECRET, username: str | None = "", extra: int = 0
) -> bytes:
    entries = [ProtocolData("auth", 0, b"")]
    if username is not None:
        entries.append(ProtocolData("auth_username", 1, username.encode()))
    entries.append(ProtocolData("auth_token", 1, token.encode()))
    entries += [ProtocolData(f"x{i}", 0, b"y") for i in range(extra)]
    return btp2.encode(btp2.Message(request_id, tuple(entries)))


def _would_authenticate(raw: bytes) -> bool:
    try:
        packet = btp2.decode(raw)
    except CodecError:
        return False
    if not isinstance(packet, btp2.Message) or len(packet.protocol_data) < 2:
        return False
    if packet.protocol_data[0].protocol_name != "auth":
        return False
    for entry in packet.protocol_data:
        if entry.protocol_name == "auth_token":
            return entry.data == SECRET.encode()
    return False


def _is_request(raw: bytes) -> bool:
    try:
        return isinstance(btp2.decode(raw), btp2.Message | btp2.Transfer)
    except CodecError:
        return False


def _message(*entries: ProtocolData) -> bytes:
    return btp2.encode(btp2.Message(0, entries))


def _ilp(raw: bytes) -> ProtocolData:
    return ProtocolData("ilp", 0, raw)


@dataclass
class Item:
    """One input; `expect`: "ilp" (a Response with an ILPv4 reply), "response", "error",
    "none", "any"; `good` the Prepare bytes that must be fulfilled; `money` (id, amount)."""

    kind: str
    binary: bytes = b""
    text: str | None = None
    cuts: list[int] | None = None
    expect: str = "any"
    good: tuple[bytes, int] | None = None
    money: tuple[str | None, int] | None = None


class Frames:
    """Makes the inputs of every phase."""

    def __init__(self, rng: random.Random, oversize: int) -> None:
        self.rng = rng
        seeds = load_seeds()
        self.btp1 = list(seeds.btp)
        self.btp2 = [bytes.fromhex(v["hex"]) for v in _vectors("btp.json")]
        self.ilp = [bytes.fromhex(v["hex"]) for v in _vectors("ilp-packet.json")]
        self.ilp += [bytes.fromhex(v["hex"]) for v in _vectors("ildcp.json") if "hex" in v]
        self.mutator = Mutator(rng, self.btp2 + self.btp1)
        self.ilp_mutator = Mutator(rng, self.ilp)
        self.oversize = oversize
        self.sent_good: list[bytes] = []  # fulfilled good Prepares, to repeat
        self.money_ids: list[tuple[str, int]] = []  # accepted identified Transfers, to repeat

    def special(self, *, authenticated: bool = False) -> Item | None:
        rng = self.rng
        pick = rng.random()
        if pick < 0.003:
            return Item("text", text=rng.choice(("", "hello", "{}", "é" * 50)))
        if pick < 0.0035:
            size = rng.choice((64 * 1024 + 1, self.oversize))
            return Item("oversized", binary=b"\x06" + b"\x00" * (size - 1))
        if pick < 0.02:
            raw = self.safe_junk() if authenticated else self.junk()
            cuts = sorted(rng.sample(range(len(raw) + 1), min(len(raw) + 1, rng.randrange(1, 5))))
            return Item("fragmented", binary=raw, cuts=cuts)
        return None

    def junk(self) -> bytes:
        rng = self.rng
        pick = rng.random()
        if pick < 0.4:
            return self.mutator.mutate(rng.choice(self.btp2), btp_frame=True)
        if pick < 0.55:
            return self.mutator.mutate(rng.choice(self.btp1), btp_frame=True)
        if pick < 0.7:
            entries = generate.entries(rng, 4)
            if rng.random() < 0.5:
                return btp2.encode(btp2.Transfer(rng.randrange(2**32), 0, entries))
            return btp2.encode(btp2.Message(rng.randrange(2**32), entries))
        if pick < 0.8 and self.sent_good:
            return self.mutator.mutate(_message(_ilp(rng.choice(self.sent_good))), btp_frame=True)
        if pick < 0.95:
            return rng.randbytes(rng.randrange(1, 200))
        return rng.choice(self.btp1 + self.btp2)

    def unauthenticated(self) -> Item:
        special = self.special()
        if special is not None:
            return special
        rng = self.rng
        if rng.random() < 0.25:
            rid = rng.randrange(2**32)
            pick = rng.randrange(6)
            if pick == 0:
                raw = auth_frame(rid, rng.choice(("", "wrong", SECRET + "x", SECRET.upper())))
            elif pick == 1:  # no auth_token
                raw = btp2.encode(
                    btp2.Message(rid, (ProtocolData("auth", 0, b""), ProtocolData("a", 1, b"")))
                )
            elif pick == 2:  # auth not first
                raw = btp2.encode(
                    btp2.Message(
                        rid,
                        (
                            ProtocolData("auth_token", 1, SECRET.encode()),
                            ProtocolData("auth", 0, b""),
                        ),
                    )
                )
            elif pick == 3:  # one entry
                raw = btp2.encode(btp2.Message(rid, (ProtocolData("auth", 0, b""),)))
            elif pick == 4:  # a Transfer first
                raw = btp2.encode(btp2.Transfer(rid, 5, ()))
            else:  # the first auth_token wrong, a right one after it
                raw = btp2.encode(
                    btp2.Message(
                        rid,
                        (
                            ProtocolData("auth", 0, b""),
                            ProtocolData("auth_token", 1, b"nope"),
                            ProtocolData("auth_token", 1, SECRET.encode()),
                        ),
                    )
                )
            return Item("bad-auth", binary=raw)
        raw = self.junk()
        while _would_authenticate(raw):
            raw = self.junk()
        return Item("junk", binary=raw)

    # -- after authentication

    def good(self) -> Item:
        raw, amount = good_prepare(self.rng)
        if self.rng.random() < 0.15:  # a junk `ilp` first: the last entry counts
            return Item(
                "good-prepare-behind-junk",
                binary=_message(_ilp(self.rng.randbytes(30)), _ilp(raw)),
                expect="ilp",
                good=(raw, amount),
            )
        return Item("good-prepare", binary=_message(_ilp(raw)), expect="ilp", good=(raw, amount))

    def authenticated(self) -> Item:
        special = self.special(authenticated=True)
        if special is not None:
            return special
        rng = self.rng
        pick = rng.random()
        if pick < 0.15:
            return self.good()
        if pick < 0.65:
            return self.wrong()
        return Item("junk", binary=self.safe_junk())

    def safe_junk(self) -> bytes:
        """Junk for an authenticated socket: never money or a verdict the run cannot count."""
        rng = self.rng
        raw = self.junk()
        try:
            packet = btp2.decode(raw)
        except CodecError:
            packet = None
        if isinstance(packet, btp2.Transfer) and packet.amount:
            raw = rng.randbytes(8)  # unidentified money only where it is counted (below)
        elif isinstance(packet, btp2.Message) and any(
            e.protocol_name == SIDE for e in packet.protocol_data
        ):
            raw = rng.randbytes(8)  # never a verdict about a good Prepare
        return raw

    def wrong(self) -> Item:
        """A frame that decodes but is wrong in one way."""
        rng = self.rng
        pick = rng.randrange(20)
        now = datetime.now(UTC)
        if pick == 0:
            return Item(
                "ilp-mutated",
                binary=_message(_ilp(self.ilp_mutator.mutate(rng.choice(self.ilp)))),
                expect="ilp",
            )
        if pick == 1:
            return Item(
                "ilp-random",
                binary=_message(_ilp(rng.randbytes(rng.randrange(0, 300)))),
                expect="ilp",
            )
        if pick == 2:  # Fulfill / Reject as if they were requests
            raw = rng.choice(
                (
                    ilp4.encode_fulfill(ilp4.IlpFulfill(rng.randbytes(32), b"x")),
                    ilp4.encode_reject(ilp4.IlpReject("F00", "test.a", "no", b"")),
                )
            )
            return Item("ilp-not-prepare", binary=_message(_ilp(raw)), expect="ilp")
        if pick == 3:  # expired, over the maximum, zero, junk condition
            amount = rng.choice((0, 2**64 - 1, 10**16, rng.randrange(1, 10**6)))
            expires = now + timedelta(seconds=rng.choice((-10, 0, 2, 30)))
            data = rng.randbytes(rng.randrange(20))
            if data.startswith(GOOD):
                data = b"x" + data
            prepare = ilp4.IlpPrepare(amount, expires, rng.randbytes(32), f"{ADDRESS}.y", data)
            return Item(
                "prepare-wrong", binary=_message(_ilp(ilp4.encode_prepare(prepare))), expect="ilp"
            )
        if pick == 4:  # ILDCP
            raw = encode_request(IldcpRequest(now + timedelta(seconds=30)))
            return Item("ildcp", binary=_message(_ilp(raw)), expect="ilp")
        if pick == 5 and self.sent_good:  # a fulfilled good Prepare again: its Fulfill again
            raw = rng.choice(self.sent_good)
            return Item("good-repeated", binary=_message(_ilp(raw)), expect="ilp", good=(raw, 0))
        if pick == 6:  # big protocol data: one large `ilp`, or many entries
            if rng.random() < 0.5:
                size = rng.choice((70_000, 500_000, 2_000_000))
                return Item(
                    "ilp-oversized",
                    binary=_message(_ilp(b"\x0c" + rng.randbytes(size))),
                    expect="ilp",
                )
            count = rng.choice((50, 256, 257, 5000, 50_000))
            entries = tuple(ProtocolData(f"p{i % 7}", i % 3, b"") for i in range(count))
            # the codec reads at most 256 entries; more make the frame undecodable (dropped)
            expect = "response" if count <= 256 else "none"
            return Item("many-entries", binary=_message(*entries), expect=expect)
        if pick == 7:  # a Message without ilp
            entries = rng.choice(
                (
                    (),
                    generate.entries(rng, 4),
                    (ProtocolData("custom", 2, generate.json_text(rng)),),
                )
            )
            entries = tuple(e for e in entries if e.protocol_name not in ("ilp", SIDE))
            return Item("message-no-ilp", binary=_message(*entries), expect="response")
        if pick == 8:  # side protocol junk
            body = rng.choice(
                (
                    generate.json_text(rng),
                    rng.randbytes(rng.randrange(40)),
                    b'{"op":"status"}',
                    json.dumps(
                        {
                            "op": rng.choice(("status", "cancelled", "x")),
                            "id": rng.randbytes(9).hex(),
                            "amount": rng.choice(("5", "0", "-1", "1" * 40, "²", 5)),
                            "expiresAt": rng.choice(
                                (
                                    "2030-01-01T00:00:00.000Z",
                                    "2001-01-01T00:00:00.000Z",
                                    "nope",
                                    "",
                                    7,
                                )
                            ),
                        }
                    ).encode(),
                )
            )
            entry = ProtocolData(SIDE, rng.choice((0, 1, 2)), body)
            return Item("side-junk", binary=_message(entry), expect="any")
        if pick == 9:  # side protocol, well-formed, about packets nobody sent
            op = rng.choice(("status", "cancelled"))
            expires = (now + timedelta(seconds=rng.choice((-5, 60)))).strftime(
                "%Y-%m-%dT%H:%M:%S.000Z"
            )
            body = {
                "op": op,
                "id": rng.randbytes(32).hex()[:43],
                "amount": str(rng.randrange(1, 500)),
                "expiresAt": expires,
            }
            entry = ProtocolData(SIDE, 2, json.dumps(body).encode())
            return Item(
                "side-status",
                binary=_message(entry, entry) if rng.random() < 0.2 else _message(entry),
                expect="response",
            )
        if pick in (10, 11):  # identified money: counted once, repeats too
            ident = "money:" + rng.randbytes(8).hex()
            amount = rng.randrange(1, 100)
            entry = ProtocolData(MONEY, 2, json.dumps({"id": ident}).encode())
            return Item(
                "money",
                binary=btp2.encode(btp2.Transfer(0, amount, (entry,))),
                expect="response",
                money=(ident, amount),
            )
        if pick == 12 and self.money_ids:
            ident, amount = rng.choice(self.money_ids)
            entry = ProtocolData(MONEY, 2, json.dumps({"id": ident}).encode())
            if rng.random() < 0.5:
                return Item(
                    "money-repeated",
                    binary=btp2.encode(btp2.Transfer(0, amount, (entry,))),
                    expect="response",
                    money=(ident, 0),
                )
            return Item(
                "money-same-id-other-amount",
                binary=btp2.encode(btp2.Transfer(0, amount + 1, (entry,))),
                expect="error",
            )
        if pick == 13:  # unidentified money, junk bodies
            amount = rng.choice((0, 1, 2**64 - 1, rng.randrange(1, 50)))
            body = rng.choice(
                (
                    b"",
                    b"{",
                    b"[]",
                    b'{"id":5}',
                    b'{"id":"nope"}',
                    b'{"id":"money:' + b"z" * 200 + b'"}',
                    generate.json_text(rng),
                )
            )
            entries = rng.choice(((), (ProtocolData(MONEY, 2, body),)))
            expect = "error" if amount == 2**64 - 1 else ("response" if amount == 0 else "any")
            return Item(
                "money-junk",
                binary=btp2.encode(btp2.Transfer(0, amount, entries)),
                expect=expect,
                money=(None, amount),
            )
        if pick == 14:  # answers to nothing
            answer = rng.choice(
                (
                    btp2.Response(rng.randrange(2**32), ()),
                    btp2.Error(rng.randrange(2**32), "F00", "NotAcceptedError", now, "{}", ()),
                )
            )
            return Item("unmatched-answer", binary=btp2.encode(answer), expect="none")
        if pick == 15:  # BTP 1.0 packets: not BTP 2.0, dropped
            p = btp.Prepare(
                rng.randrange(2**32),
                generate.uuid_text(rng),
                5,
                rng.randbytes(32),
                now + timedelta(seconds=5),
            )
            return Item("btp1-prepare", binary=btp.encode(p), expect="none")
        if pick == 16:  # auth again after auth
            return Item("auth-again", binary=auth_frame(0), expect="response")
        if pick == 17:  # a Message whose `ilp` is the good one, then junk (junk counts)
            raw, _ = good_prepare(rng)
            return Item(
                "good-then-junk-ilp",
                binary=_message(_ilp(raw), _ilp(rng.randbytes(20))),
                expect="ilp",
            )
        if pick == 18 and rng.random() < 0.3:  # a handler outliving the socket's grace period
            raw, _ = good_prepare(rng, prefix=SLOW)
            return Item("prepare-slow-handler", binary=_message(_ilp(raw)), expect="any")
        if pick == 18:
            raw, _ = good_prepare(rng, 0)
            return Item("prepare-zero", binary=_message(_ilp(raw)), expect="ilp")
        return Item("message-ilp-empty", binary=_message(_ilp(b"")), expect="ilp")


def _vectors(name: str) -> list[dict[str, Any]]:
    data = json.loads((VECTORS_V4 / name).read_text(encoding="utf-8"))
    return [v for v in data.get("vectors", []) if isinstance(v, dict) and "hex" in v]


# ---------------------------------------------------------------------------- sockets


def _check_error(stats: LiveV2Stats, packet: btp2.Error, *, authenticated: bool) -> None:
    stats.answers[f"{packet.code} {packet.name}"] += 1
    if (packet.code, packet.name) not in DOCUMENTED_ERRORS:
        stats.fail(f"undocumented Error {packet!r}")
    text = packet.data
    with contextlib.suppress(ValueError, TypeError, KeyError):
        text = json.loads(packet.data)["message"]
    if "internal error" in str(text):
        stats.fail(f"a handler let out an exception: {packet!r}")
    if not authenticated and text not in HANDSHAKE_MESSAGES:
        stats.fail(f"unauthenticated socket got {packet!r}")


def _decode(stats: LiveV2Stats, raw: Any) -> btp2.Response | btp2.Error | None:
    if isinstance(raw, str):
        stats.fail(f"listener wrote a text frame {raw[:100]!r}")
        return None
    try:
        packet = btp2.decode(raw)
    except CodecError as exc:
        stats.fail(f"listener wrote an undecodable frame {raw[:80].hex()}: {exc}")
        return None
    if not isinstance(packet, btp2.Response | btp2.Error):
        stats.fail(f"listener sent a request: {packet!r}")  # it has nothing to ask us
        return None
    return packet


async def unauthenticated_socket(
    port: int, frames: Frames, budget: list[int], stats: LiveV2Stats
) -> None:
    """One socket that never authenticates: a few inputs, then a close, an abort or nothing."""
    rng = frames.rng
    ws = await dial(port, stats)
    if ws is None:
        return

    async def drain() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                packet = _decode(stats, raw)
                if isinstance(packet, btp2.Error):
                    _check_error(stats, packet, authenticated=False)
                elif packet is not None:
                    stats.fail(f"unauthenticated socket got {packet!r}")

    reader = asyncio.get_running_loop().create_task(drain())
    tolerate = False
    for _ in range(rng.randrange(1, 5)):
        if budget[0] <= 0:
            break
        budget[0] -= 1
        item = frames.unauthenticated()
        stats.frames += 1
        stats.kinds[item.kind] += 1
        tolerate |= item.kind == "oversized"
        if not await send_input(ws, item) or reader.done():
            break
    ending = rng.random()
    if ending < 0.1:
        if not ws.transport.is_closing():
            ws.transport.abort()
        tolerate = True
    elif ending > 0.97:
        stats.kinds["left-open"] += 1  # the auth deadline (or its refusal) must close it
    else:
        await close(ws)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT):
            await reader
    if not reader.done():
        reader.cancel()
        stats.fail("an unauthenticated socket stayed open past its auth deadline")
    await close(ws)
    note_close(stats, ws, tolerate_abnormal=tolerate)


class Fuzzer:
    """The authenticated fuzzer: short sockets one after another, answers checked."""

    def __init__(self, port: int, frames: Frames, stats: LiveV2Stats) -> None:
        self.port = port
        self.frames = frames
        self.stats = stats
        self.rng = frames.rng
        self.fulfilled: dict[bytes, int] = {}
        self.retry_good: dict[bytes, int] = {}
        self.retry_money: dict[str, int] = {}
        self.accepted_money: dict[str, int] = {}
        self.probe: Callable[[], Awaitable[None]] | None = None

    async def socket(self, budget: list[int], *, resend_only: bool = False) -> None:
        """One authenticated socket: auth, some inputs with up to WINDOW in flight, close."""
        rng, stats = self.rng, self.stats
        ws = await dial(self.port, stats)
        if ws is None:
            return
        variant = rng.randrange(3)
        rid = rng.randrange(2**32)
        auth = auth_frame(rid, username=(None, "", "fuzzer")[variant], extra=rng.randrange(3))
        if not await send_input(ws, Item("auth", binary=auth)):
            stats.fail("the listener closed a socket before its auth")
            return
        try:
            async with asyncio.timeout(WAIT):
                answer = _decode(stats, await ws.recv())
        except (TimeoutError, ConnectionClosed) as exc:
            stats.fail(f"a valid auth was not answered: {exc!r}")
            return
        if not (isinstance(answer, btp2.Response) and answer.request_id == rid):
            stats.fail(f"a valid auth was answered with {answer!r}")
            return
        outstanding: dict[int, Item] = {}
        slots = asyncio.Semaphore(WINDOW)
        next_id = rng.randrange(2**31)
        rude = False

        progress = asyncio.Event()  # an answer came, or the socket closed

        async def read() -> None:
            try:
                async for raw in ws:
                    packet = _decode(stats, raw)
                    if packet is None:
                        continue
                    item = outstanding.pop(packet.request_id, None)
                    if item is None:
                        stats.fail(f"answer to a request never sent: {packet!r}")
                        continue
                    slots.release()
                    self.answered(item, packet)
                    progress.set()
            except ConnectionClosed:
                pass
            finally:
                progress.set()

        reader = asyncio.get_running_loop().create_task(read())
        items: list[Item] = []
        if resend_only or rng.random() < 0.3:
            items += self.resends()
        if not resend_only:
            for _ in range(rng.randrange(1, 60)):
                if budget[0] <= 0:
                    break
                budget[0] -= 1
                items.append(self.frames.authenticated())
        for item in items:
            stats.frames += 1
            stats.kinds[item.kind] += 1
            if item.good is not None and item.good[1]:
                stats.good_sent += 1
            if item.text is not None or item.kind == "oversized":
                rude = True
            binary = item.binary
            if item.text is None and _is_request(binary):
                try:
                    async with asyncio.timeout(WAIT):
                        while slots.locked() and not reader.done():
                            progress.clear()
                            await progress.wait()
                except TimeoutError:
                    kinds = Counter(i.kind for i in outstanding.values())
                    if self.probe is not None:
                        await self.probe()
                    stats.fail(f"no answer within {WAIT} s to {dict(kinds)}")
                    break
                if reader.done():
                    self.lost(item)
                    continue
                await slots.acquire()
                next_id = (next_id + 1) % 2**32
                binary = binary[:1] + next_id.to_bytes(4, "big") + binary[5:]
                outstanding[next_id] = item
            elif item.expect in ("ilp", "response", "error"):
                stats.fail(f"{item.kind} is no BTP 2.0 request: {binary[:40].hex()}")
            if (
                not await send_input(ws, Item(item.kind, binary, item.text, item.cuts))
                or reader.done()
            ):
                break
        # let the answers come (or not: a hasty close loses them), then close
        slow = any(i.kind == "prepare-slow-handler" for i in outstanding.values())
        hasty = slow or rng.random() < 0.05
        if hasty:
            stats.kinds["hasty-close"] += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.01 if hasty else WAIT):
                while outstanding and not reader.done():
                    progress.clear()
                    await progress.wait()
        if outstanding and not reader.done() and not rude and not hasty:
            stats.fail(
                f"{len(outstanding)} requests never answered: {list(outstanding.values())[:3]}"
            )
        await close(ws)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WAIT):
                await reader
        for item in outstanding.values():
            self.lost(item)
        note_close(stats, ws, tolerate_abnormal=rude)

    def resends(self) -> list[Item]:
        items = []
        for raw, amount in list(self.retry_good.items())[:20]:
            del self.retry_good[raw]
            self.stats.good_resent += 1
            items.append(Item("good-again", _message(_ilp(raw)), expect="ilp", good=(raw, amount)))
        for ident, amount in list(self.retry_money.items())[:20]:
            del self.retry_money[ident]
            entry = ProtocolData(MONEY, 2, json.dumps({"id": ident}).encode())
            items.append(
                Item(
                    "money-again",
                    btp2.encode(btp2.Transfer(0, amount, (entry,))),
                    expect="response",
                    money=(ident, amount),
                )
            )
        return items

    def lost(self, item: Item) -> None:
        """Its answer was lost with the socket: send it again later, or count it uncertain."""
        if item.good is not None and item.good[1] and item.good[0] not in self.fulfilled:
            self.retry_good[item.good[0]] = item.good[1]
        if item.money is not None:
            ident, amount = item.money
            if ident is None:
                if amount and amount < 2**64 - 1:
                    self.stats.money_uncertain += amount
            elif amount and ident not in self.accepted_money:
                self.retry_money[ident] = amount

    def answered(self, item: Item, packet: btp2.Response | btp2.Error) -> None:
        stats = self.stats
        if isinstance(packet, btp2.Error):
            _check_error(stats, packet, authenticated=True)
            if item.expect in ("ilp", "response"):
                stats.fail(f"{item.kind} refused: {packet!r}")
            return
        stats.answers["Response"] += 1
        if item.expect == "error":
            stats.fail(f"{item.kind} accepted: {packet!r}")
        elif item.expect == "none":
            stats.fail(f"{item.kind} was answered: {packet!r}")
        if item.money is not None:
            ident, amount = item.money
            if ident is None:
                stats.money_known += amount
            elif amount and ident not in self.accepted_money:
                self.accepted_money[ident] = amount
                self.frames.money_ids.append((ident, amount))
                stats.money_known += amount
        if item.expect != "ilp":
            return
        reply = None
        for entry in packet.protocol_data:
            if entry.protocol_name == "ilp":
                reply = entry.data
        try:
            decoded = ilp4.decode_reply(reply or b"")
        except CodecError as exc:
            stats.fail(
                f"{item.kind}: the Response has no ILPv4 Fulfill or Reject ({exc}): {packet!r}"
            )
            return
        stats.answers[
            "ilp " + ("fulfill" if isinstance(decoded, ilp4.IlpFulfill) else decoded.code)
        ] += 1
        if isinstance(decoded, ilp4.IlpReject) and decoded.code == "T00":
            stats.fail(f"{item.kind}: T00 {decoded.message!r}")
        if item.good is None:
            return
        raw, amount = item.good
        if not isinstance(decoded, ilp4.IlpFulfill):
            stats.fail(f"good Prepare {item.kind} not fulfilled: {decoded!r}")
            return
        if amount and raw not in self.fulfilled:
            self.fulfilled[raw] = amount
            self.frames.sent_good.append(raw)
            if len(self.frames.sent_good) > 200:
                self.frames.sent_good.pop(0)


async def good_client(
    port: int, rng: random.Random, count: int, stats: LiveV2Stats
) -> dict[bytes, int]:
    """A real BtpPlugin client sending `count` good Prepares, 8 at a time; all must fulfil."""
    plugin = BtpPlugin(
        {"server": f"btp+ws://client:{SECRET}@127.0.0.1:{port}", "responseTimeout": 10000}
    )
    await plugin.connect()
    paid: dict[bytes, int] = {}
    try:

        async def one() -> None:
            raw, amount = good_prepare(rng)
            stats.good_sent += 1
            for _ in range(5):
                reply = await plugin.send_data(raw)
                if reply[0] == ilp4.TYPE_FULFILL:
                    paid[raw] = amount
                    return
                code = ilp4.decode_reject(reply).code
                if code not in ("T01", "R00"):  # anything but a lost answer is a failure
                    break
                stats.good_resent += 1
            stats.fail(
                f"the plugin client's good Prepare was not fulfilled: {ilp4.decode_reply(reply)!r}"
            )

        for start in range(0, count, 8):
            await asyncio.gather(*(one() for _ in range(min(8, count - start))))
    finally:
        await plugin.disconnect()
    return paid


async def run_live_v2(
    seed: int,
    count: int,
    progress: Callable[[str], None] | None = None,
    rss_growth_limit_kb: int = 200 * 1024,
) -> LiveV2Stats:
    """Feed about `count` inputs to a fresh BTP 2.0 listener child; see the module docstring."""
    stats = LiveV2Stats()
    rng = random.Random(seed)
    frames = Frames(rng, oversize_length())
    say = progress or (lambda _text: None)
    started = time.monotonic()
    paid: dict[bytes, int] = {}
    with tempfile.TemporaryDirectory(prefix="fuzz-v2-listener-") as tmp:
        child = await ListenerChild.start(LISTENER, Path(tmp))
        fuzzer = Fuzzer(child.port, frames, stats)

        async def probe() -> None:
            try:
                stats.fail(f"listener connections: {(await child.ask('connections'))[:3000]!r}")
            except Exception as exc:
                stats.fail(f"listener does not answer a report: {exc!r}")

        fuzzer.probe = probe
        try:
            # warm-up, then the baseline
            paid.update(
                await good_client(child.port, random.Random(rng.randrange(2**32)), 16, stats)
            )
            warm = [min(200, count // 10)]
            while warm[0] > 0:
                await unauthenticated_socket(child.port, frames, warm, stats)
            stats.rss_start_kb, _ = child.memory_kb()
            # 1: unauthenticated junk while a real client pays
            unauth = [count // 4]
            client = asyncio.get_running_loop().create_task(
                good_client(
                    child.port, random.Random(rng.randrange(2**32)), max(16, count // 100), stats
                )
            )

            async def junk_worker() -> None:
                while unauth[0] > 0:
                    await unauthenticated_socket(child.port, frames, unauth, stats)

            await asyncio.gather(junk_worker(), junk_worker())
            paid.update(await client)
            say(f"v2 phase 1 done: {stats.frames} inputs, {stats.connections} connections")
            # 2: the authenticated fuzzer, with unauthenticated junk alongside
            authed = [count - stats.frames]
            last = time.monotonic()
            while authed[0] > 0:
                await fuzzer.socket(authed)
                if rng.random() < 0.2:
                    side = [1 + rng.randrange(3)]
                    await unauthenticated_socket(child.port, frames, side, stats)
                if not child.alive:
                    break
                if time.monotonic() - last > 10:
                    last = time.monotonic()
                    say(
                        f"v2 phase 2: {stats.frames} inputs, {stats.connections} connections,"
                        f" RSS {child.memory_kb()[0]} KiB, {stats.failure_count} failures"
                    )
            for _ in range(20):
                if not (fuzzer.retry_good or fuzzer.retry_money):
                    break
                await fuzzer.socket([0], resend_only=True)
            if fuzzer.retry_good or fuzzer.retry_money:
                stats.fail(
                    f"answers never learnt: {len(fuzzer.retry_good)} Prepares,"
                    f" {len(fuzzer.retry_money)} Transfers"
                )
            # 3: a fresh client pays again
            paid.update(
                await good_client(child.port, random.Random(rng.randrange(2**32)), 16, stats)
            )
            # what is held must go (junk Prepares are rejected at once; repeats wait at most
            # for the one they repeat)
            report: dict[str, Any] = {}
            for _ in range(100):
                report = await child.report()
                held = report["balance"]
                if (
                    held["incomingPrepared"] == "0"
                    and held["outgoingPrepared"] == "0"
                    and not report["handling"]
                ):
                    break
                await asyncio.sleep(0.1)
            stats.rss_end_kb, stats.rss_peak_kb = child.memory_kb()
        finally:
            if not child.alive:
                stats.fail(
                    f"listener died (exit {child.proc.returncode}):"
                    f" {child.stderr.read_text()[-2000:]}"
                )
            await child.stop_into(stats)
    good = {**paid, **fuzzer.fulfilled}
    stats.good_fulfilled = len(good)
    stats.good_amount = sum(good.values())
    _check_ledger(stats)
    stats.check_growth(rss_growth_limit_kb)
    stats.seconds = time.monotonic() - started
    return stats


def _check_ledger(stats: LiveV2Stats) -> None:
    ledger = stats.ledger
    if not ledger:
        stats.fail("no final report from the listener")
        return
    balance = ledger["balance"]
    received = int(balance["moneyReceived"])
    if ledger["errors_logged"]:
        stats.fail(f"listener logged {ledger['errors_logged']} errors: {ledger['first_errors']}")
    if ledger["error_events"]:
        stats.fail(
            f"listener emitted {ledger['error_events']} error events: {ledger['first_events']}"
        )
    if balance["incomingPrepared"] != "0" or balance["outgoingPrepared"] != "0":
        stats.fail(f"still held at the end: {balance}")
    if ledger["handling"] or ledger["sending"] or ledger["unresolved"]:
        stats.fail(f"in-flight entries left: {ledger}")
    if int(balance["balance"]) != stats.good_amount - received:
        stats.fail(
            f"balance {balance['balance']} != fulfilled good {stats.good_amount} - money "
            f"received {received}"
        )
    if received != ledger["money"]:
        stats.fail(f"money received {received} != what the money handler heard {ledger['money']}")
    if not stats.money_known <= received <= stats.money_known + stats.money_uncertain:
        stats.fail(
            f"money received {received} outside [{stats.money_known}, "
            f"{stats.money_known + stats.money_uncertain}]"
        )
    if ledger["fulfilled"] < stats.good_fulfilled:
        stats.fail(f"the handler fulfilled {ledger['fulfilled']} < {stats.good_fulfilled}")


def main(argv: list[str] | None = None) -> int:
    """The long run's command line (`tools/fuzz.py --target btp2`); exit 1 on any failure."""
    import argparse
    import os

    parser = argparse.ArgumentParser(
        description="Fuzz a live BTP 2.0 listener with the durable trustline; exit 1 on any "
        "undocumented outcome."
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--count", type=int, default=100_000, help="inputs (default 100,000)")
    parser.add_argument(
        "--rss-limit-mb",
        type=int,
        default=200,
        help="largest allowed growth of the listener's RSS after warm-up (default 200)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    print(f"fuzz btp2: seed {seed}, {args.count} inputs", flush=True)
    stats = asyncio.run(
        run_live_v2(
            seed,
            args.count,
            None if args.quiet else (lambda text: print(text, flush=True)),
            rss_growth_limit_kb=args.rss_limit_mb * 1024,
        )
    )
    print()
    print(stats.text())
    print(f"\nresult: {'OK' if stats.failure_count == 0 else 'FAILED'}")
    return 0 if stats.failure_count == 0 else 1
