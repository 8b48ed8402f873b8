"""A simulated settlement ledger: accounts with balances and final, unconditional payments.

It stands for any system that can move money but not conditionally (a bank transfer, an on-chain
payment). Each payment gets a transaction id (`txid`, a UUID) that anyone can look up, which is
how the payee checks it was paid. A payment carries the payer's `reference`; paying twice with
the same reference returns the first txid instead of paying again, so a payer that crashed
mid-payment can safely retry. State is one JSON file, replaced atomically under a lock file, so
several processes can share the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LOCK_WAIT = 5.0


class InsufficientFunds(ValueError):
    """The payer's account holds less than the payment."""


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    source: str
    destination: str
    amount: int
    reference: str


class PaymentLedger:
    """Accounts and payments under one directory; every method is atomic across processes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    async def fund(self, account: str, amount: int) -> int:
        """Add `amount` to `account` (the simulation's faucet); returns the new balance."""
        return await asyncio.to_thread(self._fund, account, amount)

    async def balance(self, account: str) -> int:
        state = await asyncio.to_thread(self._load)
        return int(state["accounts"].get(account, "0"))

    async def pay(self, source: str, destination: str, amount: int, reference: str) -> str:
        """Move `amount` from `source` to `destination`; returns the payment's txid.

        Raises:
            ValueError: amount not positive. InsufficientFunds: `source` holds less.
        """
        return await asyncio.to_thread(self._pay, source, destination, amount, reference)

    async def get_payment(self, txid: str) -> Payment | None:
        state = await asyncio.to_thread(self._load)
        found = state["payments"].get(txid)
        return _payment(found) if found is not None else None

    async def payments(self, source: str, destination: str) -> list[Payment]:
        """Every payment from `source` to `destination`, oldest first."""
        state = await asyncio.to_thread(self._load)
        return [
            _payment(p)
            for p in state["payments"].values()
            if p["source"] == source and p["destination"] == destination
        ]

    # --- synchronous parts, run in a worker thread -------------------------------------------

    @property
    def _file(self) -> Path:
        return self.root / "ledger.json"

    def _load(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self._file.read_text())
        except FileNotFoundError:
            return {"accounts": {}, "payments": {}, "references": {}}
        return state

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self._file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._file)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock = self.root / ".lock"
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                break
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"ledger {self.root} is locked by another writer") from None
                time.sleep(0.002)
        try:
            yield self._load()
        finally:
            os.close(fd)
            os.unlink(lock)

    def _fund(self, account: str, amount: int) -> int:
        if amount <= 0:
            raise ValueError(f"amount must be positive, got {amount}")
        with self._locked() as state:
            balance = int(state["accounts"].get(account, "0")) + amount
            state["accounts"][account] = str(balance)
            self._save(state)
            return balance

    def _pay(self, source: str, destination: str, amount: int, reference: str) -> str:
        if amount <= 0:
            raise ValueError(f"amount must be positive, got {amount}")
        with self._locked() as state:
            ref_key = f"{source}\n{reference}"
            existing = state["references"].get(ref_key)
            if existing is not None:
                return str(existing)
            have = int(state["accounts"].get(source, "0"))
            if have < amount:
                raise InsufficientFunds(f"{source} holds {have}, cannot pay {amount}")
            txid = str(uuid.uuid4())
            state["accounts"][source] = str(have - amount)
            state["accounts"][destination] = str(
                int(state["accounts"].get(destination, "0")) + amount
            )
            payment = Payment(txid, source, destination, amount, reference)
            state["payments"][txid] = {**asdict(payment), "amount": str(amount)}
            state["references"][ref_key] = txid
            self._save(state)
            return txid


def _payment(data: dict[str, Any]) -> Payment:
    return Payment(
        data["id"], data["source"], data["destination"], int(data["amount"]), data["reference"]
    )
