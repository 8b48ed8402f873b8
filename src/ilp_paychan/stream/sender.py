"""The send loop of one connection: the only place its packets meet the plugin.

One task per connection asks the state machine (`Connection.next_packet`) for Prepares while
fewer than ``max_in_flight`` are outstanding and no backoff is running, sends each with
``plugin.send_data`` and hands the reply to `Connection.handle_reply`, which settles the
accounting and says how long to back off. Before the first money it measures the exchange rate
with volleys of test packets (`rate.RateProbe`). Time is kept by one scheduler per connection,
never a timer per packet: a single resume call after a backoff, and one watchdog, armed for the
earliest deadline in flight, that gives up on a Prepare whose expiry has passed (no connector
may pay it out then, so it counts as rejected and its money is sent again).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from ..codec.errors import CodecError
from ..codec.ilp4 import IlpReject, decode_reply
from .connection import Connection, OutgoingPacket, State, final_error_of
from .errors import ExchangeRateError, InsufficientLiquidityError, NoRouteError, StreamError
from .rate import RateProbe

if TYPE_CHECKING:
    from ..v2.interface import PluginV2

__all__ = ["EXPIRY_GRACE", "SendLoop"]

log = logging.getLogger(__name__)

#: Seconds after a Prepare's expiry before the sender stops waiting for its reply.
EXPIRY_GRACE: Final = 1.0


class SendLoop:
    """Sends a connection's packets over a v2 plugin (see the module docstring)."""

    def __init__(self, connection: Connection, plugin: PluginV2) -> None:
        self._conn = connection
        self._plugin = plugin
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[int, tuple[asyncio.Task[None], float]] = {}
        self._outgoing: dict[int, OutgoingPacket] = {}
        self._expired: set[int] = set()
        self._resume_at = 0.0
        self._resume_handle: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._stopped = False
        self._probing = False
        self._want_rate = False
        self._rate_done = asyncio.Event()
        self._rate_error: StreamError | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._validating: asyncio.Task[None] | None = None
        connection._sender = self

    # --- control -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop task (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """Something may be sendable now."""
        self._event.set()

    def stop(self) -> None:
        """No new packets; those in flight finish and are settled."""
        self._stopped = True
        self._event.set()
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        self._rate_done.set()
        if self._validating is not None:
            self._validating.cancel()

    def busy(self) -> bool:
        """Packets in flight, a probe running, or something queued to send."""
        return bool(self._in_flight) or self._probing or self._conn.has_work()

    async def drained(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - one deadline for the whole wait
    ) -> None:
        """Until no packet is in flight (their replies settle the totals)."""
        tasks = [t for t, _ in self._in_flight.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def abandon(self) -> int:
        """Stop waiting for the packets in flight (the caller's time ran out): their tasks are
        cancelled (and awaited, a second at most) and they stay unsettled. Returns their source
        amount: money whose fate is unknown (a connector may still fulfil them before they
        expire)."""
        amount = sum(out.source_amount for out in self._outgoing.values())
        self._outgoing.clear()
        tasks = [task for task, _ in self._in_flight.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        return amount

    async def ensure_rate(self) -> None:
        """Measure the exchange rate now if not known (a client does on connect).

        Raises:
            the `StreamError` that prevented it.
        """
        if self._conn.exchange_rate is not None:
            return
        self._want_rate = True
        self.start()
        self.wake()
        await self._rate_done.wait()
        if self._rate_error is not None:
            raise self._rate_error
        if self._conn.exchange_rate is None:
            raise self._conn.error or StreamError("the connection closed before the rate was known")

    async def send_close(self, code: int, message: str) -> None:
        """Tell the remote the connection is closed (an unfulfillable Prepare, amount 0)."""
        conn = self._conn
        if conn.destination_account is None:
            return
        try:
            out = conn.close_packet(code, message)
        except StreamError:
            return
        try:
            async with asyncio.timeout(conn.options.packet_timeout + EXPIRY_GRACE):
                await self._plugin.send_data(out.prepare)
        except Exception as exc:
            log.debug("ConnectionClose to %s not delivered: %r", conn.destination_account, exc)

    def send_close_soon(self, code: int, message: str) -> None:
        """`send_close` in the background (from a synchronous failure path)."""
        try:
            task = asyncio.get_running_loop().create_task(self.send_close(code, message))
        except RuntimeError:
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        conn = self._conn
        loop = asyncio.get_running_loop()
        try:
            while not self._stopped and conn.state is not State.CLOSED:
                self._event.clear()
                if (
                    conn.destination_account is not None
                    and conn.exchange_rate is None
                    and (self._want_rate or conn.needs_rate())
                ):
                    await self._probe()
                    continue
                if conn.pending_address is not None and self._validating is None:
                    self._validating = loop.create_task(self._validate())
                now = loop.time()
                if now < self._resume_at:
                    if self._resume_handle is None:
                        self._resume_handle = loop.call_at(self._resume_at, self._resume)
                else:
                    while len(self._in_flight) < conn.options.max_in_flight and not self._stopped:
                        out = conn.next_packet()
                        if out is None:
                            break
                        self._launch(out)
                    if not self._in_flight:
                        conn._changed.notify()
                await self._event.wait()
        except StreamError as exc:
            self._fail(exc)
        except Exception as exc:
            log.exception("STREAM send loop failed")
            self._fail(StreamError(f"internal error in the send loop: {exc!r}"))
        finally:
            self._rate_done.set()

    async def _validate(self) -> None:
        """One round trip to the address the remote moved to (RFC 29 §4.3.2)."""
        conn = self._conn
        try:
            out = conn.validation_packet()
            if out is None:
                return
            raw: bytes | None = None
            try:
                async with asyncio.timeout(conn.options.packet_timeout + EXPIRY_GRACE):
                    raw = await self._plugin.send_data(out.prepare)
            except Exception as exc:
                log.debug("validation packet to %s failed: %r", out.destination, exc)
            conn.validation_result(out, raw)
        except StreamError as exc:
            self._fail(exc)
        finally:
            self._validating = None
            self.wake()

    def _fail(self, exc: StreamError) -> None:
        if self._want_rate and self._conn.exchange_rate is None:
            self._rate_error = exc
        self._conn._fail(exc)

    def _resume(self) -> None:
        self._resume_handle = None
        self.wake()

    def _pause(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        resume = loop.time() + delay
        if resume > self._resume_at:
            self._resume_at = resume
            if self._resume_handle is not None:
                self._resume_handle.cancel()
            self._resume_handle = loop.call_at(resume, self._resume)

    # --- one packet ----------------------------------------------------------------------------

    def _launch(self, out: OutgoingPacket) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._conn.options.packet_timeout + EXPIRY_GRACE
        task = loop.create_task(self._send(out))
        self._in_flight[out.sequence] = (task, deadline)
        self._outgoing[out.sequence] = out
        self._arm_watchdog()

    async def _send(self, out: OutgoingPacket) -> None:
        raw: bytes | None = None
        try:
            raw = await self._plugin.send_data(out.prepare)
        except asyncio.CancelledError:
            if out.sequence not in self._expired:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except Exception as exc:
            log.debug("send_data failed for packet %d: %r", out.sequence, exc)
        finally:
            self._in_flight.pop(out.sequence, None)
            self._outgoing.pop(out.sequence, None)
            self._expired.discard(out.sequence)
            if not self._in_flight and self._watchdog is not None:
                # Nothing left to watch: an armed timer would keep the connection alive until
                # the last packet's deadline.
                self._watchdog.cancel()
                self._watchdog = None
        try:
            delay = self._conn.handle_reply(out, raw)
        except StreamError as exc:
            self._fail(exc)
            return
        if delay > 0:
            self._pause(delay)
        self.wake()

    def _arm_watchdog(self) -> None:
        if self._watchdog is not None or not self._in_flight:
            return
        earliest = min(deadline for _, deadline in self._in_flight.values())
        self._watchdog = asyncio.get_running_loop().call_at(earliest, self._check_expired)

    def _check_expired(self) -> None:
        self._watchdog = None
        now = asyncio.get_running_loop().time()
        for sequence, (task, deadline) in list(self._in_flight.items()):
            if deadline <= now and sequence not in self._expired:
                self._expired.add(sequence)
                task.cancel()
        self._arm_watchdog()

    # --- the exchange rate ---------------------------------------------------------------------

    async def _probe(self) -> None:
        conn = self._conn
        self._probing = True
        try:
            probe = RateProbe(conn.sizer.maximum)
            last_final: IlpReject | None = None
            while not self._stopped and conn.state is not State.CLOSED:
                amounts = probe.volley()
                if not amounts:
                    break
                outs = [conn.probe_packet(a) for a in amounts]
                replies = await self._volley([o.prepare for o in outs])
                for out, raw in zip(outs, replies, strict=True):
                    probe.record(conn.probe_result(out, raw))
                    if raw is not None:
                        try:
                            reply = decode_reply(raw)
                        except CodecError:
                            continue
                        if (
                            isinstance(reply, IlpReject)
                            and reply.code[:1] == "F"
                            and reply.code not in ("F08", "F99")
                        ):
                            last_final = reply
                if self._stopped:
                    return
                rate = probe.conclude()
                if rate is not None:
                    conn.set_rate(rate, probe.max_packet_amount)
                    self._rate_done.set()
                    return
                if probe.max_packet_amount == 0:
                    raise NoRouteError(
                        "the path's maximum packet amount is 0: it carries no money", code="F08"
                    )
                if last_final is not None and probe.rate is None and not probe.temporary:
                    raise final_error_of(last_final)
                if probe.temporary:
                    if probe.volleys > conn.options.max_retries:
                        raise InsufficientLiquidityError(
                            f"temporary errors ({probe.last_temporary}) on every test packet "
                            f"after {probe.volleys} tries",
                            code=probe.last_temporary or "T00",
                        )
                    await asyncio.sleep(conn._backoff(probe.volleys))
            if conn.state is State.CLOSED or self._stopped:
                return
            if probe.rate is not None and probe.rate > 0:
                conn.set_rate(probe.rate, probe.max_packet_amount)
                self._rate_done.set()
                return
            if probe.rate is None and probe.last_temporary is not None:
                raise InsufficientLiquidityError(
                    f"temporary errors ({probe.last_temporary}) on every test packet",
                    code=probe.last_temporary,
                )
            raise ExchangeRateError(
                "could not measure the exchange rate: no test packet reached the receiver"
                if probe.rate is None
                else "the path delivers nothing: every test packet arrived as 0"
            )
        finally:
            self._probing = False

    async def _volley(self, prepares: list[bytes]) -> list[bytes | None]:
        """Send test packets at once; one timer for the whole volley."""
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._plugin.send_data(p)) for p in prepares]
        done, pending = await asyncio.wait(
            tasks, timeout=self._conn.options.packet_timeout + EXPIRY_GRACE
        )
        for task in pending:
            task.cancel()
        results: list[bytes | None] = []
        for task in tasks:
            if task in done and not task.cancelled() and task.exception() is None:
                results.append(task.result())
            else:
                if task in done and not task.cancelled():
                    log.debug("test packet failed: %r", task.exception())
                results.append(None)
        return results
