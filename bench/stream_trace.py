"""Where a JS STREAM client's round trip goes when it pays our StreamServer through ilp-connector.

One harness process (as bench/stream.py) holds ilp-connector 23, a JS STREAM server `srv` and a
JS STREAM client `cli`; this process attaches a BtpPlugin child account under our
StreamServer. Each repetition pays AMOUNT from `cli` to `srv` (JS → JS), then from `cli` to
our server (JS → Py), and traces our side of the second payment on its one WebSocket:

- inside: from a socket read to the write of what it caused (our receiver's time per packet);
- outside: from that write to the next read (the connector, the JS client and both hops);
- reads and Prepares: how many packets reached our server during the payment;
- late: Prepares that reached our server in the second after the payment, whatever connection
  they were for (closing packets a JS client keeps re-sending show here);
- TCP_NODELAY on our socket.

    .venv/bin/python bench/stream_trace.py [--amount 500000] [--reps 3] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ilp_paychan.stream import StreamServer
from ilp_paychan.transport import websocket
from ilp_paychan.transport.websocket import WebSocket
from ilp_paychan.v2.plugin import BtpPlugin

ROOT = Path(__file__).resolve().parent.parent


class Trace:
    """Socket reads and writes of one WebSocket, with their perf_counter times."""

    def __init__(self) -> None:
        self.target: WebSocket | None = None
        self.on = False
        self.events: list[tuple[str, float]] = []
        self.prepares = 0

    def install(self) -> None:
        """Wrap `WebSocket.data_received` and `WebSocket.flush` (what flush writes, as it does)."""
        received = WebSocket.data_received
        trace = self

        def data_received(ws: WebSocket, data: bytes | bytearray) -> None:
            if trace.on and ws is trace.target:
                trace.events.append(("in", time.perf_counter()))
            received(ws, data)

        def flush(ws: WebSocket) -> None:
            chunks = ws.protocol.data_to_send()
            transport = ws.transport
            if not chunks or transport is None or transport.is_closing():
                return
            if trace.on and ws is trace.target and any(chunks):
                trace.events.append(("out", time.perf_counter()))
            for chunk in chunks:
                if chunk:
                    transport.write(chunk)
                elif transport.can_write_eof():
                    transport.write_eof()
                else:
                    transport.close()

        websocket.WebSocket.data_received = data_received  # type: ignore[method-assign]
        websocket.WebSocket.flush = flush  # type: ignore[method-assign]

    def packet(self, direction: str, kind: str, code: str) -> None:
        """A BtpPlugin observer: counts incoming Prepares."""
        if direction == "incoming" and kind == "prepare":
            self.prepares += 1

    def split(self) -> tuple[list[float], list[float], int]:
        """(inside, outside) intervals in seconds, and the number of reads."""
        inside: list[float] = []
        outside: list[float] = []
        first_in: float | None = None
        last_out: float | None = None
        reads = 0
        for kind, at in self.events:
            if kind == "in":
                reads += 1
                if last_out is not None:
                    outside.append(at - last_out)
                    last_out = None
                if first_in is None:
                    first_in = at
            else:
                if first_in is not None:
                    inside.append(at - first_in)
                    first_in = None
                last_out = at
        return inside, outside, reads


def _ms(values: list[float]) -> str:
    if not values:
        return "–"
    ordered = sorted(values)
    p90 = ordered[int(len(ordered) * 0.9)]
    return f"median {statistics.median(ordered) * 1e3:.3f} ms, p90 {p90 * 1e3:.3f} ms"


async def measure(args: argparse.Namespace) -> None:
    """Run the payments and print one block per repetition."""
    sys.path.insert(0, str(ROOT / "tests"))
    from interop import connector

    trace = Trace()
    trace.install()
    await asyncio.to_thread(connector.ensure_npm_project)
    limit = str(args.max_packet)
    harness: Any = await connector.ConnectorHarness.start(
        {
            "address": "test.conn",
            "connector": {"disableMiddleware": ["rateLimit"]},
            "accounts": {"pysrv": {"type": "btp-server", "secret": "pysrv-secret"}},
            "hosts": {
                "srv": {"kind": "stream-server", "quiet": True},
                "cli": {"kind": "stream-client", "account": {"maxPacketAmount": limit}},
            },
        }
    )
    plugin = BtpPlugin({"server": harness.account_url("pysrv")})
    try:
        await plugin.connect()
        plugin.add_observer(trace)
        server = StreamServer(plugin)
        await server.listen()
        link: Any = plugin._link
        trace.target = link._active._ws
        assert trace.target is not None
        assert trace.target.transport is not None
        sock = trace.target.transport.get_extra_info("socket")
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        print(f"loop {type(asyncio.get_running_loop()).__module__}, TCP_NODELAY {nodelay}")
        for rep in range(args.reps):
            destination, secret = await harness.generate("srv")
            js = await harness.pay("cli", args.amount, destination=destination, secret=secret)
            destination, secret = server.generate_address_and_secret()
            trace.events, trace.prepares, trace.on = [], 0, True
            py = await harness.pay(
                "cli", args.amount, destination=destination, secret=secret, wait=600
            )
            trace.on = False
            during = trace.prepares
            await asyncio.sleep(1.0)
            late = trace.prepares - during
            inside, outside, reads = trace.split()
            packets = int(py["packets"]["fulfilled"]) - 1  # less its ILDCP request
            print(
                f"rep {rep + 1}: JS → JS {float(js['seconds']):.3f} s, JS → Py "
                f"{float(py['seconds']):.3f} s ({packets} money packets); our server: "
                f"{reads} reads, {during} Prepares during the payment, {late} in the second after"
            )
            print(f"  inside  {_ms(inside)}")
            print(f"  outside {_ms(outside)}")
        await server.close(timeout=2)
    finally:
        await plugin.disconnect()
        await harness.close()


def main() -> int:
    """Parse the options and run on asyncio's loop (or uvloop with --uvloop)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--amount", type=int, default=500_000)
    parser.add_argument("--max-packet", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(measure(args))
    else:
        asyncio.run(measure(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
