"""The listener under fuzz, run as a child process so its memory can be measured alone.

A stateful Plugin (SQLite store) listening on 127.0.0.1, which fulfils every incoming transfer
whose condition is that of `fulfillment_for(transfer id)`: the well-behaved clients build their
transfers that way, so the fuzzer's junk is never fulfilled. It counts every log record of level
ERROR or above (an exception that escaped a handler), every failed fulfilment and the events it
saw, and answers on stdout:

    python tests/fuzzkit/listener_proc.py --store sqlite:///path.db
    -> {"port": 4711, "pid": 123}              once listening
    <- report                                  (a line on stdin)
    -> {"balance": "...", ...}                 totals and counters
    stdin closed -> disconnect, final report, exit 0
"""

from __future__ import annotations

import asyncio
import collections
import gc
import hashlib
import json
import logging
import tracemalloc
from typing import Any

try:
    from .child_io import ErrorCounter, answer_commands, run_with_store
except ImportError:  # run as a script, as the driver starts it
    from child_io import (  # type: ignore[no-redef]
        ErrorCounter,
        answer_commands,
        run_with_store,
    )

SECRET = "fuzz_secret"
PREFIX = "fuzz."
MAX_BALANCE = 10**12


def fulfillment_for(transfer_id: str) -> bytes:
    """The preimage the listener reveals for a well-behaved transfer with this id."""
    return hashlib.sha256(b"fuzzkit fulfillment " + transfer_id.encode("ascii")).digest()


def condition_for(transfer_id: str) -> bytes:
    return hashlib.sha256(fulfillment_for(transfer_id)).digest()


async def serve(store: str) -> None:
    from ilp_paychan import Plugin
    from ilp_paychan.codec.condition import b64url_encode

    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)
    logging.getLogger().setLevel(logging.WARNING)
    # Undecodable-frame warnings are expected by the thousand; only errors matter here.
    logging.getLogger("ilp_paychan.transport").setLevel(logging.ERROR)

    plugin = Plugin(
        {
            "listener": {"port": 0, "host": "127.0.0.1"},
            "incomingSecret": SECRET,
            "prefix": PREFIX,
            "maxBalance": str(MAX_BALANCE),
            "info": {"currencyCode": "XFZ", "currencyScale": 0, "prefix": PREFIX},
            "store": store,
            "requestTimeout": 5,
        }
    )
    counters: dict[str, Any] = {
        "fulfil_failures": [],
        "fulfil_pending": 0,
        "events": {},
    }
    fulfilled: dict[str, int] = {}  # by the incoming_fulfill / incoming_fulfill_reverted events
    tasks: set[asyncio.Task[None]] = set()

    def count(name: str) -> Any:
        def listener(*args: Any) -> None:
            counters["events"][name] = counters["events"].get(name, 0) + 1

        return listener

    for name in (
        "incoming_prepare",
        "incoming_fulfill",
        "incoming_fulfill_confirmed",
        "incoming_fulfill_reverted",
        "incoming_cancel",
        "incoming_reject",
    ):
        plugin.on(name, count(name))

    def on_fulfill(transfer: dict[str, Any], *_: Any) -> None:
        fulfilled[transfer["id"]] = int(transfer["amount"])

    def on_reverted(transfer: dict[str, Any], *_: Any) -> None:
        fulfilled.pop(transfer["id"], None)

    plugin.on("incoming_fulfill", on_fulfill)
    plugin.on("incoming_fulfill_reverted", on_reverted)

    async def fulfil(transfer: dict[str, Any]) -> None:
        tid = transfer["id"]
        try:
            await plugin.fulfill_condition(tid, b64url_encode(fulfillment_for(tid)))
        except Exception as exc:  # a well-behaved transfer must always be fulfilled
            if type(exc).__name__ == "FulfillmentPendingError":  # stored, delivered later
                counters["fulfil_pending"] += 1
                return
            failures = counters["fulfil_failures"]
            if len(failures) < 20:
                failures.append(f"{tid}: {type(exc).__name__}: {exc}")

    def on_prepare(transfer: dict[str, Any]) -> None:
        if transfer.get("executionCondition") == b64url_encode(condition_for(transfer["id"])):
            task = asyncio.get_running_loop().create_task(fulfil(transfer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    plugin.on("incoming_prepare", on_prepare)

    async def echo(message: dict[str, Any]) -> dict[str, Any]:
        """A request handler that answers with what it was sent (exercises the outgoing checks)."""
        answer: dict[str, Any] = {"to": message["from"]}
        if message.get("ilp"):
            answer["ilp"] = message["ilp"]
        if message.get("custom") is not None:
            answer["custom"] = message["custom"]
        return answer

    plugin.register_request_handler(echo)
    await plugin.connect()

    async def report() -> dict[str, Any]:
        log = plugin.transfer_log
        ids = sorted(fulfilled)
        return {
            "balance": await log.get_balance(),
            "incoming_fulfilled": await log.get_incoming_fulfilled(),
            "incoming_fulfilled_and_prepared": await log.get_incoming_fulfilled_and_prepared(),
            "outgoing_fulfilled_and_prepared": await log.get_outgoing_fulfilled_and_prepared(),
            "in_flight": plugin.in_flight_count(),
            "fulfilled_count": len(fulfilled),
            "fulfilled_sum": str(sum(fulfilled.values())),
            "fulfilled_digest": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            "unacknowledged": sum(
                n["transfer"]["id"] in fulfilled for n in await log.list_peer_notices()
            ),
            "fulfil_failures": counters["fulfil_failures"],
            "fulfil_pending": counters["fulfil_pending"],
            "pending_fulfils": len(tasks),
            "events": counters["events"],
            "errors_logged": errors.count,
            "first_errors": errors.first,
        }

    snapshots: list[tracemalloc.Snapshot] = []

    async def objects() -> dict[str, int]:
        """What the heap holds, by type: for chasing memory growth."""
        gc.collect()
        kinds = collections.Counter(type(o).__name__ for o in gc.get_objects())
        return dict(kinds.most_common(25))

    async def allocations() -> list[str]:
        """With PYTHONTRACEMALLOC set: the growth since last asked."""
        snapshot = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
        grown = []
        if snapshot is not None and snapshots:
            stats = snapshot.compare_to(snapshots[-1], "lineno")
            grown = [str(s) for s in stats[:12]]
        if snapshot is not None:
            snapshots[:] = [snapshot]
        return grown

    await answer_commands(
        plugin.listener_port,
        {"report": report, "objects": objects, "allocations": allocations},
    )
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    final = await report()
    await plugin.disconnect()
    print(json.dumps(final), flush=True)


if __name__ == "__main__":
    run_with_store(serve, __doc__)
