"""`ilp-paychan demo`: a server and a client plugin on loopback paying each other.

Both plugins are stateful (SQLite files in a temporary directory) and talk over a real BTP
WebSocket on 127.0.0.1. Half of the payments go each way, `--in-flight` outstanding per
direction. The receiving side fulfils most of them, rejects a few and leaves a few to expire,
as the sender's plan says. At the end both sides' balances are read back from their stores: how
much each *changed* during this run must mirror the other's (server == -client) and equal what
this run's fulfilled payments add up to; otherwise the demo exits 1. Comparing changes, not
totals, lets `--store-dir` reuse the stores of an earlier run.

CTRL-C (SIGINT) or SIGTERM stops the payments, disconnects both plugins and removes the temporary
stores; the demo then prints one line and exits 128 + the signal number (130 for CTRL-C).

Needs no TTY: rich draws the progress bar only on a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import secrets
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from ilp_paychan.shell.event_loop import run as run_on_loop
from ilp_paychan.shell.serve import listener_port

PREFIX = "demo.trustline."
SECRET = "demo-shared-secret"
#: Fulfilled payments have plenty of time; the ones meant to expire have little.
LONG_EXPIRY = timedelta(seconds=30)
SHORT_EXPIRY = timedelta(seconds=1)
#: The whole demo gives up after this long (it normally takes seconds).
DEADLINE = 120.0
#: How long to wait, at the end, for the last expiries on the receiving sides.
DRAIN_LIMIT = 5.0
#: After a stop signal, how long the payments under way get to settle (the expiring ones need
#: SHORT_EXPIRY), so that a later run over the same stores finds nothing left in flight.
STOP_GRACE = SHORT_EXPIRY.total_seconds() + 2.0

Outcome = Literal["fulfilled", "rejected", "expired"]
Plan = Literal["fulfill", "reject", "expire"]
T = TypeVar("T")
#: The signals that stop the demo cleanly.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DemoInterrupted(Exception):
    """A stop signal ended the demo early; its plugins were disconnected before this is raised."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class StopSignal:
    """Remembers the first stop signal, and cuts short the work that is running when it comes."""

    def __init__(self) -> None:
        self.signum = 0
        self._event = asyncio.Event()

    def set(self, signum: int) -> None:
        """Ask the demo to stop (a signal handler); idempotent, the first signal is kept."""
        if not self.signum:
            self.signum = signum
        self._event.set()

    @property
    def asked(self) -> bool:
        """Whether a stop signal has come."""
        return self.signum != 0

    def raise_if_set(self) -> None:
        """Raise DemoInterrupted once a stop was asked for."""
        if self.signum:
            raise DemoInterrupted(self.signum)

    async def race(self, work: Coroutine[Any, Any, T], limit: float, grace: float = 0.0) -> T:
        """`work`'s result, unless `limit` seconds pass (TimeoutError) or a stop comes
        (DemoInterrupted). After a stop, `work` gets `grace` seconds to end by itself; then,
        as after a timeout, it is cancelled and has unwound before this raises, so the caller
        can still disconnect its plugins in order."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait({task, stopped}, timeout=limit, return_when="FIRST_COMPLETED")
            if self.asked and not task.done() and grace > 0:
                await asyncio.wait({task}, timeout=grace)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        self.raise_if_set()
        if task.cancelled():
            raise TimeoutError(f"the demo did not finish within {limit:.0f} s")
        return task.result()


@dataclass
class DirectionStats:
    """What one direction of payments produced."""

    label: str
    planned: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    fulfilled_amount: int = 0
    round_trips: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class DemoResult:
    """One run's numbers; balances are the stores' totals before and after this run."""

    server_before: str
    client_before: str
    server_balance: str
    client_balance: str
    expected_server_change: int
    server_prepared: int
    client_prepared: int
    directions: list[DirectionStats]
    elapsed: float
    settle_elapsed: float

    @property
    def server_change(self) -> int:
        """How this run moved the server's balance (a reused store starts elsewhere than 0)."""
        return int(self.server_balance) - int(self.server_before)

    @property
    def client_change(self) -> int:
        """How this run moved the client's balance."""
        return int(self.client_balance) - int(self.client_before)

    @property
    def balanced(self) -> bool:
        """This run moved the same money on both sides, and exactly what it fulfilled."""
        return self.server_change == -self.client_change == self.expected_server_change

    @property
    def all_settled(self) -> bool:
        """Every planned payment reached an outcome (none was left waiting)."""
        return all(sum(d.outcomes.values()) == sum(d.planned.values()) for d in self.directions)


def plan_payments(count: int) -> list[Plan]:
    """Which payments of one direction get rejected or expire; the expiring ones go first so
    their expiry runs out while the rest are still being paid."""
    if count < 3:
        return ["fulfill"] * count
    expiring = max(1, count // 200)
    rejected = max(1, count // 50)
    expire: Plan = "expire"
    fulfill: Plan = "fulfill"
    plan = [expire] * expiring + [fulfill] * (count - expiring)
    step = max(1, (count - expiring) // rejected)
    for k in range(rejected):
        plan[expiring + k * step + step // 2] = "reject"
    return plan


def amount_of(index: int, direction: int) -> int:
    """Deterministic amounts (1 to 997 one way, 1 to 499 the other) so runs are comparable
    and the final balance is not zero."""
    return index * 7919 % (997 if direction == 0 else 499) + 1


class _Receiver:
    """The receiving side's behaviour: follows the sender's plan, as a real receiver follows
    its own policy (an unknown condition, a quote that ran out)."""

    def __init__(
        self, plugin: Any, book: dict[str, tuple[Plan, bytes]], stats: DirectionStats
    ) -> None:
        self._plugin = plugin
        self._book = book
        self._stats = stats
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def __call__(self, transfer: dict[str, Any]) -> None:
        entry = self._book.get(transfer["id"])
        if self._closed or entry is None or entry[0] == "expire":
            return
        task = asyncio.get_running_loop().create_task(self._settle(transfer["id"], *entry))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self._stats.errors.append(f"receiver: {type(error).__name__}: {error}")

    async def close(self) -> None:
        """Answer no more transfers; cancel the answers still being sent (a stopped demo)."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def _settle(self, transfer_id: str, plan: Plan, preimage: bytes) -> None:
        from ilp_paychan.codec.condition import b64url_encode

        if plan == "fulfill":
            await self._plugin.fulfill_condition(transfer_id, b64url_encode(preimage))
        else:
            await self._plugin.reject_incoming_transfer(
                transfer_id,
                {
                    "code": "F99",
                    "name": "Application Error",
                    "additional_info": {"message": "the demo refuses this one"},
                },
            )


class _Sender:
    """Sends one direction's payments, at most `in_flight` outstanding, and records outcomes."""

    def __init__(
        self,
        plugin: Any,
        book: dict[str, tuple[Plan, bytes]],
        stats: DirectionStats,
        in_flight: int,
        advance: Any,
        direction: int,
        stop: StopSignal,
    ) -> None:
        self._direction = direction
        self._stop = stop
        self._plugin = plugin
        self._book = book
        self._stats = stats
        self._slots = asyncio.Semaphore(in_flight)
        self._advance = advance
        self._waiting: dict[str, tuple[asyncio.Future[Outcome], float]] = {}
        plugin.on("outgoing_fulfill", self._on_fulfill)
        plugin.on("outgoing_reject", self._on_reject)
        plugin.on("outgoing_cancel", self._on_cancel)

    def _settle(self, transfer: dict[str, Any], outcome: Outcome) -> None:
        waiting = self._waiting.pop(transfer.get("id", ""), None)
        if waiting is None:
            return
        future, started = waiting
        if outcome == "fulfilled":
            self._stats.round_trips.append(time.perf_counter() - started)
        if not future.done():
            future.set_result(outcome)

    def _on_fulfill(self, transfer: dict[str, Any], *_: Any) -> None:
        self._settle(transfer, "fulfilled")

    def _on_reject(self, transfer: dict[str, Any], reason: Any = None, *_: Any) -> None:
        code = reason.get("code") if isinstance(reason, dict) else None
        self._settle(transfer, "expired" if code == "R00" else "rejected")

    def _on_cancel(self, transfer: dict[str, Any], *_: Any) -> None:
        self._settle(transfer, "expired")

    async def run(self, plan: list[Plan]) -> None:
        for plan_kind in plan:
            self._stats.planned[plan_kind] += 1
        # a task group, so that cancelling `run` also cancels and awaits the payments under way
        async with asyncio.TaskGroup() as payments:
            for index, kind in enumerate(plan):
                await self._slots.acquire()
                if self._stop.asked:  # send no more; the ones under way finish
                    self._slots.release()
                    break
                payments.create_task(self._pay(index, kind))

    async def _pay(self, index: int, kind: Plan) -> None:
        from ilp_paychan.codec.condition import b64url_encode

        transfer_id = str(uuid.uuid4())
        amount = amount_of(index, self._direction)
        try:
            preimage = secrets.token_bytes(32)
            expiry = SHORT_EXPIRY if kind == "expire" else LONG_EXPIRY
            transfer = {
                "id": transfer_id,
                "amount": str(amount),
                "to": self._plugin.get_peer_account(),
                "executionCondition": b64url_encode(hashlib.sha256(preimage).digest()),
                "expiresAt": (datetime.now(UTC) + expiry).isoformat(timespec="milliseconds"),
            }
            self._book[transfer_id] = (kind, preimage)
            future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
            self._waiting[transfer_id] = (future, time.perf_counter())
            await self._plugin.send_transfer(transfer)
            outcome = await future
        except Exception as exc:  # one failed payment is counted, the others go on
            self._waiting.pop(transfer_id, None)
            self._stats.errors.append(f"{type(exc).__name__}: {exc}")
            return
        finally:
            self._slots.release()
            self._advance()
        self._stats.outcomes[outcome] += 1
        if outcome == "fulfilled":
            self._stats.fulfilled_amount += amount


def trustline_listener_options(prefix: str, secret: str, store: str) -> dict[str, Any]:
    """The demos' v1 trustline listener on 127.0.0.1 (an OS-picked port): stateful on `store`,
    limits wide enough never to refuse a demo payment, the reference's `info` naming itself
    `<prefix>server` as its connector."""
    return {
        "listener": {"port": 0, "host": "127.0.0.1"},
        "incomingSecret": secret,
        "prefix": prefix,
        "info": {
            "prefix": prefix,
            "currencyCode": "EUR",
            "currencyScale": 2,
            "connectors": [prefix + "server"],
        },
        "maxBalance": str(10**15),
        "minBalance": str(-(10**15)),
        "store": store,
    }


def trustline_client_options(secret: str, port: int, store: str | None = None) -> dict[str, Any]:
    """The demos' v1 trustline client of the listener on 127.0.0.1:`port`, with the same wide
    limits (stateless without `store`)."""
    options: dict[str, Any] = {
        "server": f"btp+ws://:{secret}@127.0.0.1:{port}",
        "maxBalance": str(10**15),
        "minBalance": str(-(10**15)),
    }
    if store is not None:
        options["store"] = store
    return options


async def run_demo(
    payments: int,
    in_flight: int,
    store_dir: Path,
    *,
    progress: bool = True,
    stop: StopSignal | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    """Runs the whole demo and returns its numbers (the stores are left in `store_dir`).

    Once `stop` is set no new payment starts, the ones under way get STOP_GRACE seconds to
    settle (then they are cancelled), both plugins disconnect and DemoInterrupted is raised.
    `say` gets a line when the payments start (and when leftovers of an earlier run must settle
    first), so a caller can tell the demo is under way.
    """
    from ilp_paychan import Plugin

    stop = stop if stop is not None else StopSignal()

    server = Plugin(
        trustline_listener_options(
            PREFIX, SECRET, "sqlite:///" + str((store_dir / "server.db").absolute())
        )
    )
    started = time.perf_counter()
    async with AsyncExitStack() as stack:
        await server.connect()
        stack.push_async_callback(server.disconnect)
        port = listener_port(server)
        if port is None:
            raise RuntimeError("the server plugin does not report its listening port")
        client = Plugin(
            trustline_client_options(
                SECRET, port, "sqlite:///" + str((store_dir / "client.db").absolute())
            )
        )
        await client.connect()
        stack.push_async_callback(client.disconnect)
        server_log, client_log = server.transfer_log, client.transfer_log
        stop.raise_if_set()

        # With --store-dir, an earlier run may have left transfers in flight; the change this run
        # makes is only its own once those have settled (fulfilled by a resent Fulfill, or expired).
        leftovers = len(await server_log.list_prepared()) + len(await client_log.list_prepared())
        if leftovers:
            say(f"waiting for {leftovers} transfer(s) of an earlier run to settle")
            limit = (LONG_EXPIRY + SHORT_EXPIRY).total_seconds() + DRAIN_LIMIT
            await stop.race(_until_nothing_prepared(server_log, client_log, limit=limit), DEADLINE)
        server_before = await server_log.get_balance()
        client_before = await client_log.get_balance()

        half = payments // 2
        plans = {
            "client → server": plan_payments(payments - half),
            "server → client": plan_payments(half),
        }
        book: dict[str, tuple[Plan, bytes]] = {}
        directions = [DirectionStats(label) for label in plans]
        for plugin, incoming in ((server, directions[0]), (client, directions[1])):
            receiver = _Receiver(plugin, book, incoming)
            plugin.on("incoming_prepare", receiver)
            stack.push_async_callback(receiver.close)  # runs before the disconnects

        bar = _ProgressBar(payments, enabled=progress)
        say("paying; press CTRL-C to stop")
        paying = time.perf_counter()
        with bar:
            senders = [
                _Sender(client, book, directions[0], in_flight, bar.advance, 0, stop),
                _Sender(server, book, directions[1], in_flight, bar.advance, 1, stop),
            ]
            await stop.race(_pay_all(senders, list(plans.values())), DEADLINE, STOP_GRACE)
        settle_elapsed = time.perf_counter() - paying

        # each side runs its own expiry timer: the receiver's may fire a moment after the sender's
        await stop.race(
            _until_nothing_prepared(server_log, client_log, limit=DRAIN_LIMIT), DEADLINE
        )
        result = DemoResult(
            server_before=server_before,
            client_before=client_before,
            server_balance=await server_log.get_balance(),
            client_balance=await client_log.get_balance(),
            expected_server_change=directions[0].fulfilled_amount - directions[1].fulfilled_amount,
            server_prepared=len(await server_log.list_prepared()),
            client_prepared=len(await client_log.list_prepared()),
            directions=directions,
            elapsed=0.0,
            settle_elapsed=settle_elapsed,
        )
    stop.raise_if_set()
    result.elapsed = time.perf_counter() - started
    return result


async def _pay_all(senders: list[_Sender], plans: list[list[Plan]]) -> None:
    """Both directions at once; cancelling this cancels every payment under way."""
    async with asyncio.TaskGroup() as group:
        for sender, plan in zip(senders, plans, strict=True):
            group.create_task(sender.run(plan))


async def _until_nothing_prepared(*logs: Any, limit: float) -> None:
    deadline = time.monotonic() + limit
    for log in logs:
        while await log.list_prepared() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


class _ProgressBar:
    def __init__(self, total: int, *, enabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("payments"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not enabled,
            transient=False,
        )
        self._task = self._progress.add_task("payments", total=total)

    def __enter__(self) -> _ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def advance(self) -> None:
        self._progress.advance(self._task)


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(result: DemoResult) -> dict[str, Any]:
    """The demo's numbers as plain data (what `--json` prints)."""
    trips = [t for d in result.directions for t in d.round_trips]
    settled = sum(d.outcomes["fulfilled"] + d.outcomes["rejected"] for d in result.directions)
    return {
        "balances": {
            "server": result.server_balance,
            "client": result.client_balance,
            "server_before": result.server_before,
            "client_before": result.client_before,
            "server_change": str(result.server_change),
            "client_change": str(result.client_change),
            "expected_server_change": str(result.expected_server_change),
            "agree": result.balanced,
        },
        "prepared_left": {"server": result.server_prepared, "client": result.client_prepared},
        "directions": {
            d.label.replace(" → ", "_to_"): {
                "planned": dict(d.planned),
                "outcomes": dict(d.outcomes),
                "fulfilled_amount": str(d.fulfilled_amount),
                "errors": len(d.errors),
            }
            for d in result.directions
        },
        "elapsed_s": round(result.elapsed, 3),
        "throughput_per_s": round(settled / result.settle_elapsed, 1)
        if result.settle_elapsed
        else 0,
        "round_trip_ms": {
            name: round(percentile(trips, q) * 1000, 2)
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        },
    }


def print_report(result: DemoResult) -> None:
    """Print the balances and each direction's outcomes as tables, for a person to read."""
    from rich.console import Console
    from rich.table import Table

    data = summary(result)
    console = Console()
    balances = Table(title="Balances (from each side's store)")
    balances.add_column("side")
    for column in ("before", "after", "change", "prepared left"):
        balances.add_column(column, justify="right")
    for side, before, after, change, prepared in (
        (
            "server",
            result.server_before,
            result.server_balance,
            result.server_change,
            result.server_prepared,
        ),
        (
            "client",
            result.client_before,
            result.client_balance,
            result.client_change,
            result.client_prepared,
        ),
    ):
        balances.add_row(side, before, after, f"{change:+d}", str(prepared))
    console.print(balances)

    outcomes = Table(title="Payments by outcome (this run)")
    outcomes.add_column("direction")
    for column in ("fulfilled", "rejected", "expired", "errors", "amount fulfilled"):
        outcomes.add_column(column, justify="right")
    for d in result.directions:
        outcomes.add_row(
            d.label,
            str(d.outcomes["fulfilled"]),
            str(d.outcomes["rejected"]),
            str(d.outcomes["expired"]),
            str(len(d.errors)),
            str(d.fulfilled_amount),
        )
    console.print(outcomes)

    rt = data["round_trip_ms"]
    speed = Table(title="Speed")
    speed.add_column("measure")
    speed.add_column("value", justify="right")
    speed.add_row("settled payments per second", f"{data['throughput_per_s']:.0f}")
    speed.add_row("round trip p50 / p90 / p99 (ms)", f"{rt['p50']} / {rt['p90']} / {rt['p99']}")
    speed.add_row("total time (s)", f"{result.elapsed:.2f}")
    console.print(speed)
    if result.balanced and result.all_settled:
        console.print("[green]OK[/green]: server change == -client change == fulfilled sum")
    else:
        console.print("[red]MISMATCH[/red]: balance changes or outcomes do not add up")
        for d in result.directions:
            for error in d.errors[:5]:
                console.print(f"  {d.label}: {error}", markup=False)


def demo_main(args: argparse.Namespace) -> int:
    """`ilp-paychan demo`: the exit code is 0 if everything adds up, 1 if not, 128 + the signal
    number when stopped by one (130 for CTRL-C)."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    kept = args.store_dir is not None
    try:
        with tempfile.TemporaryDirectory(prefix="ilp-paychan-demo-") as tmp:
            store_dir = Path(args.store_dir) if kept else Path(tmp)
            outcome = _run(args, store_dir)
        if isinstance(outcome, DemoResult):
            if args.json:
                print(json.dumps(summary(outcome)))
            else:
                print_report(outcome)
            sys.stdout.flush()
            return 0 if outcome.balanced and outcome.all_settled else 1
    except KeyboardInterrupt:  # CTRL-C outside the event loop's own handling
        outcome = DemoInterrupted(signal.SIGINT)
    if isinstance(outcome, DemoInterrupted):
        stores = f"the stores are kept in {args.store_dir}" if kept else "temporary stores removed"
        print(f"ilp-paychan demo: stopped by {outcome}; {stores}", file=sys.stderr)
        return 128 + outcome.signum
    print(f"ilp-paychan demo: failed: {type(outcome).__name__}: {outcome}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace, store_dir: Path) -> DemoResult | Exception:
    """The demo's result, or why it ended without one (a stop signal or a failure)."""
    import logging

    store_dir.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        if not args.json:
            print(f"ilp-paychan demo: {line}", flush=True)

    say(
        f"{args.payments} payments, {args.in_flight} in flight per direction, stores in {store_dir}"
    )

    async def stoppable() -> DemoResult:
        loop = asyncio.get_running_loop()
        stop = StopSignal()

        def on_signal(signum: int) -> None:
            stop.set(signum)
            loop.remove_signal_handler(signum)  # a second one interrupts at once
            # the plugins warn when the peer goes away mid-transfer: expected while stopping
            logging.getLogger("ilp_paychan").setLevel(logging.ERROR)

        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await run_demo(
                args.payments,
                args.in_flight,
                store_dir,
                progress=not args.no_progress and not args.json,
                stop=stop,
                say=say,
            )
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)

    main = stoppable()
    try:
        return run_on_loop(main)
    except (DemoInterrupted, TimeoutError, OSError, RuntimeError) as exc:
        return exc
    except asyncio.CancelledError:
        # CTRL-C while the loop was starting, before `stoppable` took SIGINT over: asyncio's
        # own handler cancelled the main task (and, in a narrow window, says so this way)
        return DemoInterrupted(signal.SIGINT)
    finally:
        main.close()  # never started if CTRL-C came first: no "never awaited" warning
