"""One side of a bench/btp_v2.py run on our BtpPlugin (BTP 2.0): a listener or a client process.

The same modes and lines as bench/js/btp_v2_peer.js, so the driver pairs either implementation
with either:

    btp_v2_peer.py listener [--secret S] [--store URL]
        A listener whose data handler fulfils every Prepare with sha256(data). Prints {"port"}
        once bound; exits when stdin closes. With --store, the durable trustline keeps the
        balance on that store (see `trustline_options`), and the listener prints
        {"balance": {...}, "commits": C, "operations": O} when stdin closes: the trustline's
        `get_balance()` and its store's write transactions and the operations they carried.
    btp_v2_peer.py client --url btp+ws://:S@127.0.0.1:P --count N --in-flight K --warmup W
        K workers send Prepares of 1 (distinct data, condition sha256(sha256(data))) until W,
        then N more, are answered. Prints {"warm": true} after the W-th and its result line
        after the last: {impl, count, inFlight, seconds, rate, failed, cpu_s}.

`cpu_s` is `time.process_time()` (every thread of the process) over the measured part.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ilp_paychan.codec import ilp4
from ilp_paychan.shell.event_loop import run as run_on_loop
from ilp_paychan.v2.plugin import BtpPlugin
from ilp_paychan.v2.trustline import Trustline

DESTINATION = "test.bench.peer"


def send(message: dict[str, Any]) -> None:
    """One JSON line to the driver."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def fulfil(raw: bytes) -> bytes:
    """The data handler: the Fulfill of the harness's scheme, fulfillment sha256(data)."""
    packet = ilp4.decode_prepare(raw)
    return ilp4.encode_fulfill(ilp4.IlpFulfill(hashlib.sha256(packet.data).digest()))


def trustline_options(store: str) -> dict[str, Any]:
    """The listener's options for a run through the durable trustline on `store`: limits far
    above what a run moves, so every Prepare is accounted and none is refused."""
    return {
        "balance": {"maximum": "1000000000000000000", "minimum": "-1000000000000000000"},
        "store": store,
    }


def store_counters(trustline: Trustline) -> tuple[int | None, int | None]:
    """(commits, operations) of the trustline's store, when it is a store that counts them.

    Reads a private attribute: a benchmark may, the library's callers may not."""
    store = getattr(getattr(trustline, "_backend", None), "store", None)
    return getattr(store, "commits", None), getattr(store, "operations", None)


async def wait_for_eof() -> None:
    """Return when stdin closes (the driver ended or is done with us).

    Watched by the event loop, not read on a thread, so it adds no thread to profiles."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    descriptor = sys.stdin.fileno()
    loop.add_reader(descriptor, readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            if not os.read(descriptor, 4096):
                return
    finally:
        loop.remove_reader(descriptor)


async def listener(args: argparse.Namespace) -> None:
    options: dict[str, Any] = {
        "listener": {"port": 0, "host": "127.0.0.1", "secret": args.secret},
        "responseTimeout": 30_000,
    }
    if args.store:
        options.update(trustline_options(args.store))
    server = BtpPlugin(options)
    server.register_data_handler(fulfil)
    await server.connect()
    send({"port": server.listener_port})
    await wait_for_eof()
    accounting = server.accounting
    if isinstance(accounting, Trustline):
        commits, operations = store_counters(accounting)
        send(
            {
                "balance": await accounting.get_balance(),
                "commits": commits,
                "operations": operations,
            }
        )
    await server.disconnect()


async def client(args: argparse.Namespace) -> None:
    plugin = BtpPlugin({"server": args.url, "responseTimeout": 30_000})
    plugin.register_data_handler(fulfil)
    await plugin.connect()
    expiry = timedelta(seconds=30)
    sequence = 0
    sha256 = hashlib.sha256

    async def one() -> bool:
        nonlocal sequence
        data = b"bench-%d" % sequence
        sequence += 1
        condition = sha256(sha256(data).digest()).digest()
        prepare = ilp4.encode_prepare(
            ilp4.IlpPrepare(1, datetime.now(UTC) + expiry, condition, DESTINATION, data)
        )
        reply = await plugin.send_data(prepare)
        return reply[0] == ilp4.TYPE_FULFILL

    async def batch(total: int) -> int:
        started = 0
        failed = 0

        async def worker() -> None:
            nonlocal started, failed
            while started < total:
                started += 1
                if not await one():
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(min(args.in_flight, total))))
        return failed

    await batch(args.warmup)
    send({"warm": True})
    cpu0, wall0 = time.process_time(), time.perf_counter()
    failed = await batch(args.count)
    seconds = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    send(
        {
            "mode": "client",
            "impl": "ilp-paychan BtpPlugin",
            "count": args.count,
            "inFlight": args.in_flight,
            "seconds": seconds,
            "rate": args.count / seconds,
            "failed": failed,
            "cpu_s": cpu,
        }
    )
    await plugin.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["listener", "client"])
    parser.add_argument("--secret", default="bench")
    parser.add_argument("--store", default=None, help="listener: durable trustline on this store")
    parser.add_argument("--url", default=None)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=1_000)
    args = parser.parse_args()
    if args.mode == "client" and not args.url:
        parser.error("client needs --url")
    run_on_loop(listener(args) if args.mode == "listener" else client(args))


if __name__ == "__main__":
    main()
