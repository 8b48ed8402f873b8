"""Several listener processes on one durable store, each with a client process, all at once.

What it answers: do processes sharing one PostgreSQL (or SQLite) store scale, or do they queue
behind each other? K pairs run at the same time, each a listener (bench/transfer_peer.py, on the
store under test) and a stateless client keeping `in flight` transfers of 1 outstanding, exactly
as in bench/transfers.py. The listeners share the store: with `--keys distinct` (the default)
each keeps its own TransferLog key (separate peers, as a connector's processes would), with
`--keys same` all use one key, so every transfer of every process locks the same log row.

For each K it reports the aggregate rate (the sum of the pairs' rates, each over its own
measured window), the slowest pair's rate, p50/p99 latency over all transfers, CPU µs per
transfer of the listeners and clients, the store's commits per transfer, and for a local
PostgreSQL the server's CPU µs per transfer (all `postgres` processes of this machine, from
/proc, between the moment every client finished its warm-up and the moment every client was
done: it includes other users of the server, if any). Every transfer is checked as in
bench/transfers.py: both sides count them, the same ids on both sides, balances as expected.
Values of K run round-robin, `--reps` times; the table gives medians.

    .venv/bin/python bench/shared_store.py [--store postgres|sqlite] [--processes 1,2,4]
        [--keys distinct|same] [--n 5000] [--in-flight 100] [--warmup 1000] [--reps 3]

PostgreSQL from ILP_PAYCHAN_BENCH_POSTGRES, else postgresql://postgres@127.0.0.1:5432/test, in a
fresh schema per run (dropped afterwards). Prints a markdown table; `--append` adds it to
bench/RESULTS.md under "Shared store".

Run as `shared_store.py peer ROLE KEY ARGS...` it is one listener with TransferLog key KEY (the
peer script with the `storeKey` option added), which is how the driver starts its listeners.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import _harness
from _harness import ROOT, condition_pair

HERE = Path(__file__).resolve()
HEADING = "Shared store"
INTRODUCTION = """\
`bench/shared_store.py` — K listener processes on one durable store, each with its own stateless
client process, all running at once (100 transfers in flight per pair unless said otherwise);
the workload of `bench/transfers.py`. Aggregate rate is the sum of the pairs' rates; latency is
over all transfers; CPU is µs per transfer of each listener and client process, and of the
local PostgreSQL server's processes (whole machine, so it includes other users of that server).
`distinct` keys: each listener its own TransferLog key; `same`: one key, one log row for all."""


# -- one listener with a store key (run by the driver as a child) ---------------------------------


def run_peer(role: str, key: str, argv: list[str]) -> None:
    """bench/transfer_peer.py's `role`, its Plugin given `storeKey` = key."""
    sys.path.insert(0, str(HERE.parent))
    import transfer_peer  # the peer script itself, unchanged

    from ilp_paychan import Plugin

    class KeyedPlugin(Plugin):
        def __init__(self, options: dict[str, Any], *rest: Any, **named: Any) -> None:
            if options.get("store"):
                options = {**options, "storeKey": key}
            super().__init__(options, *rest, **named)

    setattr(transfer_peer, "Plugin", KeyedPlugin)  # noqa: B010 - the script's own name
    sys.argv = [str(HERE), role, *argv]
    transfer_peer.main()


# -- the driver ------------------------------------------------------------------------------------


class Child:
    """A peer process speaking transfer_peer's JSON lines; always ended."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name

    @classmethod
    async def start(cls, argv: list[str], name: str) -> Child:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "src"), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
        return cls(process, name)

    async def read(self, seconds: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), seconds)
        if not line:
            raise RuntimeError(f"{self.name} exited ({await self.process.wait()})")
        message: dict[str, Any] = json.loads(line)
        return message

    def stop(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(ConnectionError, RuntimeError):
            self.process.stdin.write(b"stop\n")

    async def finish(self) -> None:
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.kill()
            await self.process.wait()

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by this machine's live `postgres` processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if "(postgres)" not in stat:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


async def run_once(args: argparse.Namespace, processes: int, url: str) -> dict[str, Any]:
    """K pairs at once; their reports and the checks' problems."""
    total = args.warmup + args.n
    children: list[Child] = []
    problems: list[str] = []
    keys = [f"pair{i}" if args.keys == "distinct" else "" for i in range(processes)]
    pairs = [condition_pair() for _ in range(processes)]
    timeout = 120 + total * 0.005 * processes
    listeners: list[dict[str, Any]] = []
    clients: list[dict[str, Any]] = []
    pg_cpu = None
    try:
        ports = []
        for i in range(processes):
            listener = await Child.start(
                [
                    str(HERE),
                    "peer",
                    "listener",
                    keys[i],
                    f"--store={url}",
                    f"--fulfillment={pairs[i][1]}",
                    f"--warmup={args.warmup}",
                    f"--total={total}",
                ],
                f"listener {i}",
            )
            children.append(listener)
            ports.append((await listener.read(60))["port"])
        client_children = []
        for i in range(processes):
            client = await Child.start(
                [
                    str(ROOT / "bench" / "transfer_peer.py"),
                    "client",
                    f"--port={ports[i]}",
                    f"--condition={pairs[i][0]}",
                    f"--warmup={args.warmup}",
                    f"--total={total}",
                    f"--in-flight={args.in_flight}",
                ],
                f"client {i}",
            )
            children.append(client)
            client_children.append(client)
        for client in client_children:
            if "warm" not in await client.read(timeout):
                raise RuntimeError(f"{client.name} reported before its warm-up")
        started = postgres_cpu_seconds()
        for client in client_children:
            clients.append(await client.read(timeout))
        pg_cpu = postgres_cpu_seconds() - started
        for listener in children[:processes]:
            listener.stop()
            listeners.append(await listener.read(90))
        for client in client_children:
            client.stop()
        for child in children:
            await child.finish()
    except Exception as failure:
        problems.append(f"{type(failure).__name__}: {failure}")
    finally:
        for child in children:
            child.kill()
    if not problems:
        expected = total * (processes if args.keys == "same" else 1)
        for i, (served, sent) in enumerate(zip(listeners, clients, strict=True)):
            for role, report in (("listener", served), ("client", sent)):
                if report.get("fulfilled") != total or report.get("failed") != 0:
                    problems.append(f"pair {i} {role}: {report.get('fulfilled')} of {total}")
            if served.get("digest") != sent.get("digest"):
                problems.append(f"pair {i}: the two sides fulfilled different ids")
            if str(served.get("balance")) != str(expected):
                problems.append(f"pair {i}: listener balance {served.get('balance')}")
            # A stateless client's balance is its listener's, read when the client is done: with
            # one key for all, other pairs may still be adding to it then.
            if args.keys == "distinct" and str(sent.get("balance")) != str(-total):
                problems.append(f"pair {i}: client balance {sent.get('balance')}")
    return {
        "processes": processes,
        "listeners": listeners,
        "clients": clients,
        "pg_cpu": pg_cpu,
        "problems": problems,
    }


def summarise(run: dict[str, Any], n: int, measure_server: bool) -> dict[str, float] | None:
    """One run's figures (None when it failed its checks)."""
    if run["problems"]:
        return None
    clients, listeners = run["clients"], run["listeners"]
    rates = [n / client["wall_s"] for client in clients]
    latencies = [client["latencies_ms"] for client in clients]
    count = n * len(clients)
    commits = [listener.get("commits") for listener in listeners]
    return {
        "rate": sum(rates),
        "slowest": min(rates),
        "p50": statistics.median(latency["p50"] for latency in latencies),
        "p99": max(latency["p99"] for latency in latencies),
        "cpu_l": statistics.mean(listener["cpu_s"] / n * 1e6 for listener in listeners),
        "cpu_c": statistics.mean(client["cpu_s"] / n * 1e6 for client in clients),
        "commits": (
            sum(commits) / ((n + 0.0) * len(listeners)) if None not in commits else float("nan")
        ),
        "server": run["pg_cpu"] / count * 1e6 if measure_server else float("nan"),
    }


def _med(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def table(results: dict[int, list[dict[str, float] | None]], args: argparse.Namespace) -> list[str]:
    lines = [
        "| store | keys | processes (pairs) | transfers/s, all pairs median (min–max) "
        "| slowest pair /s | latency ms p50 / p99 | CPU µs/transfer listener + client "
        "| server CPU µs/transfer | commits per transfer |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for processes, rows in results.items():
        good = [row for row in rows if row is not None]
        failed = len(rows) - len(good)
        label = f"{processes}" + (f" ({failed} FAILED)" if failed else "")
        if not good:
            lines.append(f"| {args.store} | {args.keys} | {label} | – | – | – | – | – | – |")
            continue
        rates = [row["rate"] for row in good]
        lines.append(
            f"| {args.store} | {args.keys} | {label} "
            f"| {_med(good, 'rate'):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) "
            f"| {_med(good, 'slowest'):,.0f} "
            f"| {_med(good, 'p50'):.2f} / {_med(good, 'p99'):.2f} "
            f"| {_med(good, 'cpu_l'):.0f} + {_med(good, 'cpu_c'):.0f} "
            f"| {_med(good, 'server'):.0f} "
            f"| {_med(good, 'commits'):.3f} |"
        )
    return lines


def _numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "peer":
        run_peer(sys.argv[2], sys.argv[3], sys.argv[4:])
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--processes", type=_numbers, default=[1, 2, 4])
    parser.add_argument("--keys", choices=["distinct", "same"], default="distinct")
    parser.add_argument("--n", type=int, default=5000, help="measured transfers per pair")
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--append", action="store_true", help="add the table to RESULTS.md")
    args = parser.parse_args()
    base = _harness.postgres_base() if args.store == "postgres" else None
    if args.store == "postgres" and base is None:
        print("no PostgreSQL server answered", file=sys.stderr)
        return 2
    about = _harness.machine()
    workdir = Path(tempfile.mkdtemp(prefix="ilp-shared-store-"))
    results: dict[int, list[dict[str, float] | None]] = {k: [] for k in args.processes}
    failed = False
    try:
        for rep in range(args.reps):
            for processes in args.processes:
                schema = f"bench_{uuid.uuid4().hex[:12]}"
                if base is not None:
                    url = _harness.with_schema(base, schema)
                else:
                    url = f"sqlite:///{workdir}/{schema}.db"
                try:
                    run = asyncio.run(run_once(args, processes, url))
                finally:
                    if base is not None:
                        with contextlib.suppress(Exception):
                            _harness.drop_schema(base, schema)
                summary = summarise(run, args.n, base is not None)
                results[processes].append(summary)
                status = "; ".join(run["problems"]) or "ok"
                rate = "–" if summary is None else f"{summary['rate']:,.0f}/s"
                print(f"  rep {rep + 1}, {processes} pair(s): {rate} {status}", file=sys.stderr)
                failed = failed or bool(run["problems"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    about["load_end"] = _harness.load_average()
    heading = (
        f"{about['date']}, commit {about['commit']}: {about['nproc']} × {about['cpu']}, "
        f"load average {about['load_start']} at start, {about['load_end']} at end; "
        f"N {args.n:,} per pair after {args.warmup:,}, {args.in_flight} in flight, "
        f"{args.reps} repetition(s)."
    )
    lines = table(results, args)
    print(heading)
    print("\n".join(lines))
    if args.append and not failed:
        command = "`.venv/bin/python bench/shared_store.py " + " ".join(sys.argv[1:]) + "`"
        entry = "\n".join([f"### {about['date']}", "", heading, "", command, "", *lines])
        _harness.append_to_section(HEADING, entry, INTRODUCTION)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
