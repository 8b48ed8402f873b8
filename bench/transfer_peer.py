"""One side of a bench/transfers.py run, on our Plugin: a listener or a client process.

The same roles and JSON-lines protocol as bench/js/transfer_peer.js, so the driver pairs either
implementation with either:

    transfer_peer.py listener --store URL --fulfillment F --warmup W --total T
        A stateful listener on the store under test. Prints {"port"}; fulfils every incoming
        prepare from its `incoming_prepare` listener; on "stop" (a line on stdin) waits until T
        are fulfilled (bounded), prints its result line and exits.
    transfer_peer.py client --port P --condition C --warmup W --total T --in-flight K [--store URL]
        A client, stateless unless given a store: K workers each send a transfer of 1 and wait
        for its `outgoing_fulfill`. Prints {"warm"} when W transfers are fulfilled, its result
        line when all T are, then waits for "stop".

The CPU (`time.process_time`: every thread of the process, a store's helper thread included)
and wall windows run from the W-th fulfilled transfer to the T-th. Latency is per transfer
(index >= W), from calling `send_transfer` to its `outgoing_fulfill`. Either side exits when its
stdin closes, so a dead driver leaves nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from _harness import (
    PREFIX,
    SECRET,
    id_digest,
    peak_rss_kib,
    percentiles,
    thread_cpu_seconds,
)

from ilp_paychan import Plugin
from ilp_paychan.shell.event_loop import run as run_on_loop


def send(message: dict[str, Any]) -> None:
    """One JSON line to the driver."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Window:
    """CPU and wall-clock marks at the warm-up boundary and at the end of the measured part."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def mark(self) -> None:
        self.marks.append((time.process_time(), time.perf_counter()))

    def result(self) -> dict[str, float | None]:
        if len(self.marks) < 2:
            return {"cpu_s": None, "wall_s": None}
        (cpu_a, wall_a), (cpu_b, wall_b) = self.marks[:2]
        return {"cpu_s": cpu_b - cpu_a, "wall_s": wall_b - wall_a}


def store_counters(plugin: Plugin) -> tuple[int | None, int | None]:
    """(commits, operations) of the plugin's store, when it is a store that counts them.

    Reads a private attribute of the plugin: a benchmark may, the library's callers may not."""
    backend = getattr(plugin, "_backend", None)
    store = getattr(backend, "store", None)
    return getattr(store, "commits", None), getattr(store, "operations", None)


async def wait_for_stop() -> None:
    """Return at the driver's first line on stdin; end the process at once if stdin closes.

    Watched by the event loop, not read on a thread: a thread blocked on stdin would show in
    profiles and per-thread CPU."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    descriptor = sys.stdin.fileno()
    loop.add_reader(descriptor, readable.set)
    try:
        await readable.wait()
    finally:
        loop.remove_reader(descriptor)
    if not os.read(descriptor, 4096):
        os._exit(3)


async def listener(args: argparse.Namespace) -> None:
    server = Plugin(
        {
            "listener": {"port": 0, "host": "127.0.0.1"},
            "incomingSecret": SECRET,
            "maxBalance": "1000000000000000",
            "prefix": PREFIX,
            "info": {"prefix": PREFIX, "currencyCode": "USD", "currencyScale": 9, "connectors": []},
            "store": args.store,
            "requestTimeout": 30,
        }
    )
    await server.connect()
    window = Window()
    ids: set[str] = set()
    errors: list[str] = []
    failed = 0
    tasks: set[asyncio.Task[None]] = set()
    settled = asyncio.Event()
    commits_at_start = store_counters(server)
    if args.warmup == 0:
        window.mark()

    async def fulfil(transfer_id: str) -> None:
        nonlocal failed
        try:
            await server.fulfill_condition(transfer_id, args.fulfillment)
        except Exception as error:
            failed += 1
            if len(errors) < 5:
                errors.append(repr(error))
        else:
            ids.add(transfer_id)
            if len(ids) in (args.warmup, args.total):
                window.mark()
        if len(ids) + failed >= args.total:
            settled.set()

    def on_prepare(transfer: dict[str, Any], *_: Any) -> None:
        task = asyncio.ensure_future(fulfil(transfer["id"]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server.on("incoming_prepare", on_prepare)
    send({"port": server.listener_port})
    await wait_for_stop()
    with contextlib.suppress(TimeoutError):  # the driver's check reports what is missing
        await asyncio.wait_for(settled.wait(), 30)
    balance = await server.get_balance()
    commits, operations = store_counters(server)
    threads = thread_cpu_seconds()  # before disconnect() ends the store's thread
    await server.disconnect()
    send(
        {
            "fulfilled": len(ids),
            "failed": failed,
            "errors": errors,
            "balance": balance,
            "digest": id_digest(ids),
            **window.result(),
            "peak_rss_kib": peak_rss_kib(),
            "thread_cpu_s": threads,
            "commits": _delta(commits, commits_at_start[0]),
            "operations": _delta(operations, commits_at_start[1]),
        }
    )


def _delta(now: int | None, then: int | None) -> int | None:
    return None if now is None or then is None else now - then


async def client(args: argparse.Namespace) -> None:
    options: dict[str, Any] = {
        "server": f"btp+ws://:{SECRET}@127.0.0.1:{args.port}",
        "requestTimeout": 30,
    }
    if args.store:
        options.update({"store": args.store, "maxBalance": "1000000000000000"})
    plugin = Plugin(options)
    loop = asyncio.get_running_loop()
    waiting: dict[str, tuple[int, float, asyncio.Future[str | None]]] = {}
    latencies: list[float] = []
    window = Window()
    ids: set[str] = set()
    errors: list[str] = []
    failed = 0
    done = 0
    warmup, total = args.warmup, args.total

    def settle(transfer: dict[str, Any], error: str | None) -> None:
        nonlocal done
        entry = waiting.pop(transfer["id"], None)
        if entry is None:
            return
        index, started, outcome = entry
        if error is None:
            if index >= warmup:
                latencies.append((time.perf_counter() - started) * 1000)
            ids.add(transfer["id"])
            done += 1
            if done in (warmup, total):
                window.mark()
            if done == warmup:
                send({"warm": True})
        if not outcome.done():
            outcome.set_result(error)

    plugin.on("outgoing_fulfill", lambda transfer, *_: settle(transfer, None))
    plugin.on("outgoing_reject", lambda transfer, *_: settle(transfer, "rejected"))
    plugin.on("outgoing_cancel", lambda transfer, *_: settle(transfer, "cancelled"))
    await plugin.connect()
    commits_at_start = store_counters(plugin)
    to = plugin.get_peer_account()
    if warmup == 0:
        window.mark()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index, failed
        while next_index < total:
            index = next_index
            next_index += 1
            transfer_id = str(uuid.uuid4())
            outcome: asyncio.Future[str | None] = loop.create_future()
            waiting[transfer_id] = (index, time.perf_counter(), outcome)
            expires = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
            try:
                await plugin.send_transfer(
                    {
                        "id": transfer_id,
                        "to": to,
                        "amount": "1",
                        "executionCondition": args.condition,
                        "expiresAt": expires,
                    }
                )
                error = await outcome
            except Exception as failure:
                waiting.pop(transfer_id, None)
                error = repr(failure)
            if error is not None:
                failed += 1
                if len(errors) < 5:
                    errors.append(error)

    await asyncio.gather(*(worker() for _ in range(min(args.in_flight, total))))
    balance = await plugin.get_balance()
    commits, operations = store_counters(plugin)
    send(
        {
            "fulfilled": done,
            "failed": failed,
            "errors": errors,
            "balance": balance,
            "digest": id_digest(ids),
            **window.result(),
            "latencies_ms": percentiles(latencies),
            "peak_rss_kib": peak_rss_kib(),
            "thread_cpu_s": thread_cpu_seconds(),
            "commits": _delta(commits, commits_at_start[0]),
            "operations": _delta(operations, commits_at_start[1]),
        }
    )
    await wait_for_stop()
    await plugin.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("role", choices=["listener", "client"])
    parser.add_argument("--store", default="")
    parser.add_argument("--fulfillment", default="")
    parser.add_argument("--condition", default="")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--in-flight", type=int, default=1)
    args = parser.parse_args()
    run_on_loop(listener(args) if args.role == "listener" else client(args))


if __name__ == "__main__":
    main()
