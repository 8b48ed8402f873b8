"""The ledger's data: a log's totals and limits, a stored transfer, and how they read back.

These are plain values passed between the TransferLog front, the pure rules and the stores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

#: A stored transfer's state, as `TransferLog.get` reports it (the plugin's state machine uses
#: these same names; they are defined only here).
PREPARED = "prepared"
FULFILLED = "fulfilled"
CANCELLED = "cancelled"


class PrepareOutcome(Enum):
    """What `TransferLog.prepare` did.

    NEW: the transfer is now prepared and counted. The REPEAT_* outcomes mean an identical
    transfer with that id was already stored (in the named state); nothing was counted again.
    """

    NEW = "new"
    REPEAT_PREPARED = "repeat_prepared"
    REPEAT_FULFILLED = "repeat_fulfilled"
    REPEAT_CANCELLED = "repeat_cancelled"


REPEAT_OUTCOME = {
    PREPARED: PrepareOutcome.REPEAT_PREPARED,
    FULFILLED: PrepareOutcome.REPEAT_FULFILLED,
    CANCELLED: PrepareOutcome.REPEAT_CANCELLED,
}


@dataclass(slots=True)
class LogTotals:
    """The four sums of one TransferLog and its stored limits.

    `maximum`/`minimum` are the stored settings as text: `None` when never set (the
    `get_transfer_log` argument applies), else a decimal or the matching infinity.
    """

    incoming_fulfilled: int = 0
    outgoing_fulfilled: int = 0
    incoming_fulfilled_and_prepared: int = 0
    outgoing_fulfilled_and_prepared: int = 0
    maximum: str | None = None
    minimum: str | None = None

    def copy(self) -> LogTotals:
        """A separate copy that a transition may change while the original stays as it was."""
        return LogTotals(
            self.incoming_fulfilled,
            self.outgoing_fulfilled,
            self.incoming_fulfilled_and_prepared,
            self.outgoing_fulfilled_and_prepared,
            self.maximum,
            self.minimum,
        )


@dataclass(slots=True)
class StoredTransfer:
    """One transfer as a store keeps it; `transfer_json` is the transfer mapping as JSON text.

    `notice` is what the plugin re-sends to the peer while `notify_peer` is set (the encoded ILP
    error of a Reject, the `ilp` data of a Fulfill); it is dropped with the notice.
    """

    id: str
    transfer_json: str
    is_incoming: bool
    amount: int
    expires_at: datetime | None
    state: str = PREPARED
    fulfillment: str | None = None
    notify_peer: bool = False
    notice: bytes | None = None

    def record(self) -> dict[str, Any]:
        """The transfer-with-info mapping of the public API (a fresh object each call)."""
        return {
            "transfer": json.loads(self.transfer_json),
            "isIncoming": self.is_incoming,
            "state": self.state,
            "fulfillment": self.fulfillment,
        }

    def describe(self) -> str:
        """The reference's JSON of a record, used in error messages."""
        body = {
            "transfer": json.loads(self.transfer_json),
            "isIncoming": self.is_incoming,
            "state": self.state,
        }
        if self.fulfillment is not None:
            body["fulfillment"] = self.fulfillment
        return json.dumps(body, separators=(",", ":"))
