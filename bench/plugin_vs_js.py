"""Our plugin against the JS reference on the same workload: fulfilled transfers per second.

The workload is the one of bench/js/plugin_bench.js, mirrored step for step: a stateful listener
(the store under test) and a stateless client in one process and event loop, over loopback
WebSockets; `--in-flight` workers each send a transfer, wait until the client sees its
`outgoing_fulfill`, and go again; the listener fulfils every prepare in its `incoming_prepare`
listener. Rates are per wall-clock second and per CPU second of the measuring process (the
machine is shared, so the second is the steadier comparison). The JS numbers come from running
that script with node (the reference installed in tests/interop/js, with `npm ci` if missing).
Prints a table; asserts nothing.

    .venv/bin/python bench/plugin_vs_js.py [--transfers 20000] [--in-flight 100] [--warmup 1000]
                                           [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ilp_paychan import Plugin

ROOT = Path(__file__).resolve().parent.parent
JS_BENCH = ROOT / "bench" / "js" / "plugin_bench.js"
SECRET = "bench_secret"
PREFIX = "bench.py."


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


Rates = tuple[float, float]  # (transfers per wall-clock second, per CPU second of the process)


async def _python_rate(store: str, transfers: int, in_flight: int, warmup: int) -> Rates:
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
        }
    )
    await server.connect()
    client = Plugin({"server": f"btp+ws://:{SECRET}@127.0.0.1:{server.listener_port}"})
    await client.connect()
    background: set[asyncio.Task[Any]] = set()

    def fulfil(transfer: dict[str, Any]) -> None:
        task = asyncio.ensure_future(server.fulfill_condition(transfer["id"], fulfillment))
        background.add(task)
        task.add_done_callback(background.discard)

    waiting: dict[str, asyncio.Future[None]] = {}

    def fulfilled(transfer: dict[str, Any], *_: Any) -> None:
        future = waiting.pop(transfer["id"], None)
        if future is not None and not future.done():
            future.set_result(None)

    server.on("incoming_prepare", fulfil)
    client.on("outgoing_fulfill", fulfilled)
    to = client.get_peer_account()
    loop = asyncio.get_running_loop()

    async def pay_one() -> None:
        transfer_id = str(uuid.uuid4())
        done: asyncio.Future[None] = loop.create_future()
        waiting[transfer_id] = done
        expires = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
        await client.send_transfer(
            {
                "id": transfer_id,
                "to": to,
                "amount": "1",
                "executionCondition": condition,
                "expiresAt": expires,
            }
        )
        await done

    async def run(count: int) -> Rates:
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await pay_one()

        started = time.perf_counter()
        cpu_started = time.process_time()
        await asyncio.wait_for(
            asyncio.gather(*(worker() for _ in range(min(in_flight, count)))), 600
        )
        return time.perf_counter() - started, time.process_time() - cpu_started

    try:
        await run(warmup)
        seconds, cpu_seconds = await run(transfers)
    finally:
        await client.disconnect()
        await server.disconnect()
    return transfers / seconds, transfers / cpu_seconds


def python_memory(transfers: int, in_flight: int, warmup: int) -> Rates:
    """Transfers/s, our listener on `memory:`."""
    return asyncio.run(_python_rate("memory:", transfers, in_flight, warmup))


def python_sqlite(transfers: int, in_flight: int, warmup: int) -> Rates:
    """Transfers/s, our listener on an SQLite file in a temporary directory."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        return asyncio.run(_python_rate(url, transfers, in_flight, warmup))


def js_reference(transfers: int, in_flight: int, warmup: int) -> Rates:
    """Transfers/s of the reference (stateful listener with an in-memory object store)."""
    sys.path.insert(0, str(ROOT / "tests"))
    jspeer = importlib.import_module("interop.jspeer")  # installs the pinned reference if needed
    jspeer.ensure_node_modules()
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed (./dev test installs it)")
    argv = [node, str(JS_BENCH), "--transfers", str(transfers), "--in-flight", str(in_flight)]
    argv += ["--warmup", str(warmup)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return float(result["transfers_per_second"]), float(result["transfers_per_cpu_second"])


CONFIGURATIONS: dict[str, Callable[[int, int, int], Rates]] = {
    "js reference 1.3.5": js_reference,
    "python memory:": python_memory,
    "python sqlite:": python_sqlite,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--transfers", type=int, default=20000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="runs per configuration (median)")
    args = parser.parse_args()
    rates: dict[str, list[Rates]] = {name: [] for name in CONFIGURATIONS}
    for _ in range(args.rounds):  # interleaved, so machine noise hits every configuration alike
        for name, run in CONFIGURATIONS.items():
            rates[name].append(run(args.transfers, args.in_flight, args.warmup))
    js_wall = statistics.median(r[0] for r in rates["js reference 1.3.5"])
    js_cpu = statistics.median(r[1] for r in rates["js reference 1.3.5"])
    print(
        f"fulfilled transfers/s, {args.transfers} transfers, {args.in_flight} in flight, "
        f"median of {args.rounds} rounds (wall-clock min-max)"
    )
    header = f"{'configuration':<20} {'wall /s':>9} {'range':>13} {'vs JS':>6}"
    print(header + f" {'per CPU s':>10} {'vs JS':>6}")
    for name, values in rates.items():
        wall = statistics.median(r[0] for r in values)
        cpu = statistics.median(r[1] for r in values)
        spread = f"{min(r[0] for r in values):,.0f}-{max(r[0] for r in values):,.0f}"
        print(
            f"{name:<20} {wall:>9,.0f} {spread:>13} {wall / js_wall:>5.2f}x"
            f" {cpu:>10,.0f} {cpu / js_cpu:>5.2f}x"
        )


if __name__ == "__main__":
    main()
