"""Expiring stored prepared transfers that no timer of this process holds (a periodic sweep).

What this module is for: the expiry timers of a process cover what it prepared itself and what
it found prepared in the store when it connected (`Plugin._recover_prepared`). A durable store
can hold prepared transfers that neither covers:

- a batch of a process that was killed, committed by PostgreSQL after the restarted process had
  read the store (a server session finishes a statement before it notices its client is gone);
- a transfer prepared by another process sharing the store and key, which died before its expiry.

Every `expirySweep` seconds (default DEFAULT_EXPIRY_SWEEP in options.py) one indexed query
(`TransferLog.list_prepared(expired_at=...)`) finds the prepared transfers whose expiry lies more
than SWEEP_MARGIN seconds in the past; those this process has not armed go through the same
expiry path as an armed one (`Plugin._expire`: one atomic cancel, the events, the peer notice).
A transfer another live process has armed is normally cancelled by that process at its expiry,
before the margin is over; should both try, the store lets one cancel win and the other
reports no change, so there is one event and one notice in all.

Only durable stores are swept: a `memory:` log belongs to one process, which armed every
transfer it prepared there, and nothing commits to it behind that process's back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Container
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ilp_paychan.errors import StoreUnavailableError
from ilp_paychan.plugin.transfers import Entry, TransferBook

log = logging.getLogger("ilp_paychan.plugin")

#: Seconds past its expiry before the sweep takes up a transfer. The process that armed it
#: cancels it at the expiry, usually within milliseconds; leaving it that process's for a while
#: lets it fire its own events and send the Reject over the link it holds, and absorbs small
#: clock differences between hosts sharing a store.
SWEEP_MARGIN = 2.0
#: At most this many unreadable stored transfers are remembered so that each is logged once.
_UNREADABLE_KEPT = 1000


class Expire(Protocol):
    """The plugin's expiry path (`Plugin._expire`); `adopted`: ids the sweep loaded from the
    store, which this process knew nothing of before."""

    def __call__(
        self, transfer_ids: list[str], *, adopted: Container[str] = ...
    ) -> Awaitable[None]: ...


class ExpirySweep:
    """One process's sweep over its TransferLog; `run()` until cancelled, `sweep()` once."""

    __slots__ = ("_armed", "_book", "_expire", "_unreadable")

    def __init__(
        self, book: Callable[[], TransferBook | None], armed: Container[str], expire: Expire
    ) -> None:
        """`book`: the connected book (None once disconnected); `armed`: the ids this process's
        expiry scheduler holds; `expire`: the plugin's expiry path."""
        self._book = book
        self._armed = armed
        self._expire = expire
        self._unreadable: set[str] = set()

    async def sweep(self, now: datetime | None = None) -> int:
        """One pass at `now` (the wall clock unless given); how many transfers it handed on."""
        book = self._book()
        if book is None:
            return 0
        moment = datetime.now(UTC) if now is None else now
        found = await book.log.list_prepared(expired_at=moment - timedelta(seconds=SWEEP_MARGIN))
        due: list[str] = []
        adopted: set[str] = set()
        for stored in found:
            record = stored.get("transfer", {})
            tid = record.get("id")
            if not isinstance(tid, str) or tid in self._armed:
                continue
            if tid not in book.prepared:
                try:
                    entry = Entry.from_stored(stored)
                except (KeyError, ValueError, TypeError):
                    self._report_unreadable(tid)
                    continue
                book.remember(entry)
                adopted.add(tid)
            due.append(tid)
        if due:
            log.info(
                "expiring %d prepared transfer(s) past their expiry that no timer here held",
                len(due),
            )
            await self._expire(due, adopted=adopted)
        return len(due)

    def _report_unreadable(self, tid: str) -> None:
        if tid in self._unreadable:
            return
        if len(self._unreadable) >= _UNREADABLE_KEPT:
            self._unreadable.clear()
        self._unreadable.add(tid)
        log.error("stored transfer %s cannot be read; left as is", tid)

    async def run(self, interval: float) -> None:
        """Sweep every `interval` seconds until cancelled (by `disconnect()`) or disconnected."""
        while True:
            await asyncio.sleep(interval)
            if self._book() is None:
                return
            try:
                await self.sweep()
            except StoreUnavailableError as error:
                log.warning("expiry sweep skipped: %s", error)
            except Exception:
                log.exception("expiry sweep failed")
