"""`ilp-paychan pay` and `ilp-paychan receive`: STREAM payments (RFC 29) set up over SPSP (RFC 9),
from the shell, over one plugin described by a config file of `serve`'s shape.

`receive` attaches the plugin, starts a STREAM server and an SPSP endpoint in front of it, prints
one `ready` line with the endpoint's URL, then one line per amount received, until SIGINT or
SIGTERM: then it stops answering SPSP, closes the STREAM server, disconnects the plugin and
exits 0.

`pay` attaches the plugin, asks the SPSP endpoint (a payment pointer or URL) for an address and
secret, pays over STREAM and prints what was sent and delivered. It exits 0 only when the whole
amount was sent and delivered at an acceptable rate; otherwise it prints one line on stderr and
exits with a code saying why (`EXIT_CODES`), so a script can tell a wrong pointer from a
receiver that refused.

With `--json` every line on stdout is one JSON object; amounts are decimal strings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Final, TextIO

from ilp_paychan.shell.config import ConfigError
from ilp_paychan.shell.event_loop import run as run_on_loop
from ilp_paychan.shell.exit_codes import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_LINK,
    EXIT_NO_ROUTE,
    EXIT_OK,
    EXIT_RATE,
    EXIT_REFUSED,
    EXIT_REJECTED,
    EXIT_SPSP,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from ilp_paychan.shell.plugin_config import load_plugin_spec
from ilp_paychan.v2.interface import DataHandler, MoneyHandler

#: Seconds a payment may run before a progress bar is drawn (on a terminal only).
PROGRESS_AFTER: Final = 0.5
#: How long `receive` gives the plugin to disconnect on shutdown.
SHUTDOWN_LIMIT: Final = 10.0


class Output:
    """Lines on stdout: `key=value` text, or one JSON object each with --json; flushed at once
    so a process reading the pipe sees each event when it happens."""

    def __init__(self, as_json: bool, stream: TextIO | None = None) -> None:
        self.as_json = as_json
        self._stream = stream or sys.stdout

    def line(self, event: str | None, **fields: Any) -> None:
        """Print one event (``event`` None: the fields alone, as `pay --json` prints them)."""
        if self.as_json:
            document = {"event": event, **fields} if event is not None else fields
            text = json.dumps(document)
        else:
            words = [event] if event is not None else []
            words += [f"{key}={value}" for key, value in fields.items()]
            text = " ".join(words)
        print(text, file=self._stream, flush=True)


def fail(command: str, message: str, code: int) -> int:
    """Print the one-line error of a failed command on stderr and return its exit code."""
    print(f"ilp-paychan {command}: {message}".replace("\n", " "), file=sys.stderr, flush=True)
    return code


# --- receive ---------------------------------------------------------------------------------


def receive_main(args: argparse.Namespace) -> int:
    """`ilp-paychan receive`: serve SPSP and report money until SIGINT/SIGTERM."""
    from ilp_paychan.stream.spsp import check_path

    out = Output(args.json)
    try:
        check_path(args.spsp_path)
    except ValueError as exc:
        return fail("receive", f"--spsp-path: {exc}".replace("path: ", "", 1), EXIT_USAGE)
    try:
        spec = load_plugin_spec(args.plugin_config, args.data_dir)
        plugin = spec.build()
        address = spec.listener_address()
    except ConfigError as exc:
        return fail("receive", str(exc), EXIT_USAGE)
    try:
        return run_on_loop(_receive(args, plugin, address, out))
    except KeyboardInterrupt:
        return EXIT_OK


async def _receive(args: argparse.Namespace, plugin: Any, address: str | None, out: Output) -> int:
    from ilp_paychan.stream import StreamServer
    from ilp_paychan.stream.spsp import SpspServer

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    host, port = args.spsp
    totals = _Totals()
    try:
        try:
            await _connect(plugin, stop)
        except _LinkError as exc:
            return fail("receive", str(exc), EXIT_LINK)
        if stop.is_set():
            return EXIT_OK
        if args.max_packet_amount is not None:
            plugin = MaxPacketAmount(plugin, args.max_packet_amount)
        server = StreamServer(plugin, server_secret=os.urandom(32), address=address)
        server.on_money(partial(_report, out, totals))
        try:
            await server.listen()
        except Exception as exc:
            return fail("receive", f"STREAM server: {type(exc).__name__}: {exc}", EXIT_LINK)
        spsp = SpspServer(server, host, port, args.spsp_path)
        try:
            await spsp.start()
        except OSError as exc:
            await server.close()
            return fail(
                "receive",
                f"--spsp {host}:{port}: cannot listen: {exc.strerror or exc}",
                EXIT_FAILED,
            )
        out.line("ready", spsp=spsp.url, account=server.address)
        await stop.wait()
        await spsp.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.close(), SHUTDOWN_LIMIT)
        out.line("stopped", total=str(totals.total))
        return EXIT_OK
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(plugin.disconnect(), SHUTDOWN_LIMIT)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


class MaxPacketAmount:
    """A v2 plugin that refuses incoming Prepares above `maximum` with F08 Amount Too Large
    (RFC 27, with the received and maximum amounts), as a connector does for an account's
    maximum packet amount; everything else goes to the wrapped plugin unchanged.

    Why `receive` has it: a receiver on a direct link (no connector in between) can still cap
    what one packet carries, and senders split their payment accordingly (RFC 29 §6.3).
    """

    def __init__(self, plugin: Any, maximum: int) -> None:
        self._plugin = plugin
        self.maximum = maximum

    @property
    def listener_port(self) -> int | None:
        """The wrapped plugin's listening port, if it has one."""
        port = getattr(self._plugin, "listener_port", None)
        return port if isinstance(port, int) else None

    async def connect(self) -> None:
        """Connect the wrapped plugin."""
        await self._plugin.connect()

    async def disconnect(self) -> None:
        """Disconnect the wrapped plugin."""
        await self._plugin.disconnect()

    def is_connected(self) -> bool:
        """Whether the wrapped plugin is connected."""
        return bool(self._plugin.is_connected())

    async def send_data(self, data: bytes) -> bytes:
        """Outgoing packets are not capped here: the path beyond decides."""
        reply: bytes = await self._plugin.send_data(data)
        return reply

    async def send_money(self, amount: str) -> None:
        """Settlement goes to the wrapped plugin unchanged."""
        await self._plugin.send_money(amount)

    def deregister_data_handler(self) -> None:
        """Remove the (guarded) data handler."""
        self._plugin.deregister_data_handler()

    def register_money_handler(self, handler: MoneyHandler) -> None:
        """Money handlers go to the wrapped plugin unchanged."""
        self._plugin.register_money_handler(handler)

    def deregister_money_handler(self) -> None:
        """Remove the wrapped plugin's money handler."""
        self._plugin.deregister_money_handler()

    def on(self, event: str, callback: Callable[..., Any]) -> None:
        """Events are the wrapped plugin's."""
        self._plugin.on(event, callback)

    def off(self, event: str, callback: Callable[..., Any]) -> None:
        """Events are the wrapped plugin's."""
        self._plugin.off(event, callback)

    def register_data_handler(self, handler: DataHandler) -> None:
        """Register `handler` behind the packet-size check."""
        from ilp_paychan.codec import ilp4
        from ilp_paychan.codec.errors import CodecError

        maximum = self.maximum

        async def guarded(data: bytes) -> bytes:
            try:
                amount = ilp4.decode_prepare(data).amount
            except CodecError:
                return await handler(data)  # the handler answers malformed packets itself
            if amount <= maximum:
                return await handler(data)
            return ilp4.encode_reject(
                ilp4.IlpReject(
                    code="F08",
                    triggered_by="",
                    message=f"packet amount {amount} exceeds the maximum of {maximum}",
                    data=ilp4.encode_amount_too_large_data(amount, maximum),
                )
            )

        self._plugin.register_data_handler(guarded)


class _Totals:
    """What `receive` has been paid: in all, and per connection (numbered from 1 in the order
    their first money came)."""

    def __init__(self) -> None:
        self.total = 0
        self.numbers: dict[int, int] = {}


def _report(out: Output, totals: _Totals, connection: Any, amount: int, total: int) -> None:
    totals.total += amount
    number = totals.numbers.setdefault(id(connection), len(totals.numbers) + 1)
    out.line(
        "money",
        amount=str(amount),
        total=str(totals.total),
        connection=number,
        connection_total=str(total),
    )


class _LinkError(Exception):
    pass


async def _connect(plugin: Any, stop: asyncio.Event, limit: float = 30.0) -> None:
    """Connect the plugin, retrying while its peer is not there yet (up to `limit` seconds)."""
    from ilp_paychan.errors import PeerTimeoutError, UnreachableError

    transient = (UnreachableError, PeerTimeoutError, OSError, TimeoutError)
    deadline = time.monotonic() + limit
    delay = 0.1
    while not stop.is_set():
        try:
            await plugin.connect()
            return
        except transient as exc:
            if time.monotonic() + delay > deadline:
                raise _LinkError(
                    f"the plugin could not connect within {limit:g} s: {type(exc).__name__}: {exc}"
                ) from None
        except Exception as exc:
            raise _LinkError(f"the plugin could not connect: {type(exc).__name__}: {exc}") from None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, 1.0)


# --- pay -------------------------------------------------------------------------------------


def pay_main(args: argparse.Namespace) -> int:
    """`ilp-paychan pay`: one STREAM payment to an SPSP receiver; the exit code says how it
    ended (`EXIT_CODES`)."""
    from ilp_paychan.stream.spsp import InvalidPointerError, endpoint_url

    out = Output(args.json)
    try:
        endpoint_url(args.to, allow_http=args.allow_http)
    except InvalidPointerError as exc:
        return fail("pay", f"--to: {exc.reason}", EXIT_USAGE)
    try:
        spec = load_plugin_spec(args.plugin_config, args.data_dir)
        plugin = spec.build()
    except ConfigError as exc:
        return fail("pay", str(exc), EXIT_USAGE)
    try:
        return run_on_loop(_pay(args, plugin, out))
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


async def _pay(args: argparse.Namespace, plugin: Any, out: Output) -> int:
    from ilp_paychan.stream import spsp

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stopped_by: list[int] = []

    def on_signal(signum: int) -> None:
        stopped_by.append(signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    deadline = time.monotonic() + args.timeout
    try:
        # SPSP first: a wrong or unreachable receiver is found without touching the link
        try:
            answer = await spsp.query(
                args.to, timeout=min(10.0, args.timeout), allow_http=args.allow_http
            )
        except spsp.InvalidPointerError as exc:
            return fail("pay", f"--to: {exc.reason}", EXIT_USAGE)
        except spsp.SpspTimeoutError as exc:
            return fail("pay", f"SPSP: {exc}", EXIT_TIMEOUT)
        except spsp.SpspError as exc:
            return fail("pay", f"SPSP: {exc}", EXIT_SPSP)
        try:
            await _connect(plugin, stop, limit=max(0.1, min(deadline - time.monotonic(), 30.0)))
        except _LinkError as exc:
            return fail("pay", str(exc), EXIT_LINK)
        if stop.is_set():
            return 128 + stopped_by[0]
        remaining = max(0.1, deadline - time.monotonic())
        return await _pay_stream(args, plugin, out, answer, remaining, stop, stopped_by)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(plugin.disconnect(), SHUTDOWN_LIMIT)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _pay_stream(
    args: argparse.Namespace,
    plugin: Any,
    out: Output,
    answer: Any,
    time_limit: float,
    stop: asyncio.Event,
    stopped_by: list[int],
) -> int:
    from ilp_paychan import stream
    from ilp_paychan.stream import errors

    amount: int = args.amount
    progress = Progress(amount, enabled=not args.json and sys.stdout.isatty())
    payment = asyncio.ensure_future(
        stream.pay(
            plugin,
            answer.destination_account,
            answer.shared_secret,
            str(amount),
            min_exchange_rate=args.min_rate,
            timeout=time_limit,
            options=stream.ConnectionOptions(max_packet_amount=args.max_packet_amount),
            on_progress=progress.update,
            receive=not args.send_only,
        )
    )
    stopping = asyncio.ensure_future(stop.wait())
    try:
        with progress:
            await asyncio.wait({payment, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not payment.done():
                payment.cancel()
                await asyncio.wait({payment})
                sent, delivered = progress.sent, progress.delivered
                _print_result(out, sent, delivered, answer, "stopped")
                return fail(
                    "pay",
                    f"stopped by {signal.Signals(stopped_by[0]).name} after sending {sent} "
                    f"(delivered {delivered})",
                    128 + stopped_by[0],
                )
            receipt = payment.result()
    except errors.StreamError as exc:
        return _report_failure(out, exc, answer)
    finally:
        stopping.cancel()
    sent, delivered = int(receipt.amount_sent), int(receipt.amount_delivered)
    _print_result(out, sent, delivered, answer, None)
    if sent != amount:
        return fail(
            "pay", f"only {sent} of {amount} was sent (delivered {delivered})", EXIT_INCOMPLETE
        )
    return EXIT_OK


def _print_result(
    out: Output,
    sent: int,
    delivered: int,
    answer: Any,
    error: str | None,
    in_flight: int | None = None,
) -> None:
    fields: dict[str, Any] = {
        "sent": str(sent),
        "delivered": str(delivered),
        "destination": answer.destination_account,
    }
    if error is not None:
        fields["error"] = error
    if in_flight is not None:
        fields["in_flight"] = str(in_flight)
    out.line(None, **fields)


def _report_failure(out: Output, exc: Any, answer: Any) -> int:
    """Print a failed payment's amounts (stdout) and its one-line error (stderr); returns the
    exit code. Money in packets abandoned at the deadline is named: it may still be paid out."""
    sent, delivered = exc.amount_sent, exc.amount_delivered
    in_flight = exc.amount_in_flight
    _print_result(out, sent, delivered, answer, type(exc).__name__, in_flight)
    moved = f"sent {sent}, delivered {delivered}"
    if in_flight:
        moved += f", {in_flight} in flight when abandoned: it may still be paid out"
    return fail("pay", f"{_summary(exc)} ({moved})", _exit_code_of(exc))


def _exit_code_of(exc: BaseException) -> int:
    from ilp_paychan.stream import errors

    table: tuple[tuple[type[BaseException], int], ...] = (
        (errors.NoRouteError, EXIT_NO_ROUTE),
        (errors.ExchangeRateError, EXIT_RATE),
        (errors.ReceiverRefusedError, EXIT_REFUSED),
        (errors.PaymentTimeoutError, EXIT_TIMEOUT),
        (errors.InsufficientLiquidityError, EXIT_REJECTED),
        (errors.RejectedError, EXIT_REJECTED),
        (errors.ConnectionClosedError, EXIT_REFUSED),
    )
    for kind, code in table:
        if isinstance(exc, kind):
            return code
    return EXIT_FAILED


def _summary(exc: BaseException) -> str:
    what = {
        "NoRouteError": "no route to the receiver",
        "ExchangeRateError": "exchange rate too low",
        "ReceiverRefusedError": "the receiver refused",
        "PaymentTimeoutError": "timed out",
        "InsufficientLiquidityError": "rejected by the network",
        "RejectedError": "rejected",
        "ConnectionClosedError": "the connection closed",
    }.get(type(exc).__name__, type(exc).__name__)
    detail = str(exc)
    return f"{what}: {detail}" if detail else what


class Progress:
    """A rich progress bar on a terminal, drawn only once a payment takes longer than
    `PROGRESS_AFTER`; records the amounts either way, for a report after a stop."""

    def __init__(self, total: int, *, enabled: bool, after: float = PROGRESS_AFTER) -> None:
        self.total = total
        self._after = after
        self.sent = 0
        self.delivered = 0
        self._enabled = enabled
        self._started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, sent: Any, delivered: Any) -> None:
        """Told by the payment as packets are fulfilled (totals so far)."""
        self.sent, self.delivered = int(sent), int(delivered)
        if not self._enabled:
            return
        if self._bar is None and time.monotonic() - self._started >= self._after:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("paying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            )
            self._task = self._bar.add_task("paying", total=self.total)
            self._bar.start()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.sent)
