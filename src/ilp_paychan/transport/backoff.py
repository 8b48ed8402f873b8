"""How long a client waits before dialling its peer again (sans-I/O: no clock, no sleeping).

A peer that restarts is usually back within a second or two, so the waits stay short: the first
redial after a drop is immediate, later ones double from `initial` up to `maximum` (1 s by
default), each drawn at random in the upper half of its window so that many clients that lost
the same listener do not dial in lockstep, and so that no attempt follows another at once. A
session that stayed up for `stable_after` seconds resets the sequence; one that drops sooner
(a peer that accepts and then closes at once, say) keeps it widening, so a flapping link is
never redialled in a tight loop.
"""

from __future__ import annotations

import random

DEFAULT_INITIAL = 0.05
DEFAULT_MAXIMUM = 1.0


class Backoff:
    """The delays between dial attempts of one client.

    Args:
        initial: the window of the second attempt, in seconds (the first has none).
        maximum: the widest window; no wait is longer.
        stable_after: a session that lasted at least this long resets the sequence; defaults
            to `maximum`.
        rng: source of the jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        initial: float = DEFAULT_INITIAL,
        maximum: float = DEFAULT_MAXIMUM,
        *,
        stable_after: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.stable_after = maximum if stable_after is None else stable_after
        self._rng = rng if rng is not None else random.Random()
        self.attempts = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt, which this call counts.

        0 for the first attempt since the last reset; for attempt n >= 1 a random value in
        ``[w/2, w]`` where ``w = min(maximum, initial * 2**(n-1))``.
        """
        attempt = self.attempts
        self.attempts = min(attempt + 1, 64)
        if attempt == 0:
            return 0.0
        window = min(self.maximum, self.initial * 2.0 ** (attempt - 1))
        return self._rng.uniform(window / 2, window)

    def session_ended(self, lasted: float) -> None:
        """An authenticated session has just dropped after `lasted` seconds."""
        if lasted >= self.stable_after:
            self.reset()

    def reset(self) -> None:
        """Start over: the next attempt is immediate."""
        self.attempts = 0
