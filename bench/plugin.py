"""Fulfilled transfers per second between two Python plugins over loopback WebSockets.

Mirrors bench/js/plugin_bench.js: a stateful listener (the store under test) and a stateless
client in one process and one event loop; the client pays, the listener fulfils every transfer in
its `incoming_prepare` listener, and a transfer counts when the client sees `outgoing_fulfill`.
`--in-flight` transfers are outstanding at any time. One function per configuration returns
transfers/s; `main` prints a table. Asserts nothing.

    .venv/bin/python bench/plugin.py [--transfers 20000] [--in-flight 100] [--warmup 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ilp_paychan import Plugin

SECRET = "bench_secret"
PREFIX = "bench.py."


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


async def _run(store: str, transfers: int, in_flight: int, warmup: int) -> float:
    preimage = os.urandom(32)
    condition = _b64url(hashlib.sha256(preimage).digest())
    fulfillment = _b64url(preimage)
    server = Plugin(
        {
            "listener": {"port": 0, "host": "127.0.0.1"},
            "incomingSecret": SECRET,
            "maxBalance": "1000000000000000",
            "prefix": PREFIX,
            "info": {"prefix": PREFIX, "currencyCode": "USD", "currencyScale": 9, "connectors": []},
            "store": store,
            "requestTimeout": 30,
        }
    )
    await server.connect()
    client = Plugin({"server": f"btp+ws://:{SECRET}@127.0.0.1:{server.listener_port}", "requestTimeout": 30})
    await client.connect()

    tasks: set[asyncio.Task[Any]] = set()

    def fulfil(transfer: dict[str, Any]) -> None:
        task = asyncio.ensure_future(server.fulfill_condition(transfer["id"], fulfillment))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server.on("incoming_prepare", fulfil)

    done = 0
    slots = asyncio.Semaphore(in_flight)
    finished = asyncio.Event()
    total = warmup + transfers
    started_at = 0.0

    def fulfilled(_: Any) -> None:
        nonlocal done, started_at
        done += 1
        slots.release()
        if done == warmup:
            started_at = time.perf_counter()
        if done == total:
            finished.set()

    client.on("outgoing_fulfill", fulfilled)
    expires = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    to = client.get_peer_account()
    for _ in range(total):
        await slots.acquire()
        transfer = {
            "id": str(uuid.uuid4()),
            "to": to,
            "amount": "1",
            "executionCondition": condition,
            "expiresAt": expires,
        }
        task = asyncio.ensure_future(client.send_transfer(transfer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.wait_for(finished.wait(), 600)
    elapsed = time.perf_counter() - started_at
    if warmup == 0:
        elapsed = time.perf_counter() - started_at
    await client.disconnect()
    await server.disconnect()
    return transfers / elapsed


def bench_memory(transfers: int = 20000, in_flight: int = 100, warmup: int = 1000) -> float:
    """Transfers/s with the listener on the `memory:` store."""
    return asyncio.run(_run("memory:", transfers, in_flight, warmup))


def bench_sqlite(transfers: int = 20000, in_flight: int = 100, warmup: int = 1000) -> float:
    """Transfers/s with the listener on an SQLite file in a temporary directory."""
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(_run(f"sqlite:///{folder}/bench.db", transfers, in_flight, warmup))


CONFIGURATIONS = {"python memory:": bench_memory, "python sqlite:": bench_sqlite}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transfers", type=int, default=20000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--only", choices=sorted(CONFIGURATIONS), action="append")
    args = parser.parse_args()
    print(f"{'configuration':<20} {'transfers/s':>12}   ({args.transfers} transfers, {args.in_flight} in flight)")
    for name, run in CONFIGURATIONS.items():
        if args.only and name not in args.only:
            continue
        rate = run(args.transfers, args.in_flight, args.warmup)
        print(f"{name:<20} {rate:>12,.0f}")


if __name__ == "__main__":
    main()
