"""The listener's budget of sockets that have not authenticated yet (sans-I/O bookkeeping).

A socket costs memory and a file descriptor from its TCP accept until it authenticates or
closes. A flood of sockets that never authenticate (idle ones, or ones that keep failing) must
not crowd out the real peer, so at most `limit` are kept; when another arrives, the *oldest*
unauthenticated one is dropped to make room. Refusing the newcomer instead would let a flooder
who got there first lock the peer out until the auth deadlines expire; dropping the oldest means
a newcomer always gets its chance, and is only dropped itself if `limit` more sockets arrive
before it authenticates (a round trip, for an honest client).
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class AuthGate(Generic[T]):
    """Unauthenticated sockets in arrival order, at most `limit` of them."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the unauthenticated socket limit must be >= 1, got {limit}")
        self.limit = limit
        self._waiting: dict[T, None] = {}  # insertion-ordered: the first key is the oldest
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, item: object) -> bool:
        return item in self._waiting

    def admit(self, item: T) -> T | None:
        """Count a new socket; returns the oldest one to drop if that makes one too many."""
        oldest: T | None = None
        if len(self._waiting) >= self.limit:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            self.evicted += 1
        self._waiting[item] = None
        return oldest

    def leave(self, item: T) -> None:
        """The socket authenticated or closed; it no longer counts. Idempotent."""
        self._waiting.pop(item, None)
