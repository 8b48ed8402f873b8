"""What a plugin still knows about the settled transfers its log has forgotten.

What this module is for: pruning (`retention.py`) makes a log forget settled transfers once their
expiry is well past. Two answers must not change when that happens, and `ForgottenTransfers`
keeps just enough to give them:

- A re-sent Prepare of a forgotten transfer must not be counted again. It carries the original
  `expiresAt`, which is past, and the plugin refuses a Prepare whose expiry has passed. That
  holds while the wall clock only moves forward; the *watermark* covers a clock set back: every
  prepare whose expiry is at or before the latest pruning instant is refused as well, so nothing
  the log forgot can be prepared again whatever the clock says.
- A late Fulfill of an outgoing transfer we cancelled must still get F05 (already cancelled):
  the receiver sends its Fulfill again until we answer, and rolls its fulfilment back only on
  F05, while "not found" (F02) makes it keep the money (docs/reliability.md, "Agreement rules").
  So the ids of cancelled outgoing transfers are kept, with their expiry, for a day after the
  expiry and at most `CANCELLED_KEPT_MAX` of them (the oldest go first, with a warning). A
  healthy link cancels few outgoing transfers; 100,000 ids take about 20 MB.

A fulfilled outgoing transfer needs nothing here. Until it is pruned the log answers for it (a
plugin's memory log keeps it as a 12-byte digest, `ledger.settled.FulfilledOutgoing`): our own
re-send is a repeat and the receiver's repeated Fulfill is acknowledged. Once pruned, "not found"
to a repeated Fulfill makes the receiver keep the money, which is the right outcome too. This is
per process and starts empty: a durable store that prunes (`settledRetention` given) should keep
its settled transfers longer than the longest outage of the peer.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

log = logging.getLogger("ilp_paychan.plugin")

#: Seconds after its expiry that a forgotten cancelled outgoing transfer is still answered F05.
CANCELLED_KEPT_FOR = 86_400.0
#: The most cancelled outgoing ids kept.
CANCELLED_KEPT_MAX = 100_000


class ForgottenTransfers:
    """The pruning watermark and the cancelled outgoing ids of one plugin (see the module)."""

    __slots__ = ("_cancelled", "keep_cancelled", "watermark")

    def __init__(self, *, keep_cancelled: bool) -> None:
        """`keep_cancelled`: remember cancelled outgoing ids (only a log that prunes needs to)."""
        #: POSIX seconds: the latest `expired_before` a pruning pass was given (0: never).
        self.watermark = 0.0
        self.keep_cancelled = keep_cancelled
        self._cancelled: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        """How many cancelled outgoing ids are kept."""
        return len(self._cancelled)

    def cancelled_outgoing(self, transfer_id: str, expires_at: float) -> None:
        """Note an outgoing transfer that is now cancelled (POSIX expiry)."""
        if not self.keep_cancelled:
            return
        kept = self._cancelled
        kept[transfer_id] = expires_at
        if len(kept) > CANCELLED_KEPT_MAX:
            dropped, _ = kept.popitem(last=False)
            log.warning(
                "more than %d cancelled outgoing transfers remembered; %s is forgotten early "
                "(a Fulfill of it now gets F02)",
                CANCELLED_KEPT_MAX,
                dropped,
            )

    def was_cancelled(self, transfer_id: str) -> bool:
        """Whether a transfer the log no longer knows was an outgoing one we cancelled."""
        return transfer_id in self._cancelled

    def pruning(self, expired_before: float) -> None:
        """A pruning pass forgets what expired before this instant: raise the watermark and
        drop the cancelled ids kept long enough. Call it before the log forgets anything."""
        self.watermark = max(self.watermark, expired_before)
        horizon = expired_before - CANCELLED_KEPT_FOR
        kept = self._cancelled
        stale = [tid for tid, expiry in kept.items() if expiry < horizon]
        for tid in stale:
            del kept[tid]
