"""Exchange rates and packet amounts: the sender's pure arithmetic (RFC 29 §3.4).

Rates are exact `Fraction`s of receiver units per sender unit, measured as the ratio of what
arrived (the receiver's reply says) to what was sent; amounts are ints, converted with floor.
`RateProbe` decides the test packets a connection sends before money (unfulfillable Prepares the
receiver rejects with its reply, RFC 29 §6.1); `PacketSizer` keeps the largest amount a packet
may carry, from F08 replies (RFC 27) and T04 backoff. No I/O here: the send loop feeds results
in and asks what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final

from ._oer import UINT64_MAX

__all__ = [
    "DEFAULT_SLIPPAGE",
    "MIN_RATE_PRECISION",
    "PROBE_AMOUNTS",
    "PacketSizer",
    "ProbeResult",
    "RateProbe",
    "digits",
    "parse_rate",
]

#: The first volley's amounts: powers of 1000, so one of them lands within the path's range.
PROBE_AMOUNTS: Final = (1, 10**3, 10**6, 10**9, 10**12)
#: Significant digits a measured rate needs before money is sent (ilp-protocol-stream's default).
MIN_RATE_PRECISION: Final = 3
#: How far below the measured rate a packet may arrive when the caller set no minimum (1 %).
DEFAULT_SLIPPAGE: Final = Fraction(1, 100)
#: Volleys before giving up on measuring the rate.
MAX_PROBE_VOLLEYS: Final = 15


def digits(n: int) -> int:
    """Decimal digits of a non-negative int (0 has none): the precision a delivered amount gives."""
    return len(str(n)) if n > 0 else 0


def parse_rate(value: object, field: str = "min_exchange_rate") -> Fraction:
    """A rate from an int, a `Fraction`, a `Decimal` or a decimal string; never a float.

    Raises:
        TypeError: a float, a bool or another type (floats would make the limit inexact).
        ValueError: negative, not a number, or not finite.
    """
    if isinstance(value, bool | float):
        raise TypeError(
            f"{field}: give a str, int, Decimal or Fraction, not {type(value).__name__}"
        )
    if isinstance(value, int | Fraction):
        rate = Fraction(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{field}: {value} is not finite")
        rate = Fraction(value)
    elif isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except ArithmeticError:
            raise ValueError(f"{field}: {value!r} is not a decimal number") from None
        if not parsed.is_finite():
            raise ValueError(f"{field}: {value!r} is not finite")
        rate = Fraction(parsed)
    else:
        raise TypeError(
            f"{field}: give a str, int, Decimal or Fraction, not {type(value).__name__}"
        )
    if rate < 0:
        raise ValueError(f"{field}: {value} is negative")
    return rate


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What became of one test packet.

    Exactly one of: ``delivered`` (the receiver's reply: the amount that reached it),
    ``maximum`` (an F08 reply: the largest amount, in our units, the path would have taken), or
    ``code`` (any other reject, or None when it was lost: no answer in time).
    """

    amount: int
    delivered: int | None = None
    maximum: int | None = None
    code: str | None = None


class RateProbe:
    """Which test packets to send, and what rate they showed (ilp-protocol-stream's volleys).

    Call `volley` for the amounts to send at once, `record` each result, then `conclude`: a rate,
    or None with `volley` giving the next amounts (built from F08 maxima and, after temporary
    errors, two thirds of the smallest amount that met one; the caller backs off then).
    """

    def __init__(self, max_packet_amount: int = UINT64_MAX) -> None:
        self.max_packet_amount = max_packet_amount
        self.volleys = 0
        self._next: list[int] = [a for a in PROBE_AMOUNTS if a <= max_packet_amount] or [
            max_packet_amount
        ]
        self._results: list[ProbeResult] = []
        self.best_digits = 0
        self.rate: Fraction | None = None
        self.final_codes: list[str] = []
        self.temporary = False
        self.last_temporary: str | None = None

    def volley(self) -> list[int]:
        """The amounts of the next volley (empty when there is nothing left to try)."""
        if self.volleys >= MAX_PROBE_VOLLEYS:
            return []
        self.volleys += 1
        self._results = []
        self.temporary = False
        amounts, self._next = self._next, []
        return amounts

    def record(self, result: ProbeResult) -> None:
        """Take one test packet's result into account."""
        self._results.append(result)
        if result.maximum is not None:
            self.max_packet_amount = min(self.max_packet_amount, result.maximum)
        if result.delivered is not None and result.amount > 0:
            d = digits(result.delivered)
            if d >= self.best_digits and d > 0:
                self.best_digits = d
                self.rate = Fraction(result.delivered, result.amount)
        if result.code is not None:
            if result.code[:1] in ("T", "R"):
                self.temporary = True
                self.last_temporary = result.code
            else:
                self.final_codes.append(result.code)

    def conclude(self) -> Fraction | None:
        """The rate once precise enough, else None after planning the next volley.

        A rate of fewer than `MIN_RATE_PRECISION` digits is accepted when the path allows no
        larger packet than the one that measured it (more precision cannot be had).
        """
        if self.rate is not None and self.best_digits >= MIN_RATE_PRECISION:
            return self.rate
        tried = {r.amount for r in self._results}
        if self.rate is not None and max(tried) >= self.max_packet_amount:
            return self.rate
        nxt = {r.maximum for r in self._results if r.maximum is not None and r.maximum > 0}
        if self.rate is not None and self.max_packet_amount not in tried:
            nxt.add(self.max_packet_amount)
        if self.temporary:
            smallest = min(r.amount for r in self._results if r.code and r.code[0] in "TR")
            reduced = smallest - smallest // 3
            if reduced > 0:
                nxt.add(reduced)
        self._next = sorted(a for a in nxt if 0 < a <= self.max_packet_amount)
        return None


class PacketSizer:
    """The most a packet may carry: the path's maximum (from F08) and a probing limit under it.

    Follows ilp-protocol-stream's congestion control so both behave alike on the same path:
    the limit doubles after a fulfilled packet at the limit while the maximum is unknown, or
    grows by a tenth of the maximum once known; an F08 sets both to what the reply implies; a
    T04 takes a third off the limit (never below 2).
    """

    def __init__(self, fixed_maximum: int | None = None) -> None:
        self.fixed_maximum = UINT64_MAX if fixed_maximum is None else fixed_maximum
        self.path_maximum = UINT64_MAX
        self.limit = UINT64_MAX

    @property
    def maximum(self) -> int:
        """The largest packet amount allowed: the path's (as far as known) and the caller's."""
        return min(self.path_maximum, self.fixed_maximum)

    def set_maximum(self, amount: int) -> None:
        """The path maximum measured by test packets."""
        self.path_maximum = amount
        self.limit = amount

    def packet_limit(self) -> int:
        """The most the next packet should carry."""
        return min(self.limit, self.maximum)

    def on_fulfill(self, amount: int) -> None:
        """A packet of ``amount`` got through: raise the probing limit if it was the limit."""
        maximum = self.maximum
        if amount != self.limit or self.limit >= maximum:
            return
        if maximum != UINT64_MAX:
            self.limit = min(self.limit + maximum // 10, maximum)
        else:
            self.limit = min(self.limit * 2, UINT64_MAX)

    def on_amount_too_large(self, amount: int, received: int | None, maximum: int | None) -> int:
        """An F08 for a packet of ``amount``; ``received``/``maximum`` from its data (None when
        the connector sent none). Returns the new maximum (0: the path carries nothing)."""
        if received is not None and maximum is not None and received > maximum:
            new = amount * maximum // received
            self.path_maximum = new
            self.limit = new
        else:
            self.path_maximum = max(amount - 1, 0)
            self.limit = self.maximum // 2
        return self.maximum

    def on_insufficient_liquidity(self, amount: int) -> None:
        """A T04 for a packet of ``amount``: send less per packet."""
        smaller = min(amount, self.limit)
        self.limit = max(2, smaller - smaller // 3)


def ceil_div(a: int, b: int) -> int:
    """Ceiling of a / b for non-negative ints, b > 0."""
    return -(-a // b)


def source_for(destination: int, rate: Fraction) -> int:
    """The fewest source units expected to deliver ``destination`` at ``rate`` (huge if 0)."""
    if rate <= 0:
        return UINT64_MAX
    return min(math.ceil(destination / rate), UINT64_MAX)


def destination_for(source: int, rate: Fraction) -> int:
    """Receiver units ``source`` is expected to deliver at ``rate`` (floor)."""
    return min(math.floor(source * rate), UINT64_MAX)
