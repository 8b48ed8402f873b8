"""`ilp-paychan demo --stream`: one STREAM payment (RFC 29) set up over SPSP (RFC 9), end to end
on loopback, with a progress bar and a summary table.

`--link connector` (what `auto`, the default, picks when Node.js and npm are there): ilp-connector
23 runs as a child process (`demo_connector`) with two BTP 2.0 accounts, and two `BtpPlugin`s in
this process are its children `alice` (the payer) and `bob` (the receiver); the connector caps
alice's packets at `--max-packet` (F08). Otherwise two plugins in this process make a two-party
link on 127.0.0.1: a listener for the receiver and a client for the payer (`--link v1`: our LPI
v1 trustline plugins, each behind `V1Adapter`; `--link btp`: two `BtpPlugin`s, BTP 2.0), and the
receiver caps packets at `--max-packet` as a connector would. Either way the payer measures the
rate, splits the amount and retries. The receiver runs a STREAM server behind an SPSP endpoint;
the payer queries it and pays `--amount`.

Exit code: 0 when the whole amount arrived and both sides agree on it, 1 otherwise, 128 + the
signal number when stopped by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ilp_paychan.shell.event_loop import run as run_on_loop
from ilp_paychan.shell.serve import listener_port

SECRET = "demo-stream-secret"
PREFIX = "test.demo."
#: The whole demo gives up after this long (it normally takes a few seconds).
DEADLINE = 120.0
#: The `path` row of the report for the two-party links.
LOOPBACK_PATHS = {
    "btp": "payer → receiver (BTP 2.0 link)",
    "v1": "payer → receiver (LPI v1 link)",
}


@dataclass
class StreamDemoResult:
    """What one demo payment did, seen from both ends."""

    link: str
    amount: int
    max_packet: int
    spsp_url: str
    destination: str
    sent: int
    delivered: int
    received: int
    packets: int
    elapsed: float
    error: str | None = None
    path: str = ""
    fallback: str | None = None

    @property
    def ok(self) -> bool:
        """The whole amount was sent, and the receiver got what the payer says it delivered."""
        return self.error is None and self.sent == self.amount and self.received == self.delivered

    @property
    def exchange_rate(self) -> str | None:
        """Delivered per unit sent, a decimal string (6 places); None when nothing was sent."""
        if not self.sent:
            return None
        return f"{Decimal(self.delivered) / Decimal(self.sent):.6f}"

    def summary(self) -> dict[str, Any]:
        """Plain data for `--json` (amounts as decimal strings)."""
        return {
            "link": self.link,
            "amount": str(self.amount),
            "max_packet_amount": str(self.max_packet),
            "spsp": self.spsp_url,
            "destination": self.destination,
            "sent": str(self.sent),
            "delivered": str(self.delivered),
            "received": str(self.received),
            "packets_received": self.packets,
            "elapsed_s": round(self.elapsed, 3),
            "delivered_per_s": round(self.delivered / self.elapsed) if self.elapsed else 0,
            "exchange_rate": self.exchange_rate,
            "path": self.path,
            "fallback": self.fallback,
            "ok": self.ok,
            "error": self.error,
        }


async def _plugins(link: str, stack: AsyncExitStack) -> tuple[Any, Any]:
    """(receiver, payer) v2 plugins on a fresh loopback link, both connected."""
    if link == "btp":
        from ilp_paychan.v2.plugin import BtpPlugin

        receiver: Any = BtpPlugin(
            {
                "listener": {"port": 0, "host": "127.0.0.1", "secret": SECRET},
                "address": PREFIX + "receiver",
                "ildcp": {"clientAddress": PREFIX + "payer", "assetCode": "EUR", "assetScale": 2},
            }
        )
        await receiver.connect()
        stack.push_async_callback(receiver.disconnect)
        port = listener_port(receiver)
        payer: Any = BtpPlugin({"server": f"btp+ws://payer:{SECRET}@127.0.0.1:{port}"})
    else:
        from ilp_paychan import Plugin
        from ilp_paychan.shell.demo import trustline_client_options, trustline_listener_options
        from ilp_paychan.v2.adapter import V1Adapter

        # stateful ("memory:"): the reference names this side <prefix>server
        listener = Plugin(trustline_listener_options(PREFIX, SECRET, "memory:"))
        receiver = V1Adapter(listener)
        await receiver.connect()
        stack.push_async_callback(receiver.disconnect)
        port = listener_port(listener)
        if port is None:
            raise RuntimeError("the listener plugin does not report its listening port")
        payer = V1Adapter(Plugin(trustline_client_options(SECRET, port)))
    await payer.connect()
    stack.push_async_callback(payer.disconnect)
    return receiver, payer


async def run_stream_demo(
    amount: int, max_packet: int, link: str, *, progress: bool = True
) -> StreamDemoResult:
    """Pay `amount` over a fresh loopback link and return what both ends saw."""
    from ilp_paychan import stream
    from ilp_paychan.shell.stream_commands import MaxPacketAmount, Progress
    from ilp_paychan.stream import spsp
    from ilp_paychan.stream.errors import StreamError

    received = 0
    packets = 0

    def on_money(_connection: Any, value: int, _total: int) -> None:
        nonlocal received, packets
        received += int(value)
        packets += 1

    async with AsyncExitStack() as stack:
        if link == "connector":
            from ilp_paychan.shell.demo_connector import connector_plugins

            receiver, payer, path = await connector_plugins(stack, max_packet)
        else:
            receiver, payer = await _plugins(link, stack)
            path = LOOPBACK_PATHS[link]
        # a BTP listener is the parent of its link: it knows its address, it cannot ask ILDCP
        address = PREFIX + "receiver" if link == "btp" else None
        server = stream.StreamServer(
            MaxPacketAmount(receiver, max_packet), server_secret=os.urandom(32), address=address
        )
        server.on_money(on_money)
        await server.listen()
        stack.push_async_callback(server.close)
        endpoint = spsp.SpspServer(server, "127.0.0.1", 0)
        await endpoint.start()
        stack.push_async_callback(endpoint.stop)

        answer = await spsp.query(endpoint.url)
        bar = Progress(amount, enabled=progress, after=0.0)
        started = time.perf_counter()
        error = None
        with bar:
            try:
                receipt = await stream.pay(
                    payer,
                    answer.destination_account,
                    answer.shared_secret,
                    str(amount),
                    timeout=DEADLINE,
                    on_progress=bar.update,
                )
                sent, delivered = int(receipt.amount_sent), int(receipt.amount_delivered)
            except StreamError as exc:
                sent, delivered = exc.amount_sent, exc.amount_delivered
                error = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 5.0
        while received < delivered and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # the last Fulfill's money event may trail the receipt
        return StreamDemoResult(
            link=link,
            amount=amount,
            max_packet=max_packet,
            spsp_url=endpoint.url,
            destination=answer.destination_account,
            sent=sent,
            delivered=delivered,
            received=received,
            packets=packets,
            elapsed=elapsed,
            error=error,
            path=path,
        )
    raise AssertionError("unreachable")  # pragma: no cover


def print_stream_report(result: StreamDemoResult) -> None:
    """The summary table, for a person to read."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    where = "through ilp-connector" if result.link == "connector" else f"{result.link} link"
    table = Table(title=f"STREAM payment over SPSP ({where} on loopback)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("path", result.path),
        ("SPSP endpoint", result.spsp_url),
        ("destination", _short(result.destination)),
        ("amount asked", str(result.amount)),
        ("sent (payer)", str(result.sent)),
        ("delivered (payer's receipt)", str(result.delivered)),
        ("received (receiver)", str(result.received)),
        ("max packet amount", str(result.max_packet)),
        ("packets received", str(result.packets)),
        ("exchange rate (delivered / sent)", result.exchange_rate or "-"),
        ("time (s)", f"{result.elapsed:.2f}"),
        ("delivered units per second", f"{result.summary()['delivered_per_s']:,}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if result.ok:
        console.print("[green]OK[/green]: the whole amount arrived and both ends agree")
    else:
        console.print(f"[red]FAILED[/red]: {result.error or 'the ends disagree'}", markup=True)


def _short(address: str) -> str:
    return address if len(address) <= 48 else address[:45] + "..."


def stream_demo_main(args: argparse.Namespace) -> int:
    """`ilp-paychan demo --stream`: 0 when the payment arrived whole, 1 if not, 128 + signal."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from ilp_paychan.shell.demo_connector import ConnectorUnavailableError, resolve_link

    try:
        link, fallback = resolve_link(args.link)
    except ConnectorUnavailableError as exc:
        print(f"ilp-paychan demo: --link connector: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ilp-paychan demo: stopped by SIGINT", file=sys.stderr)
        return 128 + signal.SIGINT
    if fallback is not None:
        print(
            f"ilp-paychan demo: {fallback}",
            file=sys.stderr if args.json else sys.stdout,
            flush=True,
        )

    async def stoppable() -> StreamDemoResult | int:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            run_stream_demo(
                args.amount,
                args.max_packet,
                link,
                progress=not args.no_progress and not args.json and sys.stdout.isatty(),
            )
        )
        stopped: list[int] = []

        def on_signal(signum: int) -> None:
            stopped.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await task
        except asyncio.CancelledError:
            if stopped:
                return 128 + stopped[0]
            raise
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    if not args.json:
        where = "through ilp-connector" if link == "connector" else f"on a {link} link"
        print(
            f"ilp-paychan demo: paying {args.amount} over STREAM, at most {args.max_packet} a "
            f"packet, {where} on loopback",
            flush=True,
        )
    try:
        outcome = run_on_loop(stoppable())
    except KeyboardInterrupt:
        outcome = 128 + signal.SIGINT
    except Exception as exc:
        print(f"ilp-paychan demo: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if isinstance(outcome, int):
        name = signal.Signals(outcome - 128).name
        print(f"ilp-paychan demo: stopped by {name}", file=sys.stderr)
        return outcome
    outcome.fallback = fallback
    if args.json:
        print(json.dumps(outcome.summary()), flush=True)
    else:
        print_stream_report(outcome)
    return 0 if outcome.ok else 1
