"""Ledger throughput: prepare+fulfill pairs per second on each store, 1 and 4 processes.

Every process runs `--in-flight` transfers at a time (a plugin has many in flight; this is what
lets the SQLite writer commit a whole batch with one fsync) on one TransferLog key shared by all
processes (the worst case: every operation contends for the same log). For comparison, the same
loop runs on the JavaScript reference's TransferLog (in-process memory with write-behind to an
in-memory object store, so not durable at all) from the pinned package in tests/interop/js.

PostgreSQL: the server in ILP_PAYCHAN_BENCH_POSTGRES, else postgresql://postgres@127.0.0.1:5432/test;
the tables live in a fresh schema that is dropped afterwards. Skipped when no server answers.

Usage:  .venv/bin/python bench/ledger.py [--pairs 4000] [--in-flight 64] [--no-js]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _harness import drop_schema, postgres_base, with_schema

from ilp_paychan.ledger import open_backend

REPO = Path(__file__).resolve().parent.parent
JS_MODULES = REPO / "tests" / "interop" / "js" / "node_modules"

JS_LOOP = r"""
const backend = require('ilp-plugin-payment-channel-framework/src/util/backend.js')
const ObjStore = require('ilp-plugin-payment-channel-framework/src/model/in-memory-store.js')
const pairs = Number(process.argv[1]), inFlight = Number(process.argv[2])
async function main () {
  const log = backend(new ObjStore()).getTransferLog({ key: 'bench' })
  let next = 0
  async function lane () {
    while (next < pairs) {
      const n = next++
      const id = '00000000-0000-4000-8000-' + String(n).padStart(12, '0')
      await log.prepare({ id, amount: '1', executionCondition: 'c', expiresAt: 'x' }, n % 2 === 0)
      await log.fulfill(id, 'f')
    }
  }
  const start = process.hrtime.bigint()
  const cpu = process.cpuUsage()
  await Promise.all(Array.from({ length: inFlight }, lane))
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const used = process.cpuUsage(cpu)
  console.log(pairs / seconds, (used.user + used.system) / 1e6)
}
main()
"""


def transfer(worker: int, n: int) -> dict[str, Any]:
    return {
        "id": f"{worker:08x}-0000-4000-8000-{n:012d}",
        "amount": "1",
        "executionCondition": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
        "expiresAt": "2030-01-01T00:00:00.000Z",
    }


async def run_pairs(
    url: str, worker: int, pairs: int, in_flight: int, start: Any
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for `pairs` prepare+fulfill pairs."""
    backend = await open_backend(url)
    log = backend.get_transfer_log("bench")
    counter = iter(range(pairs))

    async def lane() -> None:
        for n in counter:
            body = transfer(worker, n)
            await log.prepare(body, n % 2 == 0)
            await log.fulfill(body["id"], "f")

    if start is not None:
        start.wait()
    began = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    elapsed = time.perf_counter() - began
    used = time.process_time() - cpu
    await backend.close()
    return elapsed, used


def _process(url: str, worker: int, pairs: int, in_flight: int, start: Any, out: Any) -> None:
    out.put(asyncio.run(run_pairs(url, worker, pairs, in_flight, start)))


def measure(url: str, processes: int, pairs: int, in_flight: int) -> tuple[float, float]:
    """(pairs per second over all processes from the common start to the last one done,
    client CPU microseconds per pair)."""
    if processes == 1:
        elapsed, used = asyncio.run(run_pairs(url, 0, pairs, in_flight, None))
        return pairs / elapsed, used / pairs * 1e6
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes + 1, timeout=120)
    out = context.Queue()
    children = [
        context.Process(target=_process, args=(url, n, pairs, in_flight, start, out))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    try:
        start.wait()
        began = time.perf_counter()
        used = 0.0
        for _ in children:
            used += _next_result(out, children)
        elapsed = time.perf_counter() - began
    finally:
        for child in children:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
    return processes * pairs / elapsed, used / (processes * pairs) * 1e6


def _next_result(out: Any, children: list[Any]) -> float:
    """The next child's CPU seconds; fails instead of hanging when a child died."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            _, used = out.get(timeout=1)
            return float(used)
        except queue.Empty:
            dead = [c.exitcode for c in children if c.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a benchmark process failed (exit codes {dead})") from None
    raise TimeoutError("benchmark processes did not finish within 10 minutes")


def js_reference(pairs: int, in_flight: int) -> tuple[float, float] | None:
    if shutil.which("node") is None or not JS_MODULES.exists():
        return None
    result = subprocess.run(
        ["node", "-e", JS_LOOP, str(pairs), str(in_flight)],
        env=dict(os.environ, NODE_PATH=str(JS_MODULES)),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rate, used = result.stdout.split()
    return float(rate), float(used) / pairs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4000, help="pairs per process")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--no-js", action="store_true")
    parser.add_argument("--only", default="", help="run only stores whose name contains this")
    args = parser.parse_args()

    rows: list[tuple[str, int, float, float]] = []
    workdir = Path(tempfile.mkdtemp(prefix="ilp-ledger-bench-"))
    pg = postgres_base()
    schemas: list[str] = []
    try:
        stores: list[tuple[str, str, tuple[int, ...]]] = [("memory", "memory:", (1,))]
        for mode in ("FULL", "NORMAL"):
            stores.append(
                (
                    f"sqlite synchronous={mode}",
                    f"sqlite:///{workdir}/{mode}.db?synchronous={mode}",
                    (1, 4),
                )
            )
        if pg is not None:
            for processes in (1, 4):
                schema = f"bench_{uuid.uuid4().hex[:12]}"
                schemas.append(schema)
                stores.append(("postgresql", with_schema(pg, schema), (processes,)))
        for name, url, counts in stores:
            if args.only not in name:
                continue
            for processes in counts:
                if url.startswith("sqlite"):
                    url = url.replace(".db?", f"-{processes}.db?")
                rate, cpu = measure(url, processes, args.pairs, args.in_flight)
                rows.append((name, processes, rate, cpu))
                print(
                    f"  {name:28} {processes} proc {rate:9.0f} pairs/s {cpu:7.1f} us/pair",
                    flush=True,
                )
        js = None if args.no_js else js_reference(args.pairs, args.in_flight)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if pg is not None:
            for schema in schemas:
                drop_schema(pg, schema)

    print()
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(
        f"{args.pairs} prepare+fulfill pairs per process, {args.in_flight} in flight per process;"
    )
    print("one TransferLog key shared by all processes; CPU = client processes only")
    print()
    print("| store | processes | pairs/s (wall) | client CPU µs/pair | CPU vs JS reference |")
    print("|---|---:|---:|---:|---:|")
    for name, processes, rate, cpu in rows:
        ratio = "" if js is None else f"{js[1] / cpu:.2f}"
        print(f"| {name} | {processes} | {rate:,.0f} | {cpu:.1f} | {ratio} |")
    if js is not None:
        print(
            f"| JS reference TransferLog (memory, write-behind) | 1 | {js[0]:,.0f} "
            f"| {js[1]:.1f} | 1.00 |"
        )
    if pg is None:
        print("(PostgreSQL skipped: no server answered)")


if __name__ == "__main__":
    sys.exit(main())
