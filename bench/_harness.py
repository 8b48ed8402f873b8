"""Pieces the benchmark scripts share: the workload's constants, /proc readings, the JS
reference's install, a throwaway PostgreSQL schema, the machine description and bench/RESULTS.md.

Scripts in bench/ import it as `_harness` (a script's own folder is on `sys.path`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
SECRET = "bench_secret"
PREFIX = "bench."
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def b64url(raw: bytes) -> str:
    """Unpadded base64url, as conditions and fulfillments travel."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def condition_pair() -> tuple[str, str]:
    """A fresh (condition, fulfillment) pair; every transfer of a run uses the same one."""
    preimage = os.urandom(32)
    return b64url(hashlib.sha256(preimage).digest()), b64url(preimage)


def peak_rss_kib(pid: int | str = "self") -> int | None:
    """VmHWM (peak resident set) of a process in KiB, from /proc; None where there is no /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+)", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process so far, by Python thread
    name (the OS name for threads Python did not start; same names added up); empty where there
    is no /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    seconds: dict[str, float] = {}
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the thread ended meanwhile
        name = names.get(int(stat.parent.name)) or text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: fields 14 and 15
        seconds[name] = round(seconds.get(name, 0.0) + used, 3)
    return seconds


def id_digest(ids: set[str]) -> str:
    """Order-independent digest of transfer ids (sum of each id's first 64 bits mod 2^64), the
    same as bench/js/transfer_peer.js computes, so both sides' sets can be compared cheaply."""
    total = sum(int(transfer_id.replace("-", "")[:16], 16) for transfer_id in ids)
    return str(total % (1 << 64))


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50, p99 (nearest rank) and max of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]

    return {"p50": rank(0.5), "p99": rank(0.99), "max": ordered[-1], "count": len(ordered)}


def node_binary() -> str:
    """Path of `node`; stops the script with a hint when it is missing."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed (./dev test installs it)")
    return node


def tests_module(name: str) -> Any:
    """A module of the test suite (`interop.connector`, say), imported as the tests import it
    (tests/ joins `sys.path` once)."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    return importlib.import_module(name)


def ensure_js_reference() -> None:
    """Install the pinned reference into tests/interop/js (`npm ci`) unless already there."""
    tests_module("interop.jspeer").ensure_node_modules()


def postgres_base() -> str | None:
    """The PostgreSQL server to use (ILP_PAYCHAN_BENCH_POSTGRES, else the local one), or None
    when none answers within 3 s."""
    url = os.environ.get("ILP_PAYCHAN_BENCH_POSTGRES", DEFAULT_POSTGRES)

    async def probe() -> None:
        connection = await asyncpg.connect(url, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    return url


def with_schema(base: str, schema: str) -> str:
    """`base` with the store's `schema=` option (the store creates the schema on first use)."""
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


async def drop_schema_async(base: str, schema: str) -> None:
    """Drop a benchmark's schema and everything in it, from inside a running event loop."""
    connection = await asyncpg.connect(base, timeout=10)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


def drop_schema(base: str, schema: str) -> None:
    """Drop a benchmark's schema and everything in it (no event loop may be running)."""
    asyncio.run(drop_schema_async(base, schema))


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the machine's name for it otherwise)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def git_commit() -> str:
    """The commit checked out, with "+dirty" when the library's sources differ from it."""
    commit = _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    changed = _output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
    return commit + ("+dirty" if changed else "")


def machine() -> dict[str, Any]:
    """What a results entry records about where and on what it ran."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "load_start": load_average(),
        "python": platform.python_version(),
        "node": _output([shutil.which("node") or "node", "--version"]) or "none",
        "commit": git_commit(),
        "executable": sys.executable,
    }


def append_to_section(heading: str, entry: str, introduction: str) -> None:
    """Add `entry` at the end of RESULTS.md's `## heading` section, creating the section (with
    `introduction`) at the end of the file when it does not exist yet."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    marker = f"\n## {heading}\n"
    entry = entry.strip("\n") + "\n"
    start = text.find(marker)
    if start < 0:
        text = text.rstrip("\n") + f"\n{marker}\n{introduction.strip()}\n\n{entry}"
    else:
        following = text.find("\n## ", start + len(marker))
        end = len(text) if following < 0 else following + 1
        section = text[:end].rstrip("\n") + "\n\n" + entry
        text = section + ("\n" + text[end:] if following >= 0 else "")
    RESULTS.write_text(text)


def title_and_heading(about: dict[str, Any], details: str) -> tuple[str, str]:
    """A RESULTS.md entry's title (date, commit) and its machine line, `details` appended."""
    title = f"{about['date']}, commit {about['commit']}"
    heading = (
        f"Machine: {about['nproc']} CPUs ({about['cpu']}), load average {about['load_start']} "
        f"at start, {about['load_end']} at end. CPython {about['python']}, Node {about['node']}. "
        + details
    )
    return title, heading


def append_entry(
    script: str,
    argv: list[str],
    title: str,
    heading: str,
    notes: list[str],
    lines: list[str],
    section: str,
    introduction: str,
) -> None:
    """Append one run's table to `section` of RESULTS.md, with the command that made it."""
    command = " ".join([f".venv/bin/python {script}", *argv])
    entry = [f"### {title}", "", heading, *notes, "", f"Command: `{command}`", "", *lines]
    append_to_section(section, "\n".join(entry), introduction)
    print(f"(appended to {RESULTS.relative_to(ROOT)})")


def print_entry(
    about: dict[str, Any], details: str, notes: list[str], lines: list[str]
) -> tuple[str, str]:
    """Print a run's title, machine line, notes and table; the title and machine line, for
    `append_entry`."""
    title, heading = title_and_heading(about, details)
    print(title)
    print(heading)
    for note in notes:
        print(note)
    print("\n".join(lines))
    return title, heading


def write_runs(
    path: Path, about: dict[str, Any], runs: list[Any], fields: Callable[[Any], dict[str, Any]]
) -> None:
    """Write every run (its configuration, cell, `fields` and problems) with the machine
    description as JSON (`--json`)."""
    raw = [
        {
            "config": run.config.name,
            "n": run.n,
            "in_flight": run.in_flight,
            **fields(run),
            "problems": run.problems,
        }
        for run in runs
    ]
    path.write_text(json.dumps({"about": about, "runs": raw}, indent=1))


# -- the matrix --------------------------------------------------------------------------------


def numbers(text: str) -> list[int]:
    """A comma list of whole numbers ("5000,20_000"), as `--n` and `--in-flight` take them."""
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


class Labelled(Protocol):
    """A configuration of a benchmark: what its progress lines call it."""

    @property
    def label(self) -> str:
        """The configuration's name in progress lines and tables."""
        ...


ConfigT = TypeVar("ConfigT", bound=Labelled)
RunT = TypeVar("RunT")


async def sweep(
    sizes: list[int],
    in_flights: list[int],
    reps: int,
    configs: list[ConfigT],
    run_once: Callable[[ConfigT, int, int], Awaitable[RunT]],
    status: Callable[[RunT], str],
) -> list[RunT]:
    """Every (N, in flight) cell and repetition, round-robin over `configs` (so a slow spell of
    the machine touches them all alike), with a progress line on stderr after each run."""
    runs = []
    for n in sizes:
        for in_flight in in_flights:
            for rep in range(reps):
                for config in configs:
                    run = await run_once(config, n, in_flight)
                    runs.append(run)
                    print(
                        f"  N={n} in flight {in_flight} rep {rep + 1}: {config.label}: "
                        f"{status(run)}",
                        file=sys.stderr,
                        flush=True,
                    )
    return runs


# -- table cells -------------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    """The median, None for no values."""
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators, "–" for none."""
    return "–" if value is None else f"{value:,.{digits}f}"


def ratio(value: float | None, base: float | None) -> str:
    """value / base to two places, "–" when either is missing."""
    return "–" if value is None or not base else f"{value / base:.2f}"


# -- peer processes ----------------------------------------------------------------------------


class PeerProcess:
    """A benchmark peer process: JSON lines on stdout, stderr to a file; always ended."""

    def __init__(self, process: asyncio.subprocess.Process, role: str, errors: Path) -> None:
        self.process = process
        self.role = role
        self.errors = errors

    @classmethod
    async def spawn(
        cls, argv: list[str], role: str, folder: Path, env: dict[str, str]
    ) -> PeerProcess:
        """Start `argv` in the checkout's root, its stderr into `folder/<role>.stderr`."""
        errors = folder / f"{role}.stderr"
        with errors.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=sink,
                cwd=ROOT,
                env=env,
            )
        return cls(process, role, errors)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    async def read(self, seconds: float) -> dict[str, Any]:
        """The next JSON line; raises with the process's stderr when it ends or `seconds` pass."""
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), seconds)
        except TimeoutError:
            raise RuntimeError(f"the {self.role} sent nothing for {seconds:.0f} s") from None
        if not line:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 10)
            tail = self.errors.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the {self.role} exited ({self.process.returncode}):\n{tail}")
        message: dict[str, Any] = json.loads(line)
        return message

    def kill(self) -> None:
        """Kill the process if it still runs."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def finish(self, seconds: float) -> None:
        """Wait `seconds` at most for the process to end, then kill it."""
        try:
            await asyncio.wait_for(self.process.wait(), seconds)
        except TimeoutError:
            self.kill()
            await self.process.wait()
