"""STREAM throughput and time to pay a fixed amount: ilp_paychan.stream against
ilp-protocol-stream 2.7.2-alpha.3, in one run, through one ilp-connector 23.0.2.

One harness process (tests/interop/js_connector/harness.js) runs the connector with its rate
limit middleware off, a JS STREAM server (`srv`) and a JS STREAM client (`cli`), each on an
account of its own, and two accounts for this process's BtpPlugins (`py`, the payer, and
`pysrv`, under our StreamServer). Every paying account has the same `maxPacketAmount`, so a
payment of A goes in about A / M packets, whose size the sender learns by F08. Pairs:

- JS → JS: `cli` pays `srv` (the reference on both ends; the ratios' base);
- Py → JS: `py` pays `srv`;  JS → Py: `cli` pays our StreamServer;
- Py → Py: `py` pays our StreamServer through the connector;
- Py → Py direct: two BtpPlugins on loopback without a connector (listener answers ILDCP), the
  sender given M as its maximum packet amount (no connector sends F08 there).

Each run is one payment: a fresh address and secret, then connect (ILDCP, rate probe) and send
the whole amount; the clock stops when the last money is fulfilled (ilp-protocol-stream's
`sendTotal`, our `send_money`); closing is not timed, on either side. Pairs are interleaved in
every repetition. Python senders run with `max_in_flight` 5 (the default) and optionally more;
the JS sender has one packet in flight. Every run checks that the receiver counted exactly what
the sender says was delivered.

    .venv/bin/python bench/stream.py [--amounts 500000,2000000] [--max-packet 1000] [--reps 3]
                                     [--in-flight 5,20] [--quick] [--no-append]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import _harness

from ilp_paychan.stream import ConnectionOptions, StreamServer, connect
from ilp_paychan.stream.address import connection_id_of
from ilp_paychan.v2.plugin import BtpPlugin

HEADING = "STREAM"
INTRODUCTION = """\
`bench/stream.py` — one STREAM payment of a fixed amount per run, ilp_paychan.stream against
ilp-protocol-stream 2.7.2-alpha.3 in the same run through the same ilp-connector 23.0.2 (one node
process holding the connector, rate limit off, and the JS STREAM server and client), every
paying account with the same `maxPacketAmount`. Time: from connect (ILDCP, rate probe) to the last
money fulfilled; closing not timed. Packets: fulfilled money packets. Ratios: median time of the
JS → JS pair divided by the pair's (above 1: faster than the reference). "in flight": the Python
sender's `max_in_flight` (ilp-protocol-stream sends one packet at a time)."""

ROOT = Path(__file__).resolve().parent.parent


def _connector_module() -> ModuleType:
    """tests/interop/connector.py, the harness driver the interop tests use."""
    module: ModuleType = _harness.tests_module("interop.connector")
    return module


@dataclass
class Run:
    """One payment's outcome."""

    pair: str
    in_flight: int | None
    amount: int
    seconds: float
    packets: int
    delivered: int


@dataclass
class Pair:
    """A sender/receiver combination and how to run one payment over it."""

    label: str
    in_flight: int | None
    pay: Callable[[int], Awaitable[Run]]
    runs: dict[int, list[Run]] = field(default_factory=dict)


class Bench:
    """Owns the harness process and the Python plugins; each method pays once and checks."""

    def __init__(self, max_packet: int) -> None:
        self.max_packet = max_packet
        self.connector: Any = None
        self.harness: Any = None
        self.py: BtpPlugin | None = None
        self.pysrv: BtpPlugin | None = None
        self.server: StreamServer | None = None
        self.direct_listener: BtpPlugin | None = None
        self.direct_client: BtpPlugin | None = None
        self.direct_server: StreamServer | None = None

    async def start(self) -> None:
        """Start the connector harness, attach the Python plugins and servers."""
        self.connector = _connector_module()
        await asyncio.to_thread(self.connector.ensure_npm_project)
        limit = str(self.max_packet)
        config = {
            "address": "test.conn",
            "connector": {"disableMiddleware": ["rateLimit"]},
            "accounts": {
                "py": {"type": "btp-server", "secret": "py-secret", "maxPacketAmount": limit},
                "pysrv": {"type": "btp-server", "secret": "pysrv-secret"},
            },
            "hosts": {
                "srv": {"kind": "stream-server", "quiet": True},
                "cli": {"kind": "stream-client", "account": {"maxPacketAmount": limit}},
            },
        }
        self.harness = await self.connector.ConnectorHarness.start(config)
        self.py = BtpPlugin({"server": self.harness.account_url("py")})
        self.pysrv = BtpPlugin({"server": self.harness.account_url("pysrv")})
        await self.py.connect()
        await self.pysrv.connect()
        self.server = StreamServer(self.pysrv)
        await self.server.listen()

        self.direct_listener = BtpPlugin(
            {
                "listener": {"port": 0, "host": "127.0.0.1", "secret": "direct"},
                "ildcp": {
                    "clientAddress": "test.direct.payer",
                    "assetCode": "XRP",
                    "assetScale": 9,
                },
            }
        )
        await self.direct_listener.connect()
        port = self.direct_listener.listener_port
        self.direct_client = BtpPlugin({"server": f"btp+ws://:direct@127.0.0.1:{port}"})
        self.direct_server = StreamServer(
            self.direct_listener, address="test.direct", asset_code="XRP", asset_scale=9
        )
        await self.direct_server.listen()
        await self.direct_client.connect()

    async def close(self) -> None:
        """Stop everything this bench started (each step bounded)."""
        for server in (self.server, self.direct_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.close(timeout=2), 10)
        for plugin in (self.py, self.pysrv, self.direct_client, self.direct_listener):
            if plugin is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(plugin.disconnect(), 10)
        if self.harness is not None:
            await self.harness.close()

    # --- one payment per pair -------------------------------------------------------------------

    async def js_to_js(self, amount: int) -> Run:
        """The JS client pays the JS server."""
        destination, secret = await self.harness.generate("srv")
        before = await self._js_total()
        receipt = await self.harness.pay(
            "cli", amount, destination=destination, secret=secret, wait=600
        )
        return self._js_run("JS → JS", amount, receipt, await self._js_total(before, amount))

    async def _js_total(self, before: int = 0, expected: int | None = None) -> int:
        """What the JS server received over all its connections, less `before`; waits a moment
        for `expected`. (Its per-connection record can be replaced: a closing packet arriving
        after the JS server closed the connection opens a new, empty one under that address.)"""
        for _ in range(50):
            got = int((await self.harness.received("srv"))["total"]) - before
            if expected is None or got == expected:
                return got
            await asyncio.sleep(0.02)
        return got

    async def js_to_py(self, amount: int) -> Run:
        """The JS client pays our StreamServer through the connector."""
        assert self.server is not None
        destination, secret = self.server.generate_address_and_secret()
        receipt = await self.harness.pay(
            "cli", amount, destination=destination, secret=secret, wait=600
        )
        received = await self._py_received(self.server, destination)
        return self._js_run("JS → Py", amount, receipt, received)

    async def py_to_js(self, amount: int, in_flight: int) -> Run:
        """Our client pays the JS server through the connector."""
        assert self.py is not None
        destination, secret = await self.harness.generate("srv")
        before = await self._js_total()
        run = await self._py_pay("Py → JS", self.py, destination, secret, amount, in_flight, None)
        _check(run, await self._js_total(before, amount))
        return run

    async def py_to_py(self, amount: int, in_flight: int) -> Run:
        """Our client pays our StreamServer through the connector."""
        assert self.py is not None
        assert self.server is not None
        destination, secret = self.server.generate_address_and_secret()
        run = await self._py_pay("Py → Py", self.py, destination, secret, amount, in_flight, None)
        _check(run, await self._py_received(self.server, destination))
        return run

    async def py_direct(self, amount: int, in_flight: int) -> Run:
        """Our client pays our StreamServer over one BtpPlugin link, no connector."""
        assert self.direct_client is not None
        assert self.direct_server is not None
        destination, secret = self.direct_server.generate_address_and_secret()
        run = await self._py_pay(
            "Py → Py direct",
            self.direct_client,
            destination,
            secret,
            amount,
            in_flight,
            self.max_packet,
        )
        _check(run, await self._py_received(self.direct_server, destination))
        return run

    async def _py_pay(
        self,
        label: str,
        plugin: BtpPlugin,
        destination: str,
        secret: bytes,
        amount: int,
        in_flight: int,
        max_packet: int | None,
    ) -> Run:
        options = ConnectionOptions(max_in_flight=in_flight, max_packet_amount=max_packet)
        started = time.perf_counter()
        conn = await connect(plugin, destination, secret, options=options)
        stream = conn.create_stream()
        await stream.send_money(amount)
        seconds = time.perf_counter() - started
        await conn.close(timeout=10)
        if conn.total_sent != amount:
            raise RuntimeError(f"{label}: sent {conn.total_sent} of {amount}")
        return Run(label, in_flight, amount, seconds, conn.counters.fulfilled, conn.total_delivered)

    async def _py_received(self, server: StreamServer, destination: str) -> int:
        """What our server counted on the connection at `destination` (waits for it to close)."""
        connection_id = connection_id_of(server.address, destination)
        deadline = time.monotonic() + 10
        while True:
            conn = server._connections.get(connection_id) or server._closed.get(connection_id)
            if conn is not None and (conn.closed or time.monotonic() > deadline):
                return conn.total_received
            if time.monotonic() > deadline:
                raise RuntimeError(f"no connection at {destination} on our server")
            await asyncio.sleep(0.01)

    @staticmethod
    def _js_run(label: str, amount: int, receipt: dict[str, Any], received: int) -> Run:
        if receipt["sent"] != str(amount):
            raise RuntimeError(f"{label}: sent {receipt['sent']} of {amount}")
        packets = receipt["packets"]
        # the harness counts every sendData of the payment: its ILDCP request is one Fulfill
        run = Run(
            label,
            None,
            amount,
            float(receipt["seconds"]),
            int(packets["fulfilled"]) - 1,
            int(receipt["delivered"]),
        )
        _check(run, received)
        return run


def _check(run: Run, received: int) -> None:
    if run.delivered != received or run.delivered != run.amount:
        raise RuntimeError(
            f"{run.pair}: delivered {run.delivered}, receiver counted {received}, "
            f"amount {run.amount}"
        )


def _pairs(bench: Bench, in_flights: list[int]) -> list[Pair]:
    pairs = [Pair("JS → JS", None, bench.js_to_js), Pair("JS → Py", None, bench.js_to_py)]
    for n in in_flights:
        pairs.append(Pair("Py → JS", n, lambda a, n=n: bench.py_to_js(a, n)))
        pairs.append(Pair("Py → Py", n, lambda a, n=n: bench.py_to_py(a, n)))
        pairs.append(Pair("Py → Py direct", n, lambda a, n=n: bench.py_direct(a, n)))
    return pairs


async def measure(args: argparse.Namespace) -> list[Pair]:
    """Run every pair `reps` times per amount, interleaved; return the pairs with their runs."""
    bench = Bench(args.max_packet)
    await bench.start()
    try:
        pairs = _pairs(bench, args.in_flight)
        for pair in pairs:  # warm-up: one small payment each (imports, JIT, first connections)
            await pair.pay(args.max_packet * 10)
        for amount in args.amounts:
            for rep in range(args.reps):
                for pair in pairs:
                    run = await pair.pay(amount)
                    pair.runs.setdefault(amount, []).append(run)
                    print(
                        f"  {pair.label:<15} in flight {pair.in_flight or 1:>2}"
                        f"  amount {amount:>9,}  rep {rep + 1}:"
                        f" {run.seconds:7.3f} s, {run.packets} packets",
                        flush=True,
                    )
    finally:
        await bench.close()
    return pairs


def table(pairs: list[Pair], amounts: list[int]) -> list[str]:
    """The markdown table: per pair and amount, time min/median/max, rates, ratio to JS → JS."""
    lines = [
        "| pair | in flight | amount | packets | time s: min / median / max "
        "| packets/s (median) | units/s (median) | vs JS → JS |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for amount in amounts:
        base = next(p for p in pairs if p.label == "JS → JS").runs.get(amount, [])
        base_median = statistics.median(r.seconds for r in base) if base else None
        for pair in pairs:
            runs = pair.runs.get(amount, [])
            if not runs:
                continue
            times = sorted(r.seconds for r in runs)
            median = statistics.median(times)
            packets = statistics.median(r.packets for r in runs)
            ratio = "–" if base_median is None else f"{base_median / median:.2f}"
            lines.append(
                f"| {pair.label} | {pair.in_flight or 1} | {amount:,} | {packets:,.0f} "
                f"| {times[0]:.3f} / {median:.3f} / {times[-1]:.3f} "
                f"| {packets / median:,.0f} | {amount / median:,.0f} | {ratio} |"
            )
    return lines


def parse_arguments() -> argparse.Namespace:
    """Command line options."""

    def numbers(text: str) -> list[int]:
        return [int(part) for part in text.split(",") if part]

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--amounts", type=numbers, default=[500_000, 2_000_000])
    parser.add_argument("--max-packet", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--in-flight", type=numbers, default=[5, 20])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run; implies --no-append")
    parser.add_argument("--no-append", action="store_true", help="do not write bench/RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.amounts = [20_000]
        args.reps = 1
        args.no_append = True
    return args


def main() -> int:
    """Measure, print one table, and append it to bench/RESULTS.md unless told not to."""
    args = parse_arguments()
    _harness.node_binary()
    info = _harness.machine()
    uptime_start = os.popen("uptime").read().strip()
    pairs = asyncio.run(measure(args))
    uptime_end = os.popen("uptime").read().strip()
    lines = table(pairs, args.amounts)
    print()
    print("\n".join(lines))
    print(f"\nload: start `{uptime_start}`; end `{uptime_end}`")
    if args.no_append:
        return 0
    entry = [
        f"### {info['date']}",
        "",
        f"- Machine: {info['nproc']} cores ({info['cpu']}), shared; `uptime` at the start: "
        f"`{uptime_start}`, at the end: `{uptime_end}`. CPython {info['python']}, Node "
        f"{info['node']}, commit {info['commit']}.",
        f"- maxPacketAmount {args.max_packet:,} on every paying account; {args.reps} "
        "repetitions, pairs interleaved.",
        "",
        *lines,
    ]
    _harness.append_to_section(HEADING, "\n".join(entry), INTRODUCTION)
    print(f"appended to {_harness.RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
