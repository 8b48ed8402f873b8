"""Forgetting settled transfers once nobody can ask about them any more (bounded memory).

What this module is for: a plugin on `memory:` or without a store would otherwise keep every
settled transfer for the life of the process. Every few seconds the plugin's log forgets
fulfilled and cancelled transfers (without a pending peer notice) whose `expiresAt` lies more
than `settledRetention` seconds in the past (`TransferBook.forget_settled`, which calls
`TransferLog.prune_settled`). A pass runs every third of the retention, between 1 and 60 seconds
apart, so a transfer is gone at most that much later than its time.

Why forgetting is safe: a settled transfer is remembered so that a re-sent Prepare is not counted
twice and a repeated Fulfill/Reject is idempotent. A re-sent Prepare carries the original
`expiresAt`, which for a forgotten transfer is past: the plugin refuses an incoming Prepare whose
expiry has passed before it reaches the ledger (F01 InvalidFieldsError naming expiresAt), and
`send_transfer` likewise refuses an expiry not in the future. Should the clock be set back, the
pruning watermark refuses them all the same (`forgotten.py`). A Fulfill of a forgotten outgoing
transfer we cancelled is still answered F05, so the receiver rolls its fulfilment back; any other
Fulfill or Reject of a forgotten transfer comes after its expiry, when the transfer could no
longer be settled anyway, and is answered TransferNotFoundError. Sums never change.

After the expiry a record only serves repeated Fulfills and Rejects, so for in-memory logs the
retention is a margin, not an archive. Until then an in-memory log keeps each settled transfer
packed (`ledger.settled`): about 220 bytes for one paid to us or cancelled, 12 bytes for one we
paid, which only needs its id to refuse our own re-send and acknowledge a repeated Fulfill. A
clock difference between the peers needs none: each side judges expiries by its own clock (a
re-sent Prepare by ours), and the watermark covers our clock being set back. What the margin is
for is a receiver repeating a Fulfill we accepted but whose answer the connection lost: it sends
it again once the link is back (a client redials within a second) and at most a request timeout
(5 s by default) after its first try. The default, DEFAULT_SETTLED_RETENTION (options.py, 10 s),
covers that with room; a repeat that comes later gets TransferNotFoundError, which makes the
receiver keep the money, as it should.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ilp_paychan.plugin.transfers import TransferBook

log = logging.getLogger("ilp_paychan.plugin")

#: The longest time between two pruning passes, in seconds.
PRUNE_INTERVAL = 60.0
#: The shortest time between two pruning passes, in seconds.
MIN_PRUNE_INTERVAL = 1.0


def prune_interval(retention: float) -> float:
    """Seconds between passes: a third of the retention, within the bounds above."""
    return min(PRUNE_INTERVAL, max(MIN_PRUNE_INTERVAL, retention / 3))


async def prune_pass(book: TransferBook, retention: float, now: datetime | None = None) -> int:
    """One pass: forget the settled transfers that expired more than `retention` seconds
    before `now` (the wall clock unless given); how many went."""
    moment = datetime.now(UTC) if now is None else now
    return await book.forget_settled(moment - timedelta(seconds=retention))


async def prune_settled_periodically(
    book: Callable[[], TransferBook | None], retention: float
) -> None:
    """Run pruning passes until cancelled (by `disconnect()`) or the book is gone."""
    interval = prune_interval(retention)
    while True:
        await asyncio.sleep(interval)
        current = book()
        if current is None:
            return
        try:
            gone = await prune_pass(current, retention)
        except Exception:
            log.exception("pruning settled transfers failed")
            continue
        if gone:
            log.debug("forgot %d settled transfer(s)", gone)
