"""Forgetting settled transfers once nobody can ask about them any more (bounded memory).

What this module is for: a plugin on `memory:` or without a store would otherwise keep every
settled transfer for the life of the process. Once a minute the plugin's log forgets fulfilled
and cancelled transfers (without a pending peer notice) whose `expiresAt` lies more than
`settledRetention` seconds in the past (`TransferLog.prune_settled`).

Why forgetting is safe: a settled transfer is remembered so that a re-sent Prepare is not counted
twice (weakness 3) and a repeated Fulfill/Reject is idempotent (weakness 4). A re-sent Prepare
carries the original `expiresAt`, which for a forgotten transfer is already past, and the plugin
refuses an incoming Prepare whose expiry has passed before it reaches the ledger (F01
InvalidFieldsError naming expiresAt); `send_transfer` likewise refuses an expiry not in the
future. A Fulfill or Reject for a forgotten transfer comes after its expiry, when the transfer
could no longer be settled anyway; it is answered TransferNotFoundError. Sums never change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ilp_paychan.ledger import TransferLog

log = logging.getLogger("ilp_paychan.plugin")

#: Seconds between two pruning passes.
PRUNE_INTERVAL = 60.0


async def prune_settled_periodically(
    transfer_log: Callable[[], TransferLog | None], retention: float
) -> None:
    """Run pruning passes every PRUNE_INTERVAL until cancelled (by `disconnect()`)."""
    keep = timedelta(seconds=retention)
    while True:
        await asyncio.sleep(PRUNE_INTERVAL)
        current = transfer_log()
        if current is None:
            return
        try:
            gone = await current.prune_settled(datetime.now(UTC) - keep)
        except Exception:
            log.exception("pruning settled transfers failed")
            continue
        if gone:
            log.debug("forgot %d settled transfer(s)", gone)
