"""Codec throughput: ilp_paychan.codec.btp against the reference's btp-packet, in the same run.

Measures encode, decode and encode+decode operations per second for (a) a Prepare carrying an
``ilp`` entry (an ILP payment) and a ``custom`` entry, and (b) a Fulfill, then prints a table with
the ratio Python / JavaScript. The JavaScript side is btp-packet@1.2.1 (the version PROTOCOL.md
names, with oer-utils 1.3.3 as the reference's lock pins it), installed by npm from
bench/js/package.json into the git-ignored bench/.js/ on first use.

Usage:  .venv/bin/python bench/codec.py [--seconds 1.0] [--windows 3] [--no-js]
Each figure is the best of ``--windows`` timed windows of ``--seconds`` seconds.
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
from typing import Any

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


def _window(fn: Callable[[], object], seconds: float) -> float:
    ops = 0
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        for _ in range(1000):
            fn()
        ops += 1000
        now = time.perf_counter()
    return ops / (now - start)


def _rate(fn: Callable[[], object], seconds: float, windows: int) -> float:
    for _ in range(2000):
        fn()
    return max(_window(fn, seconds) for _ in range(windows))


def measure_python(seconds: float, windows: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    encode, decode = btp.encode, btp.decode
    for name, packet in CASES.items():
        frame = encode(packet)
        assert decode(frame) == packet

        def encode_once(p: btp.Packet = packet) -> bytes:
            return encode(p)

        def decode_once(f: bytes = frame) -> btp.Packet:
            return decode(f)

        def round_trip(p: btp.Packet = packet) -> btp.Packet:
            return decode(encode(p))

        out[name] = {
            "bytes": len(frame),
            "encode": _rate(encode_once, seconds, windows),
            "decode": _rate(decode_once, seconds, windows),
            "roundTrip": _rate(round_trip, seconds, windows),
        }
    return out


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


def measure_js(seconds: float, windows: int) -> dict[str, Any]:
    install_js()
    expected = json.dumps({name: btp.encode(p).hex() for name, p in CASES.items()})
    budget = 60 + 2 * 4 * 3 * windows * seconds  # warm-up plus every window, generously
    done = subprocess.run(
        ["node", str(JS_SOURCE / "codec_bench.js"), str(seconds), str(windows), expected],
        cwd=JS_INSTALL,
        env={
            "NODE_PATH": str(JS_INSTALL / "node_modules"),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        },
        check=True,
        capture_output=True,
        text=True,
        timeout=budget,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _fmt(ops: float | None) -> str:
    return "—" if ops is None else f"{ops:,.0f}"


def print_table(py: dict[str, dict[str, float]], js: dict[str, Any] | None) -> None:
    print(f"{'case':<26}{'Python ops/s':>14}{'JS ops/s':>14}{'Python/JS':>11}")
    for case in CASES:
        for op in ("encode", "decode", "roundTrip"):
            mine = py[case][op]
            theirs = js[case][op] if js else None
            ratio = f"{mine / theirs:.2f}" if theirs else "—"
            label = f"{case} {op} ({int(py[case]['bytes'])} B)"
            print(f"{label:<26}{_fmt(mine):>14}{_fmt(theirs):>14}{ratio:>11}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed window")
    parser.add_argument("--windows", type=int, default=3, help="timed windows per figure")
    parser.add_argument("--no-js", action="store_true", help="skip the JavaScript reference")
    args = parser.parse_args()

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    py = measure_python(args.seconds, args.windows)
    js = None
    if not args.no_js:
        if shutil.which("node") is None or shutil.which("npm") is None:
            print("node/npm not found: JavaScript column left empty", file=sys.stderr)
        else:
            js = measure_js(args.seconds, args.windows)
            versions = js["versions"]
            print(f"node {versions['node']}, btp-packet {versions['btp-packet']}")
    print_table(py, js)


if __name__ == "__main__":
    main()
