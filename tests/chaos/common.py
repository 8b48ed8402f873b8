"""What the chaos driver and its worker processes agree on, without talking to each other.

Every transfer's fulfillment is derived from its id and the run's secret, so the receiver can
fulfil what the sender sent and the final check can recompute what each receiver decided. The
decision (fulfil, reject, or leave to expire) and an optional delay before answering come from
the same hash, so a check can tell a refusal it asked for from one that happened by accident.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

SECRET = "chaos_secret"
PREFIX = "example.chaos."
INFO = {"currencyCode": "USD", "currencyScale": 2, "connectors": ["example.chaos.server"]}
#: Large enough that no limit refuses a transfer: the run tests agreement, not limits.
MAX_BALANCE = 10**15
ROLES = ("server", "client")

#: Out of 1000: how many transfers the receiver rejects, and how many it never answers.
REJECT_PER_MILLE = 100
IGNORE_PER_MILLE = 40
#: Out of 1000: how many answers are delayed (a random part of the time left, up to past expiry).
DELAY_PER_MILLE = 200


class Decision(Enum):
    """What the receiver does with an incoming Prepare."""

    FULFILL = "fulfill"
    REJECT = "reject"
    IGNORE = "ignore"


@dataclass(frozen=True)
class WorkerConfig:
    """One side's settings, written by the driver as JSON and read by the worker at each start."""

    role: str
    store: str
    port: int
    journal: str
    run_secret: str
    budget: int
    rate: float
    in_flight: int
    expiry_min: float
    expiry_max: float
    request_timeout: float
    seed: int

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> WorkerConfig:
        return cls(**json.loads(path.read_text()))


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode()).digest()


def transfer_id(run_secret: str, role: str, index: int) -> str:
    """The id of the `index`-th transfer `role` sends (the same after every restart)."""
    raw = bytearray(_digest(run_secret, "id", role, str(index))[:16])
    return str(uuid.UUID(bytes=bytes(raw), version=4))


def amount_of(run_secret: str, transfer: str) -> int:
    """A transfer's amount: 1 to 1000."""
    return 1 + int.from_bytes(_digest(run_secret, "amount", transfer)[:4], "big") % 1000


def preimage_of(run_secret: str, transfer: str) -> bytes:
    return _digest(run_secret, "preimage", transfer)


def condition_of(run_secret: str, transfer: str) -> bytes:
    return hashlib.sha256(preimage_of(run_secret, transfer)).digest()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decision_of(run_secret: str, transfer: str) -> Decision:
    """The receiver's decision for a transfer, a pure function of its id and the run."""
    roll = int.from_bytes(_digest(run_secret, "decision", transfer)[:4], "big") % 1000
    if roll < REJECT_PER_MILLE:
        return Decision.REJECT
    if roll < REJECT_PER_MILLE + IGNORE_PER_MILLE:
        return Decision.IGNORE
    return Decision.FULFILL


def delay_fraction(run_secret: str, transfer: str) -> float:
    """0 for an answer at once; else the fraction (up to 1.3) of the time left to wait first."""
    raw = int.from_bytes(_digest(run_secret, "delay", transfer)[:4], "big")
    if raw % 1000 >= DELAY_PER_MILLE:
        return 0.0
    return 1.3 * ((raw // 1000) % 1000) / 1000


class Journal:
    """A worker's append-only JSON-lines log: one write(2) per line, so SIGKILL cuts at most
    the last line, which `read_journal` then ignores."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if os.fstat(self._fd).st_size:
            with open(path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    os.write(self._fd, b"\n")  # end the line a kill cut short

    def write(self, **fields: Any) -> None:
        os.write(self._fd, (json.dumps(fields, separators=(",", ":")) + "\n").encode())


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's complete lines (a line cut by SIGKILL is skipped)."""
    if not path.exists():
        return []
    lines: list[dict[str, Any]] = []
    for raw in path.read_bytes().split(b"\n"):
        if not raw:
            continue
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines
