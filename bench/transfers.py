"""Fulfilled transfers between two plugin processes: ours and the JS reference, in one run.

Every configuration is a pair of OS processes on 127.0.0.1, a listener and a client
(bench/transfer_peer.py for ours, bench/js/transfer_peer.js for the reference 1.3.5 as pinned in
tests/interop/js); this script only starts them, collects their reports and checks them. The
client keeps `in flight` transfers of 1 outstanding (each worker sends one, waits for its
`outgoing_fulfill`, and goes again); the listener fulfils every prepare from its
`incoming_prepare` listener. After a warm-up, N transfers are measured:

- transfers/s: N over the client's wall-clock time from the warm-up's last fulfilled transfer to
  the run's last;
- latency p50/p99/max: per transfer, `send_transfer` called to `outgoing_fulfill` seen;
- CPU µs per transfer of each process over the same window (all of a process's threads);
- peak RSS (VmHWM) of each process;
- commits per transfer of each durable store (its write transactions over warm-up + N).

Every transfer is checked: both sides count warm-up + N fulfilled with none failed, the set of ids
fulfilled is the same on both sides (a digest), and the listener's balance is the total (the
client's its negation). Configurations run round-robin within each (N, in flight) cell, one
repetition at a time, so machine noise hits them alike; the table gives the median (min–max) of
the repetitions and ratios to JS↔JS of the same cell. With --profile, py-spy samples every
Python process for that many seconds once the warm-up is done and a summary by area follows.

An A/B run compares two versions in the same run: `--src PATH` gives another checkout's src/
folder (e.g. `git archive` of a commit, unpacked), `--b-env NAME=VALUE` variables for the B side
(e.g. `ILP_PAYCHAN_LOOP=asyncio`); each Python configuration then runs on both, one after the
other within each repetition, and its B row follows its A row. Nothing is appended then.

    .venv/bin/python bench/transfers.py [--n 5000,20000] [--in-flight 1,10,100] [--reps 3]
        [--configs js,memory,...] [--warmup 1000] [--quick] [--no-append] [--json FILE]
        [--profile SECONDS [--profile-dir DIR]] [--src PATH] [--b-env NAME=VALUE ...]

PostgreSQL: ILP_PAYCHAN_BENCH_POSTGRES, else postgresql://postgres@127.0.0.1:5432/test, in a
fresh schema per run (dropped afterwards); its configuration is skipped, with a note, when no
server answers. The results are appended to bench/RESULTS.md under "## Transfers" unless
--no-append, --quick or --profile (py-spy stops each process to sample it, so rates measured
while it runs are not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _harness
from _harness import ROOT, condition_pair
from _harness import fmt as _fmt
from _harness import median as _median
from _harness import ratio as _ratio

PY_PEER = ROOT / "bench" / "transfer_peer.py"
JS_PEER = ROOT / "bench" / "js" / "transfer_peer.js"
HEADING = "Transfers"
INTRODUCTION = """\
`bench/transfers.py` — fulfilled transfers between a listener process and a client process on
127.0.0.1, ours and the JS reference 1.3.5 (`tests/interop/js`) in the same run: JS↔JS (the
reference's stateful listener on an in-memory object store, stateless client), Python↔Python
with the listener on each store (client stateless, or with its own SQLite FULL store), and both
mixed pairings. The client keeps *in flight* transfers of 1 outstanding; the listener fulfils
each from its `incoming_prepare` listener. Rates count N transfers after a warm-up; latency is
`send_transfer` to `outgoing_fulfill`; CPU is µs per transfer of each process (all threads) over
the measured window; peak RSS is VmHWM; commits are the durable stores' write transactions per
transfer (in brackets, the store writes they carried). Every transfer is checked on both sides.
Configurations interleave round-robin; median (min–max) of the repetitions; ×JS is the ratio to
JS↔JS in the same cell (higher is better for rates, lower for latency and CPU).

Reproduce: `.venv/bin/python bench/transfers.py` (`--n 5000,20000`, `--in-flight 1,10,100`,
`--reps 3`, `--configs js,memory,full,normal,postgres,full-client,py-js,js-py`, `--warmup 1000`,
`--quick`, `--no-append`, `--json FILE`, `--profile SECONDS`; for an A/B run `--src PATH` (another
checkout's src/) and `--b-env NAME=VALUE`, which add a B row, interleaved, after each Python
configuration and append nothing); PostgreSQL from
`ILP_PAYCHAN_BENCH_POSTGRES`, else 127.0.0.1:5432 user postgres. Each run appends its entry
below; `bench/_profile.py` summarises a py-spy profile taken with `--profile`."""


@dataclass(frozen=True)
class Side:
    """One process of a pair: which implementation, and its store (None: stateless)."""

    implementation: str  # "py" or "js"
    store: str | None  # "memory", "sqlite-full", "sqlite-normal", "postgres", "js-memory"
    #: The library a Python side imports (this checkout's src/ when None) and environment
    #: variables set for it: what the B side of an A/B run (--src, --b-env) changes.
    src: Path | None = None
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Config:
    """A pairing under test."""

    name: str
    label: str
    listener: Side
    client: Side

    @property
    def needs_postgres(self) -> bool:
        return "postgres" in (self.listener.store, self.client.store)

    @property
    def needs_node(self) -> bool:
        return "js" in (self.listener.implementation, self.client.implementation)


CONFIGS = [
    Config("js", "JS ↔ JS (in-memory)", Side("js", "js-memory"), Side("js", None)),
    Config("memory", "Py ↔ Py, memory:", Side("py", "memory"), Side("py", None)),
    Config("full", "Py ↔ Py, SQLite FULL", Side("py", "sqlite-full"), Side("py", None)),
    Config("normal", "Py ↔ Py, SQLite NORMAL", Side("py", "sqlite-normal"), Side("py", None)),
    Config("postgres", "Py ↔ Py, PostgreSQL", Side("py", "postgres"), Side("py", None)),
    Config(
        "full-client",
        "Py ↔ Py, SQLite FULL both sides",
        Side("py", "sqlite-full"),
        Side("py", "sqlite-full"),
    ),
    Config("py-js", "Py memory: ← JS client", Side("py", "memory"), Side("js", None)),
    Config("js-py", "JS (in-memory) ← Py client", Side("js", "js-memory"), Side("py", None)),
]
BY_NAME = {config.name: config for config in CONFIGS}


@dataclass
class Run:
    """One measured run of one configuration: the two processes' reports and what was wrong."""

    config: Config
    n: int
    in_flight: int
    total: int
    listener: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    profiles: dict[str, Path] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        wall = self.client.get("wall_s")
        return self.n / wall if wall else None


class Stores:
    """Store URLs for one run (a fresh SQLite folder or PostgreSQL schema), removed afterwards."""

    def __init__(self, workdir: Path, postgres: str | None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
        self.postgres = postgres
        self.schemas: list[str] = []

    def url(self, store: str | None, role: str) -> str | None:
        if store in (None, "js-memory"):
            return None
        if store == "memory":
            return "memory:"
        if store == "sqlite-full":
            return f"sqlite:///{self.folder}/{role}.db"
        if store == "sqlite-normal":
            return f"sqlite:///{self.folder}/{role}.db?synchronous=NORMAL"
        if store == "postgres":
            assert self.postgres is not None
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            self.schemas.append(schema)
            return _harness.with_schema(self.postgres, schema)
        raise ValueError(f"unknown store {store!r}")

    async def remove(self) -> None:
        """Delete the run's files and PostgreSQL schemas (a failed drop is not the run's fault)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        for schema in self.schemas:
            assert self.postgres is not None
            with contextlib.suppress(Exception):
                await _harness.drop_schema_async(self.postgres, schema)


class Peer(_harness.PeerProcess):
    """A listener or client process: JSON lines out, one "stop" line in; always ended."""

    @classmethod
    async def start(
        cls, side: Side, role: str, options: dict[str, Any], folder: Path
    ) -> _harness.PeerProcess:
        """Start one side with its options as `--name=value` words."""
        if side.implementation == "py":
            argv = [sys.executable, str(PY_PEER), role]
        else:
            argv = [_harness.node_binary(), str(JS_PEER), role]
        for name, value in options.items():
            if value is not None:
                argv.append(f"--{name}={value}")  # one word: base64url may start with "-"
        return await cls.spawn(argv, role, folder, _child_environment(side))

    def stop(self) -> None:
        """Ask the process to report and end."""
        assert self.process.stdin is not None
        with contextlib.suppress(ConnectionError, RuntimeError):
            self.process.stdin.write(b"stop\n")


def _child_environment(side: Side) -> dict[str, str]:
    """The environment of a peer: our processes import the library of this checkout (its
    src/ first on the path), whatever the virtualenv has installed, or the side's own src/
    and variables in an A/B run."""
    env = dict(os.environ)
    src = side.src or ROOT / "src"
    paths = [str(src), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(side.env)
    return env


def variant_b(config: Config, src: Path | None, env: tuple[tuple[str, str], ...]) -> Config:
    """The B side of an A/B run: `config` with its Python processes on `src` and `env`."""

    def side(old: Side) -> Side:
        if old.implementation != "py":
            return old
        return Side(old.implementation, old.store, src, env)

    what = ", ".join([*([f"src {src}"] if src else []), *(f"{k}={v}" for k, v in env)])
    return Config(
        config.name + "+b",
        f"{config.label} [B: {what}]",
        side(config.listener),
        side(config.client),
    )


def run_timeout(total: int, in_flight: int) -> float:
    """A generous bound for one run: 20 ms per transfer at 1 in flight, 5 ms otherwise."""
    return 120 + total * (0.02 if in_flight == 1 else 0.005)


async def run_once(config: Config, n: int, in_flight: int, warmup: int, settings: Settings) -> Run:
    """Start the pair, drive one run, collect and check both reports."""
    total = warmup + n
    run = Run(config, n, in_flight, total)
    condition, fulfillment = condition_pair()
    stores = Stores(settings.workdir, settings.postgres)
    peers: list[Peer] = []
    profilers: list[asyncio.subprocess.Process] = []
    try:
        listener = await Peer.start(
            config.listener,
            "listener",
            {
                "store": stores.url(config.listener.store, "listener"),
                "fulfillment": fulfillment,
                "warmup": warmup,
                "total": total,
            },
            stores.folder,
        )
        peers.append(listener)
        port = (await listener.read(60))["port"]
        client = await Peer.start(
            config.client,
            "client",
            {
                "store": stores.url(config.client.store, "client"),
                "port": port,
                "condition": condition,
                "warmup": warmup,
                "total": total,
                "in-flight": in_flight,
            },
            stores.folder,
        )
        peers.append(client)
        timeout = run_timeout(total, in_flight)
        while True:
            message = await client.read(timeout)
            if "warm" not in message:
                run.client = message
                break
            if settings.profile:
                profilers = await start_profilers(run, settings, listener, client)
        listener.stop()
        run.listener = await listener.read(60)
        client.stop()
        for peer in peers:
            await peer.finish(15)
        for profiler in profilers:
            await asyncio.wait_for(profiler.wait(), settings.profile + 60)
    except Exception as failure:
        run.problems.append(str(failure))
    finally:
        for peer in peers:
            peer.kill()
        for profiler in profilers:
            if profiler.returncode is None:
                profiler.kill()
        await stores.remove()
    if not run.problems:
        run.problems = check(run, total)
    return run


def check(run: Run, total: int) -> list[str]:
    """Every transfer fulfilled on both sides, the same ids, balances equal to the totals."""
    problems = []
    for role, report in (("listener", run.listener), ("client", run.client)):
        if report.get("fulfilled") != total or report.get("failed") != 0:
            problems.append(
                f"{role}: {report.get('fulfilled')} of {total} fulfilled, "
                f"{report.get('failed')} failed {report.get('errors')}"
            )
    if run.listener.get("digest") != run.client.get("digest"):
        problems.append("the two sides fulfilled different sets of transfer ids")
    if str(run.listener.get("balance")) != str(total):
        problems.append(f"listener balance {run.listener.get('balance')}, expected {total}")
    if str(run.client.get("balance")) != str(-total):
        problems.append(f"client balance {run.client.get('balance')}, expected {-total}")
    if run.client.get("wall_s") is None:
        problems.append("the client did not report its measured window")
    return problems


class Settings:
    """What every run of this invocation shares: a scratch folder, the PostgreSQL server, and
    where py-spy's profiles go (`profile` seconds each; 0 for none)."""

    def __init__(self, workdir: Path, postgres: str | None, args: argparse.Namespace) -> None:
        self.workdir = workdir
        self.postgres = postgres
        self.profile = int(args.profile)
        self.profile_dir: Path | None = None
        if self.profile:
            self.profile_dir = args.profile_dir or workdir / "profiles"
            self.profile_dir.mkdir(parents=True, exist_ok=True)


async def start_profilers(
    run: Run, settings: Settings, listener: Peer, client: Peer
) -> list[asyncio.subprocess.Process]:
    """py-spy on each Python process of the pair, for `settings.profile` seconds."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("--profile needs py-spy (.venv/bin/pip install py-spy)")
    assert settings.profile_dir is not None
    started = []
    for peer, side in ((listener, run.config.listener), (client, run.config.client)):
        if side.implementation != "py":
            continue
        out = settings.profile_dir / (
            f"{run.config.name}-{run.n}-{run.in_flight}-{peer.role}-{uuid.uuid4().hex[:6]}.txt"
        )
        run.profiles[peer.role] = out
        argv = [spy, "record", "--pid", str(peer.pid), "--duration", str(settings.profile)]
        argv += ["--rate", "100", "--native", "--threads", "--format", "raw", "-o", str(out)]
        started.append(
            await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
        )
    return started


# -- the table ---------------------------------------------------------------------------------


def _values(runs: list[Run], pick: Callable[[Run], Any]) -> list[float]:
    out = []
    for run in runs:
        if run.problems:
            continue
        value = pick(run)
        if value is not None:
            out.append(float(value))
    return out


def _cpu_us(report: dict[str, Any], n: int) -> float | None:
    cpu = report.get("cpu_s")
    return None if cpu is None else cpu / n * 1e6


def _latency(run: Run, key: str) -> float | None:
    latencies = run.client.get("latencies_ms")
    return None if not latencies else float(latencies[key])


def _per_transfer(report: dict[str, Any], run: Run, key: str) -> float | None:
    count = report.get(key)
    return None if count is None else count / run.total


def _counts(commits: float | None, operations: float | None) -> str:
    if commits is None:
        return "–"
    return f"{commits:.2f} ({_fmt(operations, 2)})"


def table(runs: list[Run]) -> list[str]:
    """Markdown rows: one per configuration and cell, with ratios to JS↔JS of the same cell
    (the B sides of an A/B run follow their A side)."""
    configs = list(dict.fromkeys(run.config for run in runs))
    order = {config.name: index for index, config in enumerate(CONFIGS)}
    configs.sort(key=lambda config: (order.get(config.name.removesuffix("+b"), 99), config.name))
    header = (
        "| configuration | in flight | N | transfers/s median (min–max) | ×JS "
        "| latency ms p50 / p99 / max | p50 ×JS | CPU µs/transfer listener + client | ×JS "
        "| peak RSS MB listener / client | commits (operations) per transfer listener / client |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    cells = list(dict.fromkeys((run.n, run.in_flight) for run in runs))  # in the order run
    for n, in_flight in cells:
        in_cell = [run for run in runs if (run.n, run.in_flight) == (n, in_flight)]
        summary: dict[str, dict[str, float | None]] = {}
        labels = {config.name: config.label for config in configs}
        for config in configs:
            mine = [run for run in in_cell if run.config == config]
            if not mine:
                continue
            rates = _values(mine, lambda run: run.rate)
            listener_cpu = _values(mine, lambda run: _cpu_us(run.listener, run.n))
            client_cpu = _values(mine, lambda run: _cpu_us(run.client, run.n))
            both = [a + b for a, b in zip(listener_cpu, client_cpu, strict=False)]
            summary[config.name] = {
                "rate": _median(rates),
                "min": min(rates) if rates else None,
                "max": max(rates) if rates else None,
                "p50": _median(_values(mine, lambda run: _latency(run, "p50"))),
                "p99": _median(_values(mine, lambda run: _latency(run, "p99"))),
                "worst": max(_values(mine, lambda run: _latency(run, "max")), default=None),
                "cpu_l": _median(listener_cpu),
                "cpu_c": _median(client_cpu),
                "cpu": _median(both),
                "rss_l": _median(_values(mine, lambda run: run.listener.get("peak_rss_kib"))),
                "rss_c": _median(_values(mine, lambda run: run.client.get("peak_rss_kib"))),
                **{
                    f"{key}_{role[0]}": _median(
                        _values(
                            mine,
                            lambda run, role=role, key=key: _per_transfer(  # type: ignore[misc]
                                getattr(run, role), run, key
                            ),
                        )
                    )
                    for key in ("commits", "operations")
                    for role in ("listener", "client")
                },
                "failed": float(sum(1 for run in mine if run.problems)),
                "runs": float(len(mine)),
            }
        js = summary.get("js", {})
        for name, row in summary.items():
            label = labels[name]
            if row["failed"]:
                label += f" ({row['failed']:.0f} of {row['runs']:.0f} runs FAILED the check)"
            rss_l = None if row["rss_l"] is None else row["rss_l"] / 1024
            rss_c = None if row["rss_c"] is None else row["rss_c"] / 1024
            lines.append(
                f"| {label} | {in_flight} | {n:,} "
                f"| {_fmt(row['rate'])} ({_fmt(row['min'])}–{_fmt(row['max'])}) "
                f"| {_ratio(row['rate'], js.get('rate'))} "
                f"| {_fmt(row['p50'], 2)} / {_fmt(row['p99'], 2)} / {_fmt(row['worst'], 1)} "
                f"| {_ratio(row['p50'], js.get('p50'))} "
                f"| {_fmt(row['cpu_l'])} + {_fmt(row['cpu_c'])} "
                f"| {_ratio(row['cpu'], js.get('cpu'))} "
                f"| {_fmt(rss_l, 1)} / {_fmt(rss_c, 1)} "
                f"| {_counts(row['commits_l'], row['operations_l'])} "
                f"/ {_counts(row['commits_c'], row['operations_c'])} |"
            )
    return lines


# -- the run -----------------------------------------------------------------------------------


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--n", type=_harness.numbers, help="measured transfers per run (5000,20000)"
    )
    parser.add_argument(
        "--in-flight", type=_harness.numbers, help="transfers outstanding (1,10,100)"
    )
    parser.add_argument("--reps", type=int, help="repetitions per configuration (3)")
    parser.add_argument("--warmup", type=int, help="warm-up transfers per run (1000)")
    parser.add_argument(
        "--configs",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=[config.name for config in CONFIGS],
        help="comma list of " + ", ".join(BY_NAME),
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run; implies --no-append")
    parser.add_argument("--no-append", action="store_true", help="do not write bench/RESULTS.md")
    parser.add_argument(
        "--profile", type=int, default=0, help="py-spy each Python process for SECONDS"
    )
    parser.add_argument("--profile-dir", type=Path, help="where py-spy's output goes (a tmp dir)")
    parser.add_argument("--json", type=Path, help="also write every run's reports to this file")
    parser.add_argument(
        "--src",
        type=Path,
        help="A/B run: every Python configuration also runs (interleaved) on this src/ folder "
        "of another checkout",
    )
    parser.add_argument(
        "--b-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="A/B run: an environment variable for the B side's Python processes (repeatable)",
    )
    args = parser.parse_args()
    quick = args.quick
    args.n = args.n or ([20] if quick else [5000, 20000])
    args.in_flight = args.in_flight or ([1, 10] if quick else [1, 10, 100])
    args.reps = args.reps or (1 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if quick else 1000)
    unknown = [name for name in args.configs if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown configuration {unknown}; known: {', '.join(BY_NAME)}")
    if args.src is not None:
        args.src = args.src.resolve()
        if not (args.src / "ilp_paychan" / "__init__.py").is_file():
            parser.error(f"--src {args.src} holds no ilp_paychan package")
    pairs = []
    for item in args.b_env:
        name, equals, value = item.partition("=")
        if not equals or not name:
            parser.error(f"--b-env wants NAME=VALUE, got {item!r}")
        pairs.append((name, value))
    args.b_env = tuple(pairs)
    return args


async def measure(args: argparse.Namespace, settings: Settings, configs: list[Config]) -> list[Run]:
    """Every cell, repetition and configuration, round-robin over configurations."""

    def status(run: Run) -> str:
        problems = "; ".join(run.problems)
        return f"{_fmt(run.rate)}/s " + (f"CHECK FAILED: {problems}" if problems else "ok")

    return await _harness.sweep(
        args.n,
        args.in_flight,
        args.reps,
        configs,
        lambda config, n, in_flight: run_once(config, n, in_flight, args.warmup, settings),
        status,
    )


def main() -> int:
    args = parse_arguments()
    configs = [config for config in CONFIGS if config.name in args.configs]
    if args.src is not None or args.b_env:
        with_b = []
        for config in configs:
            with_b.append(config)
            if "py" in (config.listener.implementation, config.client.implementation):
                with_b.append(variant_b(config, args.src, args.b_env))
        configs = with_b
    notes = []
    postgres = None
    if any(config.needs_postgres for config in configs):
        postgres = _harness.postgres_base()
        if postgres is None:
            notes.append("PostgreSQL skipped: no server answered")
            configs = [config for config in configs if not config.needs_postgres]
    if any(config.needs_node for config in configs):
        _harness.node_binary()
        _harness.ensure_js_reference()
    about = _harness.machine()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks kill children
    workdir = Path(tempfile.mkdtemp(prefix="ilp-transfers-bench-"))
    try:
        return measure_and_report(args, about, notes, Settings(workdir, postgres, args), configs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure_and_report(
    args: argparse.Namespace,
    about: dict[str, Any],
    notes: list[str],
    settings: Settings,
    configs: list[Config],
) -> int:
    """Run the matrix, print the table (and profiles), append it to RESULTS.md; the exit code."""
    runs = asyncio.run(measure(args, settings, configs))
    about["load_end"] = _harness.load_average()
    if args.json:
        _harness.write_runs(
            args.json,
            about,
            runs,
            lambda run: {"listener": run.listener, "client": run.client},
        )
    lines = table(runs)
    failed = [run for run in runs if run.problems]
    title, heading = _harness.print_entry(
        about,
        f"Warm-up {args.warmup:,}, {args.reps} repetition(s), "
        f"N {', '.join(f'{n:,}' for n in args.n)}, "
        f"in flight {', '.join(map(str, args.in_flight))}.",
        notes,
        lines,
    )
    if args.profile:
        print_profiles(runs)
    for run in failed:
        print(f"CHECK FAILED {run.config.label} N={run.n} in flight {run.in_flight}:")
        for problem in run.problems:
            print("   ", problem)
    ab = args.src is not None or bool(args.b_env)
    if not (args.no_append or args.quick or args.profile or failed or ab):
        _harness.append_entry(
            "bench/transfers.py",
            sys.argv[1:],
            title,
            heading,
            notes,
            lines,
            HEADING,
            INTRODUCTION,
        )
    return 1 if failed else 0


def print_profiles(runs: list[Run]) -> None:
    """A summary of each py-spy profile taken (bench/_profile.py reads the raw stacks)."""
    from _profile import summarise

    for run in runs:
        for role, path in run.profiles.items():
            if not path.exists():
                continue
            print(f"\nprofile {run.config.label}, N={run.n}, {run.in_flight} in flight, {role}")
            threads = getattr(run, role).get("thread_cpu_s") or {}
            per_thread = ", ".join(
                f"{name} {seconds / run.total * 1e6:,.0f}" for name, seconds in threads.items()
            )
            print(f"  CPU µs per transfer by thread over the whole run: {per_thread}")
            print(summarise(path.read_text()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
