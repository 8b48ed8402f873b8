"""Resident memory of a listener and a client after many transfers on one connection.

Two fresh processes on loopback: a listener that fulfils every incoming transfer and a client
that keeps `--in-flight` transfers outstanding. At each checkpoint (by default after 10,000 and
100,000 transfers) the client lets everything in flight finish, both processes run the garbage
collector and report VmRSS from /proc/<pid>/status. Memory that grows with the number of
transfers (rather than with what is in flight or within the retention window) shows up as growth
between the checkpoints.

Configurations (listener + client):
  sqlite-stateless   durable listener (SQLite, synchronous=FULL) + stateless client
  sqlite-sqlite      durable listener + durable client (SQLite FULL each)
  memory-stateless   `memory:` listener + stateless client

Each transfer expires `--expiry` seconds after it is sent (default 30, as the other benches).
A `memory:` or stateless plugin keeps a settled transfer (packed, about 220 bytes; one it paid,
a 12-byte digest) until `settledRetention` seconds after its expiry (`--retention`, default the
plugin's), so at a checkpoint it holds about rate x (expiry + retention + pass interval) of
them once the run is longer than that window, and every transfer so far while it is shorter: a
short run with long expiries shows the cost per transfer, a long run with short ones the
plateau. Every transfer is checked: the listener's balance must equal the number fulfilled.
Prints a table; asserts nothing else.

    .venv/bin/python bench/memory.py [--config NAME ...] [--checkpoints 10000 100000]
                                     [--in-flight 100] [--expiry 30] [--retention SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import hashlib
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ilp_paychan import Plugin
from ilp_paychan.shell.event_loop import run as run_on_loop

SECRET = "bench_secret"
PREFIX = "bench.memory."
MAX_BALANCE = "1000000000000000"

#: name -> (listener store, client store); "{folder}" becomes a temporary directory, None means
#: a stateless client.
CONFIGURATIONS: dict[str, tuple[str, str | None]] = {
    "sqlite-stateless": ("sqlite:///{folder}/listener.db?synchronous=FULL", None),
    "sqlite-sqlite": (
        "sqlite:///{folder}/listener.db?synchronous=FULL",
        "sqlite:///{folder}/client.db?synchronous=FULL",
    ),
    "memory-stateless": ("memory:", None),
}


def rss_kib(pid: int | str = "self") -> int:
    """VmRSS of a process in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc status")


def _settled_rss() -> int:
    """RSS after a full collection, once the loop has run the callbacks it had queued."""
    gc.collect()
    return rss_kib()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _listener_process(
    store: str, fulfillment: str, extra: dict[str, Any], pipe: Connection
) -> None:
    """The listener: fulfils every incoming prepare; answers "measure" with (rss, balance)."""

    async def main() -> None:
        server = Plugin(
            {
                "listener": {"port": 0, "host": "127.0.0.1"},
                "incomingSecret": SECRET,
                "maxBalance": MAX_BALANCE,
                "prefix": PREFIX,
                "info": {"prefix": PREFIX, "currencyCode": "USD", "currencyScale": 9},
                "store": store,
                "requestTimeout": 30,
                **extra,
            }
        )
        await server.connect()
        tasks: set[asyncio.Task[Any]] = set()

        def fulfil(transfer: dict[str, Any]) -> None:
            task = asyncio.ensure_future(server.fulfill_condition(transfer["id"], fulfillment))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        server.on("incoming_prepare", fulfil)
        pipe.send(server.listener_port)
        commands: asyncio.Queue[str] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        loop.add_reader(pipe.fileno(), lambda: commands.put_nowait(pipe.recv()))
        while (command := await commands.get()) != "stop":
            assert command == "measure", command
            if tasks:
                await asyncio.wait(list(tasks), timeout=60)
            await asyncio.sleep(0.05)
            pipe.send((_settled_rss(), await server.get_balance()))
        loop.remove_reader(pipe.fileno())
        await server.disconnect()

    run_on_loop(main())


def _client_process(
    port: int,
    store: str | None,
    condition: str,
    checkpoints: list[int],
    in_flight: int,
    expiry: float,
    extra: dict[str, Any],
    pipe: Connection,
) -> None:
    """The client: pays up to each checkpoint, then reports ("checkpoint", n, rss, seconds) and
    waits for "go"; reports ("done", fulfilled) at the end."""

    async def main() -> None:
        options: dict[str, Any] = {
            "server": f"btp+ws://:{SECRET}@127.0.0.1:{port}",
            "requestTimeout": 30,
            **extra,
        }
        if store is not None:
            options.update(store=store, maxBalance=MAX_BALANCE)
        client = Plugin(options)
        await client.connect()
        to = client.get_peer_account()
        loop = asyncio.get_running_loop()
        waiting: dict[str, asyncio.Future[None]] = {}
        fulfilled = 0

        def on_fulfill(transfer: dict[str, Any], *_: Any) -> None:
            nonlocal fulfilled
            future = waiting.pop(transfer["id"], None)
            if future is not None and not future.done():
                fulfilled += 1
                future.set_result(None)

        client.on("outgoing_fulfill", on_fulfill)

        async def pay_one() -> None:
            transfer_id = str(uuid.uuid4())
            done: asyncio.Future[None] = loop.create_future()
            waiting[transfer_id] = done
            expires = datetime.now(UTC) + timedelta(seconds=expiry)
            await client.send_transfer(
                {
                    "id": transfer_id,
                    "to": to,
                    "amount": "1",
                    "executionCondition": condition,
                    "expiresAt": expires.isoformat(),
                }
            )
            await asyncio.wait_for(done, 60)

        sent = 0
        started = time.perf_counter()
        for checkpoint in checkpoints:
            remaining = checkpoint - sent

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await pay_one()

            await asyncio.gather(*(worker() for _ in range(min(in_flight, remaining))))
            sent = checkpoint
            await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            pipe.send(("checkpoint", checkpoint, _settled_rss(), elapsed))
            assert await loop.run_in_executor(None, pipe.recv) == "go"
        pipe.send(("done", fulfilled))
        await client.disconnect()

    run_on_loop(main())


Row = dict[str, Any]


def measure(
    config: str,
    checkpoints: list[int],
    in_flight: int,
    expiry: float,
    retention: float | None = None,
) -> list[Row]:
    """One run of `config`: a row per checkpoint with both processes' RSS in KiB."""
    listener_store, client_store = CONFIGURATIONS[config]
    extra = {} if retention is None else {"settledRetention": retention}
    preimage = os.urandom(32)
    condition = _b64url(hashlib.sha256(preimage).digest())
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters: nothing inherited
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        listener_end, listener_pipe = spawn.Pipe()
        listener = spawn.Process(
            target=_listener_process,
            args=(
                listener_store.replace("{folder}", folder),
                _b64url(preimage),
                extra,
                listener_pipe,
            ),
        )
        listener.start()
        client: Any = None
        try:
            if not listener_end.poll(60):
                raise RuntimeError("the listener did not start")
            port = listener_end.recv()
            client_end, client_pipe = spawn.Pipe()
            client = spawn.Process(
                target=_client_process,
                args=(
                    port,
                    None if client_store is None else client_store.replace("{folder}", folder),
                    condition,
                    checkpoints,
                    in_flight,
                    expiry,
                    extra,
                    client_pipe,
                ),
            )
            client.start()
            while True:
                if not client_end.poll(900):
                    raise RuntimeError("the client stopped reporting")
                message = client_end.recv()
                if message[0] == "done":
                    if message[1] != checkpoints[-1]:
                        raise RuntimeError(f"only {message[1]} transfers were fulfilled")
                    break
                _, count, client_rss, seconds = message
                listener_end.send("measure")
                listener_rss, balance = listener_end.recv()
                if int(balance) != count:
                    raise RuntimeError(f"listener balance {balance} after {count} transfers")
                rows.append(
                    {
                        "transfers": count,
                        "seconds": seconds,
                        "listener_kib": listener_rss,
                        "client_kib": client_rss,
                    }
                )
                client_end.send("go")
            client.join(60)
        finally:
            listener_end.send("stop")
            listener.join(60)
            for process in (listener, client):
                if process is not None and process.is_alive():
                    process.terminate()
    return rows


def _growth(first: int, last: int) -> str:
    return f"{(last - first) * 100 / first:+.1f} %"


def report(config: str, rows: list[Row], out: Callable[[str], None] = print) -> None:
    """One block per configuration: RSS per checkpoint, then growth first -> last."""
    out(f"{config}:")
    for row in rows:
        out(
            f"  {row['transfers']:>8,} transfers ({row['seconds']:6.1f} s): "
            f"listener {row['listener_kib'] / 1024:6.1f} MB, "
            f"client {row['client_kib'] / 1024:6.1f} MB"
        )
    first, last = rows[0], rows[-1]
    out(
        f"  growth {first['transfers']:,} -> {last['transfers']:,}: listener "
        f"{_growth(first['listener_kib'], last['listener_kib'])}, client "
        f"{_growth(first['client_kib'], last['client_kib'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", action="append", choices=sorted(CONFIGURATIONS), help="repeatable; all"
    )
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--expiry", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument(
        "--retention", type=float, help="settledRetention of both plugins (default: theirs)"
    )
    args = parser.parse_args()
    checkpoints = sorted(set(args.checkpoints))
    if not checkpoints or checkpoints[0] <= 0:
        parser.error("checkpoints must be positive")
    retention = "default" if args.retention is None else f"{args.retention:g} s"
    print(
        f"python {sys.version.split()[0]}, {args.in_flight} in flight, "
        f"transfers expire after {args.expiry:g} s, settledRetention {retention}"
    )
    for config in args.config or list(CONFIGURATIONS):
        rows = measure(config, checkpoints, args.in_flight, args.expiry, args.retention)
        report(config, rows)


if __name__ == "__main__":
    main()
