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
import importlib.util
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
from ilp_paychan.shell.event_loop import loop_name
from ilp_paychan.shell.event_loop import run as run_on_loop

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
    return run_on_loop(_python_rate("memory:", transfers, in_flight, warmup))


def python_sqlite(transfers: int, in_flight: int, warmup: int) -> Rates:
    """Transfers/s, our listener on an SQLite file in a temporary directory."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        return run_on_loop(_python_rate(url, transfers, in_flight, warmup))


def js_reference(transfers: int, in_flight: int, warmup: int, processes: int = 1) -> Rates:
    """Transfers/s of the reference (stateful listener with an in-memory object store).

    With `processes=2` the listener runs in a child Node process and the CPU rate is the
    client's alone."""
    sys.path.insert(0, str(ROOT / "tests"))
    jspeer = importlib.import_module("interop.jspeer")  # installs the pinned reference if needed
    jspeer.ensure_node_modules()
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed (./dev test installs it)")
    argv = [node, str(JS_BENCH), "--transfers", str(transfers), "--in-flight", str(in_flight)]
    argv += ["--warmup", str(warmup)] + (["--two-processes"] if processes == 2 else [])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return float(result["transfers_per_second"]), float(result["transfers_per_cpu_second"])


def python_sqlite_normal(transfers: int, in_flight: int, warmup: int) -> Rates:
    """Transfers/s, our listener on SQLite with `synchronous=NORMAL` (no fsync per commit)."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db?synchronous=NORMAL"
        return run_on_loop(_python_rate(url, transfers, in_flight, warmup))


def js_two_processes(transfers: int, in_flight: int, warmup: int) -> Rates:
    """The reference with its listener in a child process; CPU rate of the client process."""
    return js_reference(transfers, in_flight, warmup, processes=2)


def _bench_plugin_module() -> Any:
    """bench/plugin.py, by path (a bare `import plugin` may find tests/plugin instead)."""
    loaded = sys.modules.get("bench_plugin")
    if loaded is None:
        spec = importlib.util.spec_from_file_location("bench_plugin", ROOT / "bench" / "plugin.py")
        assert spec is not None
        assert spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        sys.modules["bench_plugin"] = loaded
        spec.loader.exec_module(loaded)
    return loaded


def _two_processes(store: str) -> Callable[[int, int, int], Rates]:
    """bench/plugin.py's 2-process run: our listener in a child process, the client here."""

    def run(transfers: int, in_flight: int, warmup: int) -> Rates:
        plugin_bench = _bench_plugin_module()
        with tempfile.TemporaryDirectory() as folder:
            url = store.replace("{folder}", folder)
            wall = plugin_bench._run_two_processes(url, transfers, in_flight, warmup)
        return wall, plugin_bench.LAST_CPU_RATE[0]

    return run


CONFIGURATIONS: dict[str, Callable[[int, int, int], Rates]] = {
    "js reference 1.3.5": js_reference,
    "python memory:": python_memory,
    "python sqlite:": python_sqlite,
    "python sqlite NORMAL": python_sqlite_normal,
    "js 2 processes": js_two_processes,
    "py memory: 2 procs": _two_processes("memory:"),
    "py sqlite: 2 procs": _two_processes("sqlite:///{folder}/bench.db"),
    "py sqlite NORMAL 2 procs": _two_processes("sqlite:///{folder}/bench.db?synchronous=NORMAL"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--transfers", type=int, default=20000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="runs per configuration (median)")
    parser.add_argument("--one-process", action="store_true", help="skip the 2-process rows")
    args = parser.parse_args()
    names = [n for n in CONFIGURATIONS if not (args.one_process and "2 proc" in n)]
    rates: dict[str, list[Rates]] = {name: [] for name in names}
    for _ in range(args.rounds):  # interleaved, so machine noise hits every configuration alike
        for name in names:
            rates[name].append(CONFIGURATIONS[name](args.transfers, args.in_flight, args.warmup))
    print(
        f"fulfilled transfers/s, {args.transfers} transfers, {args.in_flight} in flight, "
        f"median of {args.rounds} rounds (wall-clock min-max); event loop: {loop_name()}"
    )
    print("2-process rows: per CPU s of the client process, compared with the JS 2-process row")
    header = f"{'configuration':<24} {'wall /s':>9} {'range':>13} {'vs JS':>6}"
    print(header + f" {'per CPU s':>10} {'vs JS':>6}")
    for name, values in rates.items():
        baseline = rates["js 2 processes" if "2 proc" in name else "js reference 1.3.5"]
        js_wall = statistics.median(r[0] for r in baseline)
        js_cpu = statistics.median(r[1] for r in baseline)
        wall = statistics.median(r[0] for r in values)
        cpu = statistics.median(r[1] for r in values)
        spread = f"{min(r[0] for r in values):,.0f}-{max(r[0] for r in values):,.0f}"
        print(
            f"{name:<24} {wall:>9,.0f} {spread:>13} {wall / js_wall:>5.2f}x"
            f" {cpu:>10,.0f} {cpu / js_cpu:>5.2f}x"
        )


if __name__ == "__main__":
    main()
