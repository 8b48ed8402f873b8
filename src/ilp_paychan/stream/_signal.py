"""A broadcast wake-up for coroutines that wait on state the connection changes synchronously."""

from __future__ import annotations

import asyncio


class Changed:
    """Wakes every waiter once per `notify`; waiters re-check their own condition.

    Why not `asyncio.Condition`: the connection's state changes in plain methods (sans-I/O), which
    cannot take a lock; a list of futures settled in place is all a waiter needs.
    """

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        """Wake everyone waiting now."""
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait(self) -> None:
        """Until the next `notify`."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()
