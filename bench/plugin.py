"""Fulfilled transfers per second between two Python plugins over loopback WebSockets.

Mirrors bench/js/plugin_bench.js: a stateful listener (the store under test) and a stateless
client in one process and one event loop; the client pays, the listener fulfils every transfer in
its `incoming_prepare` listener, and a transfer counts when the client sees `outgoing_fulfill`.
`--in-flight` transfers are outstanding at any time. One function per configuration returns
transfers/s; `main` prints a table. Asserts nothing. The "2 processes" configurations put the
listener in a child process, so each plugin has a core of its own.

    .venv/bin/python bench/plugin.py [--transfers 20000] [--in-flight 100] [--warmup 1000]

Runs on asyncio's loop, or on uvloop with `ILP_PAYCHAN_LOOP=uvloop` (as the CLI); the loop
used is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import multiprocessing
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from ilp_paychan import Plugin
from ilp_paychan.shell.event_loop import loop_name
from ilp_paychan.shell.event_loop import run as run_on_loop

SECRET = "bench_secret"
PREFIX = "bench.py."


#: Transfers per CPU-second of this process in the last run (both plugins when in one process):
#: steadier than wall-clock rates on a shared machine.
LAST_CPU_RATE = [0.0]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _server_options(store: str) -> dict[str, Any]:
    return {
        "listener": {"port": 0, "host": "127.0.0.1"},
        "incomingSecret": SECRET,
        "maxBalance": "1000000000000000",
        "prefix": PREFIX,
        "info": {"prefix": PREFIX, "currencyCode": "USD", "currencyScale": 9, "connectors": []},
        "store": store,
        "requestTimeout": 30,
    }


async def _start_server(store: str, fulfillment: str) -> tuple[Plugin, set[asyncio.Task[Any]]]:
    """The listener, fulfilling every incoming transfer as it arrives."""
    server = Plugin(_server_options(store))
    await server.connect()
    tasks: set[asyncio.Task[Any]] = set()

    def fulfil(transfer: dict[str, Any]) -> None:
        task = asyncio.ensure_future(server.fulfill_condition(transfer["id"], fulfillment))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server.on("incoming_prepare", fulfil)
    return server, tasks


async def _drive(port: int, condition: str, transfers: int, in_flight: int, warmup: int) -> float:
    """The client: keeps `in_flight` transfers outstanding; returns fulfilled transfers/s."""
    client = Plugin({"server": f"btp+ws://:{SECRET}@127.0.0.1:{port}", "requestTimeout": 30})
    await client.connect()
    tasks: set[asyncio.Task[Any]] = set()
    done = 0
    slots = asyncio.Semaphore(in_flight)
    finished = asyncio.Event()
    total = warmup + transfers
    started_at = time.perf_counter()
    cpu_at = time.process_time()

    def fulfilled(*_: Any) -> None:
        nonlocal done, started_at, cpu_at
        done += 1
        slots.release()
        if done == warmup:
            started_at = time.perf_counter()
            cpu_at = time.process_time()
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
    LAST_CPU_RATE[0] = transfers / max(time.process_time() - cpu_at, 1e-9)
    await client.disconnect()
    return transfers / elapsed


def _pair() -> tuple[str, str]:
    preimage = os.urandom(32)
    return _b64url(hashlib.sha256(preimage).digest()), _b64url(preimage)


async def _run(store: str, transfers: int, in_flight: int, warmup: int) -> float:
    condition, fulfillment = _pair()
    server, _ = await _start_server(store, fulfillment)
    assert server.listener_port is not None
    try:
        return await _drive(server.listener_port, condition, transfers, in_flight, warmup)
    finally:
        await server.disconnect()


def _server_process(store: str, fulfillment: str, pipe: Connection) -> None:
    async def main() -> None:
        server, _ = await _start_server(store, fulfillment)
        pipe.send(server.listener_port)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(pipe.fileno(), stop.set)
        await stop.wait()
        await server.disconnect()

    run_on_loop(main())


def _run_two_processes(store: str, transfers: int, in_flight: int, warmup: int) -> float:
    condition, fulfillment = _pair()
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_server_process, args=(store, fulfillment, child))
    process.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the server process did not start")
        port = parent.recv()
        return run_on_loop(_drive(port, condition, transfers, in_flight, warmup))
    finally:
        parent.send("stop")
        process.join(30)
        if process.is_alive():
            process.terminate()


def bench_memory(transfers: int = 20000, in_flight: int = 100, warmup: int = 1000) -> float:
    """Transfers/s, both plugins in one process, the listener on the `memory:` store."""
    return run_on_loop(_run("memory:", transfers, in_flight, warmup))


def bench_sqlite(transfers: int = 20000, in_flight: int = 100, warmup: int = 1000) -> float:
    """Transfers/s, both plugins in one process, the listener on an SQLite file."""
    with tempfile.TemporaryDirectory() as folder:
        return run_on_loop(_run(f"sqlite:///{folder}/bench.db", transfers, in_flight, warmup))


def bench_memory_two_processes(
    transfers: int = 20000, in_flight: int = 100, warmup: int = 1000
) -> float:
    """Transfers/s, listener (`memory:`) and client each in its own process."""
    return _run_two_processes("memory:", transfers, in_flight, warmup)


def bench_sqlite_two_processes(
    transfers: int = 20000, in_flight: int = 100, warmup: int = 1000
) -> float:
    """Transfers/s, listener (SQLite file) and client each in its own process."""
    with tempfile.TemporaryDirectory() as folder:
        return _run_two_processes(f"sqlite:///{folder}/bench.db", transfers, in_flight, warmup)


def bench_sqlite_normal(transfers: int = 20000, in_flight: int = 100, warmup: int = 1000) -> float:
    """Transfers/s, one process, SQLite with `synchronous=NORMAL` (no fsync per commit)."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db?synchronous=NORMAL"
        return run_on_loop(_run(url, transfers, in_flight, warmup))


def bench_sqlite_normal_two_processes(
    transfers: int = 20000, in_flight: int = 100, warmup: int = 1000
) -> float:
    """Transfers/s, two processes, SQLite with `synchronous=NORMAL`."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db?synchronous=NORMAL"
        return _run_two_processes(url, transfers, in_flight, warmup)


CONFIGURATIONS = {
    "python memory: 1 process": bench_memory,
    "python sqlite: 1 process": bench_sqlite,
    "python sqlite NORMAL 1 proc": bench_sqlite_normal,
    "python memory: 2 processes": bench_memory_two_processes,
    "python sqlite: 2 processes": bench_sqlite_two_processes,
    "python sqlite NORMAL 2 procs": bench_sqlite_normal_two_processes,
}


def bench_js_reference(
    transfers: int = 20000, in_flight: int = 100, warmup: int = 1000, processes: int = 1
) -> tuple[float, float]:
    """(transfers/s, per CPU-s) of the JS reference on this workload (bench/js/plugin_bench.js)."""
    from plugin_vs_js import js_reference  # bench/ is on sys.path when this script runs

    return js_reference(transfers, in_flight, warmup, processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--transfers", type=int, default=20000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--only", choices=sorted(CONFIGURATIONS), action="append")
    parser.add_argument("--no-js", action="store_true", help="skip the JS reference comparison")
    args = parser.parse_args()
    measured: dict[str, tuple[float, float]] = {}
    print(f"event loop: {loop_name()}")
    print(f"{'configuration':<28} {'transfers/s':>12} {'per CPU-s of this process':>26}")
    for name, run in CONFIGURATIONS.items():
        if args.only and name not in args.only:
            continue
        rate = run(args.transfers, args.in_flight, args.warmup)
        print(f"{name:<28} {rate:>12,.0f} {LAST_CPU_RATE[0]:>26,.0f}")
        measured[name] = (rate, LAST_CPU_RATE[0])
    print(f"({args.transfers} transfers after {args.warmup} warm-up, {args.in_flight} in flight)")
    if args.no_js or not measured:
        return
    js = {n: bench_js_reference(args.transfers, args.in_flight, args.warmup, n) for n in (1, 2)}
    print(f"\n{'vs JS reference 1.3.5':<28} {'transfers/s':>12}  ratio  per CPU-s ratio")
    rows = {
        "js reference 1 process": js[1],
        "js reference 2 processes": js[2],
        **measured,
    }
    for name, (rate, cpu) in rows.items():
        js_rate, js_cpu = js[2 if "2 proc" in name else 1]
        ratios = f"{rate / js_rate:>6.2f} {cpu:>10,.0f} {cpu / js_cpu:>5.2f}"
        print(f"{name:<28} {rate:>12,.0f} {ratios}")
    print("(2-process rows are compared with the JS reference in 2 processes, client CPU only)")


if __name__ == "__main__":
    main()
