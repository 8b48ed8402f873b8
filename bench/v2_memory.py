"""Memory of a BtpPlugin pair under a long run of send_data: RSS at checkpoints.

Why: a trustline on `memory:` keeps settled packets until they are pruned, and every request
crosses the transport's pending tables; a leak per packet shows as RSS that keeps growing from
10k to 100k packets. Both plugins run in this one process (listener with a fulfilling data
handler, client sending 100 at a time), so the figure is their sum. It prints numbers; it
asserts nothing about time. The listener keeps each settled packet until its expiry plus
`settledRetention` (10 s on `memory:`), so what it holds is bounded by the packets of that
window: `--expiry` shortens the packets' lifetime to show the plateau within a short run, and
each line says how many settled packets the store still keeps.

    .venv/bin/python bench/v2_memory.py [--count 100000] [--in-flight 100] [--store memory:]
        [--expiry 30] [--every 0]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from ilp_paychan.codec import ilp4
from ilp_paychan.v2.plugin import BtpPlugin

FULFILLMENT = bytes(range(32))
CONDITION = hashlib.sha256(FULFILLMENT).digest()
REPLY = ilp4.encode_fulfill(ilp4.IlpFulfill(FULFILLMENT, b""))


def rss_kb() -> int:
    """The resident set size of this process in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def kept(plugin: BtpPlugin) -> str:
    """How many settled packets the trustline's store keeps compactly, and in how many bytes."""
    accounting = plugin.accounting
    backend = getattr(accounting, "_backend", None)
    store = getattr(backend, "store", None)
    packed = getattr(store, "packed", None)
    if packed is None:
        return ""
    found = packed(accounting.settings.store_key)  # type: ignore[union-attr]
    if found is None:
        return ", kept 0"
    return f", kept {len(found)} in {found.memory() // 1024} KiB"


async def run(count: int, in_flight: int, store: str, expiry: float, every: int) -> None:
    """Send `count` Prepares over a loopback pair; print RSS and tasks at checkpoints."""
    trustline = {"balance": {"maximum": str(10**15), "minimum": str(-(10**15))}, "store": store}
    server = BtpPlugin({"listener": {"port": 0, "host": "127.0.0.1", "secret": "s"}, **trustline})
    await server.connect()

    async def handler(data: bytes) -> bytes:
        return REPLY

    server.register_data_handler(handler)
    client = BtpPlugin({"server": f"btp+ws://:s@127.0.0.1:{server.listener_port}"})
    await client.connect()
    checkpoints = {1_000, 10_000, 50_000, 100_000, count}
    if every > 0:
        checkpoints.update(range(every, count + 1, every))
    sent = 0
    started = time.perf_counter()

    async def one() -> None:
        nonlocal sent
        while sent < count:
            sent += 1
            expires = datetime.now(UTC) + timedelta(seconds=expiry)
            packet = ilp4.IlpPrepare(1, expires, CONDITION, "test.bench", os.urandom(8))
            reply = await client.send_data(ilp4.encode_prepare(packet))
            if reply[0] != ilp4.TYPE_FULFILL:
                raise RuntimeError(f"not fulfilled: {ilp4.decode_reply(reply)!r}")
            if sent in checkpoints:
                checkpoints.discard(sent)
                gc.collect()
                print(
                    f"{sent:>7} packets: RSS {rss_kb():>7} KiB, tasks {len(asyncio.all_tasks())},"
                    f" {time.perf_counter() - started:.1f} s{kept(server)}",
                    flush=True,
                )

    await asyncio.gather(*(one() for _ in range(in_flight)))
    accounting = server.accounting
    if accounting is not None and hasattr(accounting, "get_balance"):
        print(f"listener balance: {(await accounting.get_balance())['balance']}")
    await client.disconnect()
    await server.disconnect()
    gc.collect()
    print(f"after disconnect: RSS {rss_kb()} KiB, tasks {len(asyncio.all_tasks())}")


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--store", default="memory:")
    parser.add_argument("--expiry", type=float, default=30.0, help="packet lifetime, seconds")
    parser.add_argument("--every", type=int, default=0, help="also a line every N packets")
    args = parser.parse_args()
    asyncio.run(run(args.count, args.in_flight, args.store, args.expiry, args.every))


if __name__ == "__main__":
    main()
