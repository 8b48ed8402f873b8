"""Mutations of real inputs: bit flips, byte sets, truncations, insertions, deletions, splices and
length-field corruption. Deterministic for a given `random.Random`.

Length fields are where decoders go wrong (a prefix claiming more than the frame holds, a long
form that is not canonical, a count that cannot fit), so for BTP frames the mutator finds them
structurally and rewrites them with the shapes the OER rules treat specially; for other inputs it
guesses them (a byte whose value would end inside the input).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0x82, 0x86, 0x87, 0xFE, 0xFF)
INTERESTING_INTS = (
    0,
    1,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x7FFF_FFFF_FFFF_FFFF,
    0x8000_0000_0000_0000,
    0xFFFF_FFFF_FFFF_FFFF,
)

#: How many mutations one input gets: mostly one, sometimes up to four.
ROUNDS = (1, 2, 3, 4)
ROUND_WEIGHTS = (8, 4, 2, 1)


def _read_length(raw: bytes, pos: int) -> tuple[int, int]:
    first = raw[pos]
    if first < 0x80:
        return first, pos + 1
    k = first & 0x7F
    return int.from_bytes(raw[pos + 1 : pos + 1 + k], "big"), pos + 1 + k


def btp_length_offsets(frame: bytes) -> list[int]:
    """Offsets of the length determinants (and the protocol-data count) of a BTP frame.

    Walks the layout independently of the codec; stops quietly where the frame is malformed.
    """
    offsets = [5]
    try:
        _, pos = _read_length(frame, 5)
        kind = frame[0]
        if kind == 3:  # Prepare: id, amount, condition, then a timestamp
            pos += 56
            offsets.append(pos)
            n, pos = _read_length(frame, pos)
            pos += n
        elif kind == 4:
            pos += 48
        elif kind == 5:
            pos += 16
        elif kind == 2:  # Error: code, name, timestamp, data
            pos += 3
            for _ in range(3):
                offsets.append(pos)
                n, pos = _read_length(frame, pos)
                pos += n
        elif kind not in (1, 6):
            return offsets
        offsets.append(pos)
        k = frame[pos]
        count = int.from_bytes(frame[pos + 1 : pos + 1 + k], "big")
        pos += 1 + k
        for _ in range(min(count, 64)):
            offsets.append(pos)
            n, pos = _read_length(frame, pos)
            pos += n + 1
            offsets.append(pos)
            n, pos = _read_length(frame, pos)
            pos += n
    except IndexError:
        pass
    return [o for o in offsets if o < len(frame)]


def guessed_length_offsets(raw: bytes) -> list[int]:
    """Positions whose byte reads as a length that ends inside the input, or a long form."""
    size = len(raw)
    return [i for i, b in enumerate(raw) if (b < 0x80 and i + 1 + b <= size) or 0x81 <= b <= 0x86]


class Mutator:
    """Applies one to a few random mutations to an input; `pool` feeds the splices."""

    def __init__(self, rng: random.Random, pool: Sequence[bytes]) -> None:
        self.rng = rng
        self.pool = list(pool)
        self._ops: list[tuple[int, Callable[[bytearray], bytearray]]] = [
            (6, self.flip_bit),
            (4, self.set_byte),
            (3, self.truncate),
            (3, self.insert),
            (2, self.delete),
            (2, self.duplicate),
            (3, self.splice),
            (6, self.corrupt_length),
            (2, self.overwrite_int),
            (1, self.append),
        ]
        self._weights = [w for w, _ in self._ops]
        self._funcs = [f for _, f in self._ops]

    def mutate(self, raw: bytes, *, btp_frame: bool = False) -> bytes:
        """One to four mutations of `raw` (length-field ones aimed by the BTP layout if asked)."""
        rng = self.rng
        data = bytearray(raw)
        self._btp = btp_frame
        for _ in range(rng.choices(ROUNDS, ROUND_WEIGHTS)[0]):
            op = rng.choices(self._funcs, self._weights)[0]
            data = op(data)
        return bytes(data)

    def _pos(self, data: bytearray, *, end: bool = False) -> int:
        limit = len(data) + (1 if end else 0)
        if limit <= 0:
            return 0
        # Headers and lengths sit early: bias towards the first bytes.
        if self.rng.random() < 0.5:
            return self.rng.randrange(min(limit, 24))
        return self.rng.randrange(limit)

    def flip_bit(self, data: bytearray) -> bytearray:
        if data:
            data[self._pos(data)] ^= 1 << self.rng.randrange(8)
        return data

    def set_byte(self, data: bytearray) -> bytearray:
        if data:
            rng = self.rng
            value = rng.choice(INTERESTING_BYTES) if rng.random() < 0.6 else rng.randrange(256)
            data[self._pos(data)] = value
        return data

    def truncate(self, data: bytearray) -> bytearray:
        return data[: self.rng.randrange(len(data) + 1)]

    def insert(self, data: bytearray) -> bytearray:
        rng = self.rng
        size = rng.choice((1, 1, 2, 4, 8, rng.randrange(1, 64)))
        pos = self._pos(data, end=True)
        data[pos:pos] = rng.randbytes(size)
        return data

    def delete(self, data: bytearray) -> bytearray:
        if data:
            pos = self._pos(data)
            del data[pos : pos + self.rng.choice((1, 1, 2, 4, self.rng.randrange(1, 32)))]
        return data

    def duplicate(self, data: bytearray) -> bytearray:
        if data:
            pos = self._pos(data)
            chunk = data[pos : pos + self.rng.randrange(1, 48)]
            at = self._pos(data, end=True)
            data[at:at] = chunk
        return data

    def splice(self, data: bytearray) -> bytearray:
        if not self.pool:
            return data
        other = self.rng.choice(self.pool)
        cut = self._pos(data, end=True)
        other_cut = self.rng.randrange(len(other) + 1)
        return data[:cut] + bytearray(other[other_cut:])

    def corrupt_length(self, data: bytearray) -> bytearray:
        raw = bytes(data)
        offsets = btp_length_offsets(raw) if self._btp else []
        if not offsets or self.rng.random() < 0.2:
            offsets = guessed_length_offsets(raw)
        if not offsets:
            return self.set_byte(data)
        pos = self.rng.choice(offsets)
        first = data[pos]
        width = 1 if first < 0x80 else 1 + (first & 0x7F)
        data[pos : pos + width] = self._length_variant(first if first < 0x80 else None)
        return data

    def _length_variant(self, old: int | None) -> bytes:
        rng = self.rng
        kind = rng.randrange(9)
        if kind == 0:
            return bytes((rng.randrange(128),))
        if kind == 1 and old is not None:
            return bytes((max(0, min(127, old + rng.choice((-2, -1, 1, 2)))),))
        if kind == 2:  # canonical long forms
            k = rng.randrange(1, 4)
            low = 0x80 if k == 1 else 1 << (8 * (k - 1))
            return bytes((0x80 | k,)) + rng.randrange(low, 1 << (8 * k)).to_bytes(k, "big")
        if kind == 3:  # non-canonical long forms
            k = rng.randrange(1, 7)
            return bytes((0x80 | k,)) + rng.randrange(0x80).to_bytes(k, "big")
        if kind == 4:
            return b"\x80"
        if kind == 5:  # more length bytes than allowed
            k = rng.randrange(7, 128)
            return bytes((0x80 | k,)) + rng.randbytes(min(k, 8))
        if kind == 6:  # huge claims
            k = rng.randrange(4, 7)
            return bytes((0x80 | k,)) + b"\xff" * k
        if kind == 7:
            return bytes((0x7F,))
        return b"\x00"

    def overwrite_int(self, data: bytearray) -> bytearray:
        rng = self.rng
        size = rng.choice((1, 2, 4, 8))
        value = rng.choice(INTERESTING_INTS) & ((1 << (8 * size)) - 1)
        if len(data) < size:
            return data
        pos = rng.randrange(len(data) - size + 1)
        data[pos : pos + size] = value.to_bytes(size, "big")
        return data

    def append(self, data: bytearray) -> bytearray:
        return data + bytearray(self.rng.randbytes(self.rng.randrange(1, 16)))


def mutate_text(rng: random.Random, text: str, alphabet: str) -> str:
    """Character-level mutations of a text input (base64url strings and the like)."""
    chars = list(text)
    for _ in range(rng.choices(ROUNDS[:3], ROUND_WEIGHTS[:3])[0]):
        op = rng.randrange(5)
        pos = rng.randrange(len(chars) + 1)
        if op == 0 and chars:
            chars[min(pos, len(chars) - 1)] = rng.choice(alphabet)
        elif op == 1:
            chars.insert(pos, rng.choice(alphabet))
        elif op == 2 and chars:
            del chars[min(pos, len(chars) - 1)]
        elif op == 3:
            chars = chars[:pos]
        else:
            chars.insert(pos, chr(rng.choice((0, 0x20, 0x3D, 0x2B, 0x2F, 0x80, 0xE9, 0x1F600))))
    return "".join(chars)
