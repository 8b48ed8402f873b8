"""A child process for the multi-process tests: a stream of ledger operations on one store.

    python ledger_worker.py mix   URL KEY SEED COUNT OUT   # random ops on a shared id pool
    python ledger_worker.py crash URL KEY SEED OUT         # runs until killed

Every line of OUT is JSON. `mix` writes one line per operation with its result and, after each,
the sums it read in one query (to check that no committed state ever passes a limit). `crash`
writes an intent line before each operation and an ack line after it, flushing each line with
one write(2), so the parent knows which operations were acknowledged when SIGKILL struck; it
clears the peer notice of some fulfilled transfers (an intent line only: a clear is not waited
for).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import uuid
from typing import Any

from ilp_paychan.errors import PluginError
from ilp_paychan.ledger import open_backend

POOL = 240
MAXIMUM = 150
MINIMUM = -150
IN_FLIGHT = 4


def pool_transfer(index: int) -> tuple[dict[str, Any], bool]:
    """The shared pool: every process prepares id `index` with the same content."""
    amount = 1 + (index * 7) % 20
    transfer = {"id": f"00000000-0000-4000-8000-{index:012d}", "amount": str(amount)}
    return transfer, index % 3 != 0


class Out:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def line(self, **fields: Any) -> None:
        os.write(self.fd, (json.dumps(fields) + "\n").encode())


async def mix(url: str, key: str, seed: int, count: int, out: Out) -> None:
    rng = random.Random(seed)
    backend = await open_backend(url)
    log = backend.get_transfer_log(key, maximum=MAXIMUM, minimum=MINIMUM)
    tracker = backend.get_max_value_tracker(key)
    store: Any = backend.store

    async def one(n: int) -> None:
        choice = rng.random()
        index = rng.randrange(POOL)
        transfer, incoming = pool_transfer(index)
        tid = transfer["id"]
        result: Any
        try:
            if choice < 0.45:
                op = "prepare"
                result = (await log.prepare(transfer, incoming)).value
            elif choice < 0.7:
                op = "fulfill"
                result = await log.fulfill(tid, "f")
            elif choice < 0.85:
                op = "cancel"
                result = await log.cancel(tid)
            else:
                op = "set_if_max"
                value = rng.randrange(10**6) * 8 + seed % 8
                previous = await tracker.set_if_max({"value": str(value), "data": seed})
                result = previous
                tid = str(value)
        except PluginError as exc:
            result = type(exc).__name__
        totals = await store.read_totals(key)
        out.line(
            op=op,
            id=tid,
            amount=transfer["amount"],
            incoming=incoming,
            result=result,
            totals=[
                totals.incoming_fulfilled,
                totals.outgoing_fulfilled,
                totals.incoming_fulfilled_and_prepared,
                totals.outgoing_fulfilled_and_prepared,
            ],
        )

    for start in range(0, count, IN_FLIGHT):
        await asyncio.gather(*(one(n) for n in range(start, min(count, start + IN_FLIGHT))))
    await backend.close()


async def crash(url: str, key: str, seed: int, out: Out) -> None:
    rng = random.Random(seed)
    backend = await open_backend(url)
    log = backend.get_transfer_log(key)
    out.line(op="ready")

    async def one() -> None:
        tid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        incoming = rng.random() < 0.5
        amount = rng.randrange(1, 10**6)
        out.line(op="try", id=tid)
        await log.prepare({"id": tid, "amount": str(amount)}, incoming)
        out.line(op="prepared", id=tid)
        if rng.random() < 0.6:
            await log.fulfill(tid, "f", notify_peer=True)
            out.line(op="fulfilled", id=tid)
            if rng.random() < 0.5:  # the peer acknowledged: clear the notice
                out.line(op="clearing", id=tid)
                await log.clear_peer_notice(tid)
        elif rng.random() < 0.5:
            await log.cancel(tid)
            out.line(op="cancelled", id=tid)

    while True:
        await asyncio.gather(*(one() for _ in range(IN_FLIGHT)))


def main(argv: list[str]) -> None:
    mode, url, key, seed = argv[1], argv[2], argv[3], int(argv[4])
    if mode == "mix":
        asyncio.run(mix(url, key, seed, int(argv[5]), Out(argv[6])))
    else:
        asyncio.run(crash(url, key, seed, Out(argv[5])))


if __name__ == "__main__":
    main(sys.argv)
