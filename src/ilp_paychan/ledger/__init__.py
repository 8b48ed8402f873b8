"""The ledger layer: TransferLogs and MaxValueTrackers over memory, SQLite, PostgreSQL or a
user key/value store. Every operation is one atomic transaction; nothing here knows of sockets.
"""

from ilp_paychan.ledger.backend import Backend, open_backend
from ilp_paychan.ledger.max_value import MaxValueTracker
from ilp_paychan.ledger.memory import MemoryStore
from ilp_paychan.ledger.opening import StoreOpenError, StoreUnreachableError
from ilp_paychan.ledger.records import CANCELLED, FULFILLED, PREPARED, PrepareOutcome
from ilp_paychan.ledger.store import LedgerStore
from ilp_paychan.ledger.transfer_log import TransferLog

__all__ = [
    "CANCELLED",
    "FULFILLED",
    "PREPARED",
    "Backend",
    "LedgerStore",
    "MaxValueTracker",
    "MemoryStore",
    "PrepareOutcome",
    "StoreOpenError",
    "StoreUnreachableError",
    "TransferLog",
    "open_backend",
]
