"""A simulated on-ledger payment channel: the part of a blockchain a claim-based module talks to.

Each channel is one JSON file `<root>/channels/<id>.json` holding its sender and receiver public
keys, the `capacity` the sender locked in, and how much the receiver has `claimed` so far. Writes
take a lock file (so two processes, even the JavaScript twin of this module, can share a ledger)
and replace the file atomically, so a crash never leaves half a channel. The ledger checks every
claim's signature itself, as a real chain would: a forged claim pays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from claim_channel.claims import Claim, channel_id, claim_is_signed_by

LOCK_WAIT = 5.0
"""Seconds to wait for another writer before giving up (a crashed writer leaves a stale lock)."""


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    sender: bytes
    receiver: bytes
    capacity: int
    claimed: int

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "sender": self.sender.hex(),
            "receiver": self.receiver.hex(),
            "capacity": str(self.capacity),
            "claimed": str(self.claimed),
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Channel:
        return cls(
            data["id"],
            bytes.fromhex(data["sender"]),
            bytes.fromhex(data["receiver"]),
            int(data["capacity"]),
            int(data["claimed"]),
        )


class ChannelLedger:
    """Channels under one directory; every method is atomic across threads and processes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    async def open_channel(self, sender: bytes, receiver: bytes, capacity: int) -> Channel:
        """Open the channel sender→receiver with `capacity`, or top it up to `capacity`.

        Idempotent: opening again with the same or a smaller capacity changes nothing.
        """
        return await asyncio.to_thread(self._open_channel, sender, receiver, capacity)

    async def get_channel(self, channel: str) -> Channel | None:
        return await asyncio.to_thread(self._read, channel)

    async def submit_claim(self, claim: Claim) -> int:
        """Pay the receiver what `claim` allows beyond what it already claimed; returns that.

        A claim with a bad signature, for an unknown channel, or not above the amount already
        claimed pays 0. A claim above the capacity pays up to the capacity.
        """
        return await asyncio.to_thread(self._submit, claim)

    # --- synchronous parts, run in a worker thread -------------------------------------------

    def _path(self, channel: str) -> Path:
        return self.root / "channels" / f"{channel}.json"

    def _read(self, channel: str) -> Channel | None:
        try:
            text = self._path(channel).read_text()
        except FileNotFoundError:
            return None
        return Channel.from_json(json.loads(text))

    def _write(self, channel: Channel) -> None:
        path = self._path(channel.id)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(channel.to_json()))
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        (self.root / "channels").mkdir(parents=True, exist_ok=True)
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
            yield
        finally:
            os.close(fd)
            os.unlink(lock)

    def _open_channel(self, sender: bytes, receiver: bytes, capacity: int) -> Channel:
        if capacity < 0:
            raise ValueError(f"capacity must not be negative, got {capacity}")
        ident = channel_id(sender, receiver)
        with self._locked():
            current = self._read(ident)
            if current is None:
                current = Channel(ident, sender, receiver, capacity, 0)
            elif capacity > current.capacity:
                current = Channel(ident, sender, receiver, capacity, current.claimed)
            else:
                return current
            self._write(current)
            return current

    def _submit(self, claim: Claim) -> int:
        with self._locked():
            channel = self._read(claim.channel)
            if channel is None or not claim_is_signed_by(channel.sender, claim):
                return 0
            amount = min(claim.balance, channel.capacity)
            if amount <= channel.claimed:
                return 0
            self._write(
                Channel(channel.id, channel.sender, channel.receiver, channel.capacity, amount)
            )
            return amount - channel.claimed
