"""Codec throughput: ilp_paychan.codec.btp against the reference's btp-packet, in the same run.

Measures encode, decode and encode+decode operations per second for (a) a Prepare carrying an
``ilp`` entry (an ILP payment) and a ``custom`` entry, and (b) a Fulfill, then prints a table with
the ratio Python / JavaScript. The JavaScript side is btp-packet@1.2.1 (the published release
wire-identical to the commit the reference pins, with oer-utils 1.3.3 as its lock pins it),
installed by npm from bench/js/package.json into the git-ignored bench/.js/ on first use; both
sides must produce the same bytes or the run stops.

Machines here are shared, so Python and JavaScript windows alternate, each figure is the best of
``--windows`` windows, and a rate is operations per second of *process CPU time* (time the process
was descheduled does not count against it; ``--wall`` uses wall-clock time instead).

Usage:  .venv/bin/python bench/codec.py [--seconds 0.5] [--windows 5] [--wall] [--no-js]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from ilp_paychan.codec import btp
from ilp_paychan.codec.condition import b64url_decode

BENCH = Path(__file__).resolve().parent
JS_SOURCE = BENCH / "js"
JS_INSTALL = BENCH / ".js"
BTP_PACKET_VERSION = "1.2.1"

TRANSFER_ID = "5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1"
ILP_PAYMENT = bytes.fromhex(
    "012a00000000000003e8166578616d706c652e7265642e636c69656e742e626f620968656c6c6f20696c7000"
)
PREPARE = btp.Prepare(
    12345,
    TRANSFER_ID,
    10,
    b64url_decode("DwpuPwI9WR8IDyeC-G41-vxZ55EXCYo5BiShGjARp7A"),
    datetime(2017, 12, 6, 19, 9, 38, 123000, tzinfo=UTC),
    (
        btp.ProtocolData("ilp", btp.ContentType.OCTET_STREAM, ILP_PAYMENT),
        btp.ProtocolData("custom", btp.ContentType.APPLICATION_JSON, b'{"field":"some stuff"}'),
    ),
)
FULFILL = btp.Fulfill(
    12346, TRANSFER_ID, b64url_decode("NfFfJgKDXxHb1F2AjrsSetGZzRT3SUZkDYqCyPMCfAE")
)
CASES: dict[str, btp.Packet] = {"prepare": PREPARE, "fulfill": FULFILL}


OPS = ("encode", "decode", "roundTrip")


class Window:
    """Operations done in one timed window, with the CPU and wall time they took."""

    def __init__(self, ops: int, cpu: float, wall: float) -> None:
        self.ops, self.cpu, self.wall = ops, cpu, wall

    def rate(self, wall_clock: bool) -> float:
        return self.ops / (self.wall if wall_clock else max(self.cpu, 1e-9))


def _python_operation(case: str, op: str) -> Callable[[], object]:
    packet = CASES[case]
    frame = btp.encode(packet)
    encode, decode = btp.encode, btp.decode
    if op == "encode":
        return lambda: encode(packet)
    if op == "decode":
        return lambda: decode(frame)
    return lambda: decode(encode(packet))


def python_window(fn: Callable[[], object], seconds: float) -> Window:
    ops = 0
    cpu_start = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        for _ in range(1000):
            fn()
        ops += 1000
        now = time.perf_counter()
    return Window(ops, time.process_time() - cpu_start, now - start)


class JsBench:
    """The long-lived node process running bench/js/codec_bench.js."""

    def __init__(self) -> None:
        install_js()
        self.proc = subprocess.Popen(
            ["node", str(JS_SOURCE / "codec_bench.js")],
            cwd=JS_INSTALL,
            env={
                "NODE_PATH": str(JS_INSTALL / "node_modules"),
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.stdin: IO[str] = self.proc.stdin  # type: ignore[assignment]
        self.stdout: IO[str] = self.proc.stdout  # type: ignore[assignment]
        hello = json.loads(self.stdout.readline())
        self.versions: dict[str, str] = hello["versions"]
        for case, packet in CASES.items():
            if hello["frames"][case] != btp.encode(packet).hex():
                raise RuntimeError(f"{case}: JavaScript and Python frames differ")

    def window(self, case: str, op: str, seconds: float) -> Window:
        self.stdin.write(json.dumps({"case": case, "op": op, "seconds": seconds}) + "\n")
        self.stdin.flush()
        line = self.stdout.readline()
        if not line:
            raise RuntimeError("the node process exited")
        answer = json.loads(line)
        return Window(answer["ops"], answer["cpu"], answer["wall"])

    def close(self) -> None:
        self.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _installed_version() -> str | None:
    manifest = JS_INSTALL / "node_modules" / "btp-packet" / "package.json"
    if not manifest.exists():
        return None
    version: str = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    return version


def install_js() -> None:
    """Install the pinned btp-packet into bench/.js/ unless it is already there."""
    if _installed_version() == BTP_PACKET_VERSION:
        return
    JS_INSTALL.mkdir(exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(JS_SOURCE / name, JS_INSTALL / name)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--omit-lockfile-registry-resolved"],
        cwd=JS_INSTALL,
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
    )
    if _installed_version() != BTP_PACKET_VERSION:
        raise RuntimeError(f"npm did not install btp-packet@{BTP_PACKET_VERSION}")


def measure(
    seconds: float, windows: int, js: JsBench | None, wall_clock: bool
) -> dict[tuple[str, str], tuple[float, float | None]]:
    """Best rate per (case, op) for Python and JavaScript, windows interleaved."""
    results: dict[tuple[str, str], tuple[float, float | None]] = {}
    for case in CASES:
        for op in OPS:
            fn = _python_operation(case, op)
            for _ in range(20000):
                fn()
            best_py, best_js = 0.0, 0.0
            for _ in range(windows):
                best_py = max(best_py, python_window(fn, seconds).rate(wall_clock))
                if js is not None:
                    best_js = max(best_js, js.window(case, op, seconds).rate(wall_clock))
            results[case, op] = (best_py, best_js if js is not None else None)
    return results


def _fmt(ops: float | None) -> str:
    return "—" if ops is None else f"{ops:,.0f}"


def print_table(results: dict[tuple[str, str], tuple[float, float | None]]) -> None:
    print(f"{'case':<26}{'Python ops/s':>14}{'JS ops/s':>14}{'Python/JS':>11}")
    for (case, op), (mine, theirs) in results.items():
        ratio = f"{mine / theirs:.2f}" if theirs else "—"
        label = f"{case} {op} ({len(btp.encode(CASES[case]))} B)"
        print(f"{label:<26}{_fmt(mine):>14}{_fmt(theirs):>14}{ratio:>11}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one timed window")
    parser.add_argument("--windows", type=int, default=5, help="timed windows per figure")
    parser.add_argument("--wall", action="store_true", help="rate by wall-clock, not CPU time")
    parser.add_argument("--no-js", action="store_true", help="skip the JavaScript reference")
    args = parser.parse_args()

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    js = None
    if not args.no_js:
        if shutil.which("node") is None or shutil.which("npm") is None:
            print("node/npm not found: JavaScript column left empty", file=sys.stderr)
        else:
            js = JsBench()
            print(f"node {js.versions['node']}, btp-packet {js.versions['btp-packet']}")
    try:
        results = measure(args.seconds, args.windows, js, args.wall)
    finally:
        if js is not None:
            js.close()
    print(f"rates per second of {'wall-clock' if args.wall else 'process CPU'} time")
    print_table(results)


if __name__ == "__main__":
    main()
