"""`send_data` round trips per second over BTP 2.0: our BtpPlugin and ilp-plugin-btp 1.5.0.

Every pairing is a listener process and a client process on 127.0.0.1 (bench/btp_v2_peer.py for
ours, bench/js/btp_v2_peer.js for ilp-plugin-btp as pinned in tests/interop/js_connector); the
listener's data handler fulfils every Prepare with sha256(data), the client keeps `in flight`
Prepares of 1 outstanding, each with distinct data and the condition sha256(sha256(data)).
Pairings:

- `js`: ilp-plugin-btp listener <- ilp-plugin-btp client (the baseline of the ratios)
- `py`: our listener <- our client
- `py-js`: ilp-plugin-btp listener <- our client
- `js-py`: our listener <- ilp-plugin-btp client
- `js-pair`: both ilp-plugin-btp plugins in one node process (its script's `pair` mode)
- `full`: our listener with the durable trustline on SQLite (synchronous=FULL) <- our client;
  skipped, with a note, when this checkout's BtpPlugin has no trustline; the listener's balance
  must be every Prepare of the run, nothing held

After a warm-up, N round trips are measured: the rate is N over the client's wall time; CPU is
µs per round trip of each process over the same window (the client's own count; the listener's
from /proc between the client's "warm" and result lines). Every Prepare must be fulfilled.
Pairings interleave round-robin within each repetition, so machine noise hits them alike; the
table gives the median (min–max) of the repetitions and ratios to `js`.

    .venv/bin/python bench/btp_v2.py [--n 20000] [--in-flight 100] [--reps 3] [--warmup 2000]
        [--configs js,py,py-js,js-py,js-pair,full] [--no-append] [--json FILE] [--src PATH]

Results are appended to bench/RESULTS.md under "## ILPv4 / BTP 2.0" unless --no-append.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _harness
from _harness import ROOT
from _harness import fmt as _fmt
from _harness import median as _median
from _harness import ratio as _ratio

PY_PEER = ROOT / "bench" / "btp_v2_peer.py"
JS_PEER = ROOT / "bench" / "js" / "btp_v2_peer.js"
SECRET = "bench_v2"
#: The library our peer processes import (--src: another checkout's src/, for an A/B check).
SOURCE = {"src": ROOT / "src"}
HEADING = "ILPv4 / BTP 2.0"
INTRODUCTION = """\
`bench/btp_v2.py` — `send_data` round trips per second over BTP 2.0 between a listener process
and a client process on 127.0.0.1: our `BtpPlugin` and ilp-plugin-btp 1.5.0 (pinned in
`tests/interop/js_connector`) in the same run, each pairing of the two, ilp-plugin-btp's two
plugins in one process, and ours through the durable trustline (SQLite FULL). The listener
fulfils every Prepare with sha256(data); the client keeps *in flight* Prepares of 1
outstanding. The rate counts N round trips after a warm-up; CPU is µs per round trip of each
process over the measured window (listener + client). Pairings interleave round-robin; median
(min–max) of the repetitions; ×JS is the ratio to ilp-plugin-btp↔ilp-plugin-btp in the same
run (higher is better for rates, lower for CPU)."""


@dataclass(frozen=True)
class Config:
    """One pairing: which implementation listens and which sends (`pair`: one JS process)."""

    name: str
    label: str
    listener: str  # "py", "js", "py-full" or "" (pair)
    client: str  # "py", "js" or "js-pair"


CONFIGS = [
    Config("js", "ilp-plugin-btp ↔ ilp-plugin-btp", "js", "js"),
    Config("py", "BtpPlugin ↔ BtpPlugin", "py", "py"),
    Config("py-js", "JS listener ← our client", "js", "py"),
    Config("js-py", "our listener ← JS client", "py", "js"),
    Config("js-pair", "ilp-plugin-btp pair, one process", "", "js-pair"),
    Config("full", "BtpPlugin ↔ BtpPlugin, trustline SQLite FULL", "py-full", "py"),
]
BY_NAME = {config.name: config for config in CONFIGS}


@dataclass
class Run:
    """One measured run of one pairing."""

    config: Config
    n: int
    in_flight: int
    warmup: int = 0
    client: dict[str, Any] = field(default_factory=dict)
    listener_cpu_s: float | None = None
    #: The listener store's write transactions and operations over warm-up + N (trustline).
    commits: int | None = None
    operations: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        value = self.client.get("rate")
        return float(value) if value and not self.problems else None

    def cpu_us(self, which: str) -> float | None:
        seconds = self.client.get("cpu_s") if which == "client" else self.listener_cpu_s
        return None if seconds is None or self.problems else seconds / self.n * 1e6


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process so far, from /proc; None where there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Process(_harness.PeerProcess):
    """A peer process: JSON lines out; its stdin closing ends it; always ended."""

    @classmethod
    async def start(cls, argv: list[str], role: str, folder: Path) -> _harness.PeerProcess:
        """Start a peer; ours import this checkout's src/ first."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(SOURCE["src"]), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        )
        return await cls.spawn(argv, role, folder, env)

    async def finish(self, seconds: float = 10.0) -> None:
        """Close stdin, wait (bounded) for the end, kill if it lingers."""
        if self.process.stdin is not None:
            with contextlib.suppress(Exception):
                self.process.stdin.close()
        await super().finish(seconds)


def _argv(implementation: str, role: str, options: dict[str, Any]) -> list[str]:
    if implementation == "py":
        argv = [sys.executable, str(PY_PEER), role]
    else:
        argv = [_harness.node_binary(), str(JS_PEER), role]
    argv += [f"--{name}={value}" for name, value in options.items() if value is not None]
    return argv


def run_timeout(total: int) -> float:
    """A generous bound for one run (a hang fails the run, it is no measurement)."""
    return 60 + total * 0.005


async def run_once(config: Config, n: int, in_flight: int, warmup: int, workdir: Path) -> Run:
    """Start the pair, drive one run, collect the client's report and the listener's CPU."""
    run = Run(config, n, in_flight, warmup)
    counts = {"count": n, "in-flight": in_flight, "warmup": warmup}
    folder = Path(tempfile.mkdtemp(dir=workdir))
    processes: list[Process] = []
    limit = run_timeout(n + warmup)
    try:
        listener = None
        if config.client == "js-pair":
            client = await Process.start(_argv("js", "pair", counts), "pair", folder)
            processes.append(client)
        else:
            implementation = "py" if config.listener.startswith("py") else "js"
            store = None
            if config.listener == "py-full":
                store = f"sqlite:///{folder / 'listener.sqlite'}?synchronous=FULL"
            listener = await Process.start(
                _argv(implementation, "listener", {"secret": SECRET, "store": store}),
                "listener",
                folder,
            )
            processes.append(listener)
            port = (await listener.read(30))["port"]
            url = f"btp+ws://:{SECRET}@127.0.0.1:{port}"
            client = await Process.start(
                _argv(config.client, "client", {"url": url, **counts}), "client", folder
            )
            processes.append(client)
        first = await client.read(limit)
        if not first.get("warm"):
            raise RuntimeError(f"expected the warm-up line, got {first}")
        before = proc_cpu_seconds(listener.process.pid) if listener else None
        run.client = await client.read(limit)
        after = proc_cpu_seconds(listener.process.pid) if listener else None
        if before is not None and after is not None:
            run.listener_cpu_s = after - before
        if run.client.get("failed"):
            run.problems.append(f"{run.client['failed']} of {n} Prepares not fulfilled")
        if listener is not None and config.listener == "py-full":
            await client.finish()
            assert listener.process.stdin is not None
            listener.process.stdin.close()
            report = await listener.read(30)
            balance = report["balance"]
            run.commits, run.operations = report.get("commits"), report.get("operations")
            if balance["balance"] != str(n + warmup) or balance["incomingPrepared"] != "0":
                run.problems.append(f"the trustline's balance is {balance}, not {n + warmup}")
    except (RuntimeError, OSError, ValueError, KeyError) as error:
        run.problems.append(str(error).strip()[:2000])
    finally:
        for process in reversed(processes):
            await process.finish()
        shutil.rmtree(folder, ignore_errors=True)
    return run


def trustline_available() -> str | None:
    """None when this checkout's BtpPlugin takes the durable trustline's options; else why not."""
    sys.path.insert(0, str(ROOT / "src"))
    from btp_v2_peer import trustline_options

    from ilp_paychan.v2.plugin import BtpPlugin

    try:
        plugin = BtpPlugin(
            {"listener": {"port": 0, "host": "127.0.0.1", "secret": "x"}}
            | trustline_options(f"sqlite:///{tempfile.gettempdir()}/ilp-btp-v2-probe.sqlite")
        )
    except Exception as error:  # an older checkout: the option is unknown
        return f"trustline pairing skipped: BtpPlugin refuses its options ({error})"
    if getattr(plugin, "accounting", None) is None:
        return "trustline pairing skipped: BtpPlugin takes the options but keeps no balance"
    return None


async def measure(args: argparse.Namespace, configs: list[Config], workdir: Path) -> list[Run]:
    """Every cell and repetition, round-robin over the pairings."""

    def status(run: Run) -> str:
        outcome = "FAILED: " + "; ".join(run.problems) if run.problems else "ok"
        return f"{_fmt(run.rate)}/s, load {_harness.load_average()} {outcome}"

    return await _harness.sweep(
        args.n,
        args.in_flight,
        args.reps,
        configs,
        lambda config, n, in_flight: run_once(config, n, in_flight, args.warmup, workdir),
        status,
    )


def _spread(values: list[float]) -> str:
    if not values:
        return "–"
    median = statistics.median(values)
    if len(values) == 1:
        return _fmt(median)
    return f"{_fmt(median)} ({_fmt(min(values))}–{_fmt(max(values))})"


def table(runs: list[Run]) -> list[str]:
    """One Markdown table: a row per (N, in flight, pairing)."""
    lines = [
        "| pairing | N | in flight | round trips/s median (min–max) | ×JS "
        "| CPU µs/round trip listener + client | CPU ×JS "
        "| listener commits (operations) per round trip |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    cells = sorted({(run.n, run.in_flight) for run in runs})
    for n, in_flight in cells:
        in_cell = [run for run in runs if (run.n, run.in_flight) == (n, in_flight)]
        summary: dict[str, dict[str, Any]] = {}
        for config in dict.fromkeys(run.config for run in in_cell):
            mine = [run for run in in_cell if run.config == config]
            rates = [run.rate for run in mine if run.rate is not None]
            listener = [c for c in (run.cpu_us("listener") for run in mine) if c is not None]
            client = [c for c in (run.cpu_us("client") for run in mine) if c is not None]
            both = [
                a + b
                for a, b in zip(
                    (run.cpu_us("listener") for run in mine),
                    (run.cpu_us("client") for run in mine),
                    strict=True,
                )
                if a is not None and b is not None
            ]
            if config.client == "js-pair":
                both = client
            per_commit = [
                (run.commits / (n + run.warmup), run.operations / (n + run.warmup))
                for run in mine
                if run.commits is not None and run.operations is not None and not run.problems
            ]
            summary[config.name] = {
                "config": config,
                "rates": rates,
                "rate": _median(rates),
                "listener": _median(listener),
                "client": _median(client),
                "cpu": _median(both),
                "failed": sum(1 for run in mine if run.problems),
                "store": (
                    f"{_median([c for c, _ in per_commit]):.3f} "
                    f"({_median([o for _, o in per_commit]):.2f})"
                    if per_commit
                    else "–"
                ),
            }
        base = summary.get("js", {})
        for row in summary.values():
            config = row["config"]
            if config.client == "js-pair":
                cpu = f"{_fmt(row['client'])} (one process)"
            else:
                cpu = f"{_fmt(row['listener'])} + {_fmt(row['client'])}"
            failed = f" ({row['failed']} failed)" if row["failed"] else ""
            lines.append(
                f"| {config.label}{failed} | {n:,} | {in_flight} | {_spread(row['rates'])} "
                f"| {_ratio(row['rate'], base.get('rate'))} | {cpu} "
                f"| {_ratio(row['cpu'], base.get('cpu'))} | {row['store']} |"
            )
    return lines


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=_harness.numbers, default=[20_000], help="round trips measured")
    parser.add_argument("--in-flight", type=_harness.numbers, default=[100])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument(
        "--configs",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=[config.name for config in CONFIGS],
    )
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument(
        "--src", type=Path, default=None, help="our peers import this src/ (nothing appended)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every run here")
    args = parser.parse_args(argv)
    unknown = [name for name in args.configs if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown --configs {unknown}; known: {', '.join(BY_NAME)}")
    return args


def _our_loop() -> str:
    """The event loop our peer processes run on (they inherit this environment)."""
    from ilp_paychan.shell.event_loop import loop_name

    return loop_name()


def _ensure_js_packages() -> None:
    """`npm ci` in tests/interop/js_connector unless its install is current."""
    _harness.tests_module("interop.connector").ensure_npm_project()


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    if args.src is not None:
        SOURCE["src"] = args.src.resolve()
        args.no_append = True
    configs = [BY_NAME[name] for name in args.configs]
    notes = []
    if any(config.name == "full" for config in configs):
        missing = trustline_available()
        if missing is not None:
            notes.append(missing)
            configs = [config for config in configs if config.name != "full"]
    if any(
        "js" in (config.listener, config.client) or config.client == "js-pair" for config in configs
    ):
        _harness.node_binary()
        _ensure_js_packages()
    about = _harness.machine()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks end children
    workdir = Path(tempfile.mkdtemp(prefix="ilp-btp-v2-bench-"))
    try:
        runs = asyncio.run(measure(args, configs, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    about["load_end"] = _harness.load_average()
    if args.json:
        _harness.write_runs(
            args.json,
            about,
            runs,
            lambda run: {
                "client": run.client,
                "listener_cpu_s": run.listener_cpu_s,
                "commits": run.commits,
                "operations": run.operations,
            },
        )
    lines = table(runs)
    failed = [run for run in runs if run.problems]
    title, heading = _harness.print_entry(
        about,
        f"Warm-up {args.warmup:,}, {args.reps} repetition(s). Our processes' event loop: "
        f"{_our_loop()}.",
        notes,
        lines,
    )
    for run in failed:
        print(f"FAILED {run.config.label} N={run.n}: {'; '.join(run.problems)}")
    if not (args.no_append or failed):
        _harness.append_entry(
            "bench/btp_v2.py",
            argv or sys.argv[1:],
            title,
            heading,
            notes,
            lines,
            HEADING,
            INTRODUCTION,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
