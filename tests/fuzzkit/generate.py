"""Random well-formed inputs: BTP and ILP packets, protocol-data entries, JSON texts, timestamps.

Well-formed on the wire, not necessarily sensible: ids nobody knows, dates long past, amounts at
the edges of 64 bits, JSON nested deeper than any parser likes. Deterministic for a given
`random.Random`.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ilp_paychan.codec import btp, ilp

NAMES = (
    "ilp",
    "custom",
    "auth",
    "auth_username",
    "auth_token",
    "info",
    "balance",
    "limit",
    "claim",
    "frobnicate",
    "",
)
CODES = ("F00", "F01", "F02", "F05", "F06", "T00", "R00", "\x00\x00\x00", "zzz")
ERROR_NAMES = ("NotAcceptedError", "InvalidFieldsError", "TransferNotFoundError", "Foo", "")
EPOCH = datetime(2017, 12, 6, 19, 9, 28, 123000, tzinfo=UTC)


def uuid_text(rng: random.Random) -> str:
    """A random lowercase dashed UUID (the only transfer-id form BTP can carry)."""
    return str(uuid.UUID(bytes=rng.randbytes(16)))


def moment(rng: random.Random, now: datetime | None = None) -> datetime:
    """A millisecond-precise UTC time: mostly near `now` (or 2017), sometimes at the extremes."""
    base = now or EPOCH
    pick = rng.randrange(10)
    if pick == 0:
        return datetime(1, 1, 1, tzinfo=UTC)
    if pick == 1:
        return datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    if pick == 2:
        return base - timedelta(seconds=rng.randrange(1, 10**8))
    spread = timedelta(milliseconds=rng.randrange(-10_000, 60_000))
    return (base + spread).replace(microsecond=(base + spread).microsecond // 1000 * 1000)


def amount(rng: random.Random) -> int:
    """Small, huge, or exactly at a 64-bit edge."""
    pick = rng.randrange(8)
    if pick < 4:
        return rng.randrange(1, 10_000)
    if pick == 4:
        return rng.choice((0, 1, 2**63 - 1, 2**63, 2**64 - 1))
    if pick == 5:
        return rng.randrange(2**64)
    return rng.randrange(10_000, 10**13)


def json_value(rng: random.Random, depth: int = 0) -> Any:
    """A small random JSON value."""
    pick = rng.randrange(7 if depth < 3 else 4)
    if pick == 0:
        return rng.choice((None, True, False))
    if pick == 1:
        return rng.choice((0, -1, 2**53, 2**64, 1.5, -0.0, 10**30))
    if pick == 2:
        return "".join(rng.choice('ab "\\é\u2028\x00😀') for _ in range(rng.randrange(8)))
    if pick == 3:
        return str(rng.randrange(10**6))
    if pick in (4, 5):
        return {
            rng.choice(("field", "a", "", "message")): json_value(rng, depth + 1) for _ in range(3)
        }
    return [json_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def json_text(rng: random.Random) -> bytes:
    """JSON or nearly-JSON bytes: valid values, deep nesting around the recursion limit, huge
    numbers, non-standard constants, invalid UTF-8."""
    pick = rng.randrange(12)
    if pick == 0:
        depth = rng.choice((500, 900, 980, 995, 1000, 1010, 1100, 3000, 50_000))
        opener, closer = rng.choice((("[", "]"), ('{"a":', "}")))
        tail = closer * depth if rng.random() < 0.8 else ""
        return (opener * depth + "1" + tail).encode()
    if pick == 1:
        return rng.choice((b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 5000, b"-0"))
    if pick == 2:
        return rng.choice((b"\xff\xfe", b'"\xed\xa0\x80"', b'"\\ud800"', b"", b"{", b"[1,]"))
    return json.dumps(json_value(rng), ensure_ascii=rng.random() < 0.5).encode()


def entry(rng: random.Random) -> btp.ProtocolData:
    """One protocol-data entry; the data fits its content type most of the time."""
    name = rng.choice(NAMES) if rng.random() < 0.85 else rng.randbytes(rng.randrange(6)).hex()
    content_type = rng.choice((0, 1, 2, 2, 2, rng.randrange(256)))
    if content_type == 2:
        data = json_text(rng)
    elif content_type == 1:
        data = json_value(rng, 3).__repr__().encode("utf-8", "surrogatepass")
        if rng.random() < 0.2:
            data += b"\xc3\x28"
    elif name == "ilp" and rng.random() < 0.7:
        data = ilp.encode_ilp(ilp_packet(rng))
    elif name == "balance":
        data = rng.randbytes(rng.choice((0, 1, 7, 8, 8, 9)))
    else:
        data = rng.randbytes(rng.choice((0, 1, 8, 32, rng.randrange(200))))
    return btp.ProtocolData(name, content_type, data)


def entries(rng: random.Random, most: int = 4) -> tuple[btp.ProtocolData, ...]:
    return tuple(entry(rng) for _ in range(rng.randrange(most + 1)))


def btp_packet(rng: random.Random, now: datetime | None = None) -> btp.Packet:
    """Any of the six BTP packet types with random (encodable) fields."""
    rid = rng.choice((0, 1, 2**32 - 1, rng.randrange(2**32)))
    pd = entries(rng)
    kind = rng.randrange(6)
    if kind == 0:
        return btp.Prepare(
            rid, uuid_text(rng), amount(rng), rng.randbytes(32), moment(rng, now), pd
        )
    if kind == 1:
        return btp.Fulfill(rid, uuid_text(rng), rng.randbytes(32), pd)
    if kind == 2:
        return btp.Reject(rid, uuid_text(rng), pd)
    if kind == 3:
        return btp.Message(rid, pd)
    if kind == 4:
        return btp.Response(rid, pd)
    data = json.dumps({"message": json_value(rng)}) if rng.random() < 0.7 else rng.choice(("", "x"))
    return btp.Error(rid, rng.choice(CODES), rng.choice(ERROR_NAMES), moment(rng, now), data, pd)


def address(rng: random.Random) -> str:
    return rng.choice(("example.red.bob", "g.x", "", "peer." + rng.randbytes(4).hex()))


def ilp_packet(rng: random.Random) -> ilp.IlpPacket:
    """Any ILP v1 packet (payment, error or ILQP) with random fields."""
    kind = rng.randrange(8)
    u32 = rng.randrange(2**32)
    if kind == 0:
        return ilp.IlpPayment(amount(rng), address(rng), rng.randbytes(rng.randrange(40)))
    if kind == 1:
        data = json_text(rng) if rng.random() < 0.6 else rng.randbytes(rng.randrange(20))
        return ilp.IlpError(
            rng.choice(CODES[:7]),
            rng.choice(ERROR_NAMES),
            address(rng),
            tuple(address(rng) for _ in range(rng.randrange(3))),
            moment(rng),
            data,
        )
    if kind == 2:
        return ilp.IlqpLiquidityRequest(address(rng), u32)
    if kind == 3:
        curve = rng.randbytes(16 * rng.randrange(4))
        return ilp.IlqpLiquidityResponse(curve, address(rng), u32, moment(rng))
    if kind == 4:
        return ilp.IlqpBySourceRequest(address(rng), amount(rng), u32)
    if kind == 5:
        return ilp.IlqpBySourceResponse(amount(rng), u32)
    if kind == 6:
        return ilp.IlqpByDestinationRequest(address(rng), amount(rng), u32)
    return ilp.IlqpByDestinationResponse(amount(rng), u32)


def timestamp_bytes(rng: random.Random) -> bytes:
    """GeneralizedTime-like ASCII: valid, overflowing calendars, odd fraction lengths."""
    digits = [rng.randrange(10) for _ in range(14)]
    body = "".join(map(str, digits))
    if rng.random() < 0.5:  # plausible calendar fields, some overflowing
        body = (
            f"{rng.choice((0, 1, 1970, 2017, 9999)):04d}{rng.randrange(0, 14):02d}"
            f"{rng.randrange(0, 33):02d}{rng.randrange(0, 26):02d}"
            f"{rng.randrange(0, 61):02d}{rng.randrange(0, 61):02d}"
        )
    fraction = rng.choice(("", ".", ".1", ".12", ".123", ".1234", ",123"))
    return (body + fraction + rng.choice(("Z", "Z", "", "z", "+0000"))).encode("ascii")
