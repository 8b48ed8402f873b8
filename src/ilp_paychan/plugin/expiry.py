"""One expiry scheduler for every prepared transfer of a plugin.

What this module is for: calling back when transfers reach their `expiresAt`, with one heap and one
`loop.call_at` for the earliest entry — no timer or task per transfer, and no 24.8-day limit
(the reference's Node timers fired at once for a longer delay). It knows nothing of the ledger:
the callback decides what an expiry means.

Rules:
- Times are POSIX seconds of the wall clock (`expiresAt` is a wall-clock instant). The event loop's
  clock is monotonic, so the wait is converted at arming time and capped at `MAX_SLEEP`: after
  that the heap is re-checked against the wall clock, which absorbs clock steps.
- `arm(id, at)` replaces an earlier arming of the same id; `disarm(id)` forgets it. Stale heap
  entries are skipped lazily, so both are O(log n) / O(1).
- The callback receives the ids due, in expiry order, in one synchronous call; it must not block.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable

log = logging.getLogger("ilp_paychan.plugin")

#: Longest single wait before the wall clock is consulted again.
MAX_SLEEP = 60.0


class ExpiryScheduler:
    """Calls `on_expired(ids)` when armed transfers reach their expiry; see the module rules."""

    def __init__(
        self, on_expired: Callable[[list[str]], None], clock: Callable[[], float] = time.time
    ) -> None:
        self._on_expired = on_expired
        self._clock = clock
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, transfer_id: object) -> bool:
        return transfer_id in self._due

    def arm(self, transfer_id: str, expires_at: float) -> None:
        """Call back for `transfer_id` once the wall clock reaches `expires_at`."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._due[transfer_id] = expires_at
        heapq.heappush(self._heap, (expires_at, transfer_id))
        if self._handle_at is None or expires_at < self._handle_at:
            self._reschedule()

    def disarm(self, transfer_id: str) -> None:
        """Forget `transfer_id` (it was settled); unknown ids are ignored."""
        self._due.pop(transfer_id, None)
        if not self._due:
            self._heap.clear()
            self._cancel_handle()
        elif len(self._heap) > 2 * len(self._due) + 64:
            # Settled transfers leave stale entries; rebuild so the heap stays O(live).
            self._heap = [(at, tid) for tid, at in self._due.items()]
            heapq.heapify(self._heap)

    def stop(self) -> None:
        """Forget every entry and cancel the timer."""
        self._due.clear()
        self._heap.clear()
        self._cancel_handle()
        self._loop = None

    def _cancel_handle(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._handle_at = None

    def _drop_stale_head(self) -> None:
        heap = self._heap
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)

    def _reschedule(self) -> None:
        self._cancel_handle()
        self._drop_stale_head()
        if not self._heap or self._loop is None:
            return
        at = self._heap[0][0]
        delay = min(max(at - self._clock(), 0.0), MAX_SLEEP)
        self._handle_at = at
        self._handle = self._loop.call_at(self._loop.time() + delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._handle_at = None
        now = self._clock()
        due: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, transfer_id = heapq.heappop(heap)
            if self._due.get(transfer_id) == at:
                del self._due[transfer_id]
                due.append(transfer_id)
        if due:
            try:
                self._on_expired(due)
            except Exception:
                log.exception("expiry callback raised for %d transfer(s)", len(due))
        self._reschedule()
