"""One STREAM stream (RFC 29 §4.4): money and bytes in both directions, with flow control.

A `DataAndMoneyStream` belongs to a `Connection`, which owns the packets. The stream keeps the
counts and buffers; the connection's state machine takes money and data from it for each packet
(`_take_*`), settles them when the packet's reply comes (`_settle`/`_undo`), and feeds what
arrives (`_receive_money`, `_receive_data`). Application methods (`send_money`, `write`, `read`,
`close`) only change those counts and wait; they never send anything themselves.

Amounts are ints: ``total_sent`` and ``send_max`` in our units, ``total_received`` and
``receive_max`` in ours too (money arriving is in the receiver's units, which are ours here),
``total_delivered`` in the remote's units as its replies reported them.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ._oer import UINT64_MAX
from ._signal import Changed
from .errors import ConnectionClosedError, PaymentTimeoutError, ReceiverRefusedError, StreamError
from .frames import ErrorCode

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["DEFAULT_STREAM_WINDOW", "DataAndMoneyStream", "parse_amount"]

#: Bytes a stream buffers for the reader before the sender must wait (Node's stream default,
#: which ilp-protocol-stream assumes of a peer until told otherwise).
DEFAULT_STREAM_WINDOW: Final = 16384

MoneyCallback = Callable[[int], object]


def parse_amount(value: object, field: str = "amount") -> int:
    """An amount from an int or a decimal string of a non-negative integer up to 2^64 - 1.

    Raises:
        TypeError: a float, bool or other type.
        ValueError: negative, too large, or not an integer string.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{field}: expected int or decimal str, got {type(value).__name__}")
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or not text.isascii():
            raise ValueError(f"{field}: {value!r} is not a non-negative integer")
        value = int(text)
    if not 0 <= value <= UINT64_MAX:
        raise ValueError(f"{field}: {value} is outside 0..{UINT64_MAX}")
    return value


class DataAndMoneyStream:
    """A logical channel of money and ordered bytes inside a connection.

    Client-opened streams have odd ids, server-opened even ones (RFC 29 §4.4.1). Open one with
    `Connection.create_stream`; the remote's come from `Connection.accept_stream` or the
    connection's ``on_stream`` callback.
    """

    def __init__(
        self,
        connection: Connection,
        stream_id: int,
        *,
        receive_max: int = UINT64_MAX,
        window: int = DEFAULT_STREAM_WINDOW,
    ) -> None:
        self.id = stream_id
        self._connection = connection
        self._changed = Changed()
        # money out
        self._send_max = 0
        self._total_sent = 0
        self._total_delivered = 0
        self._holds: dict[int, tuple[int, int]] = {}  # sequence -> (source, expected delivery)
        self._held = 0
        self._in_flight_delivery = 0
        self._remote_receive_max = UINT64_MAX
        self._remote_received = 0
        self._blocked = False
        # money in
        self._receive_max = receive_max
        self._total_received = 0
        self._money_callbacks: list[MoneyCallback] = []
        # data out
        self._out: deque[bytes] = deque()
        self._out_bytes = 0
        self._out_offset = 0
        self._retry: list[tuple[int, bytes]] = []
        self._in_flight_data: dict[int, list[tuple[int, bytes]]] = {}
        self._remote_max_offset = DEFAULT_STREAM_WINDOW
        # data in
        self._window = window
        self._chunks: dict[int, bytes] = {}  # out-of-order data by offset; never overlapping
        self._chunk_starts: list[int] = []  # the keys of _chunks, sorted
        self._ready = bytearray()
        self._ready_end = 0
        self._consumed = 0
        self._max_incoming_offset = 0
        self._advertised_consumed = 0
        # lifecycle
        self._closing = False  # no new money or data; StreamClose once flushed
        self._close_queued = False
        self._close_acked = False
        self._remote_closed = False
        self._error: StreamError | None = None
        self._close_code: int = ErrorCode.NO_ERROR
        self._close_message = ""
        self.receipt: bytes | None = None
        """The latest STREAM receipt (RFC 39) the receiver sent for this stream, if any."""

    # --- public state --------------------------------------------------------------------------

    @property
    def total_sent(self) -> int:
        """Our units sent on this stream in fulfilled packets."""
        return self._total_sent

    @property
    def total_delivered(self) -> int:
        """The remote's units that arrived for this stream, as its Fulfills reported (a share of
        each packet's amount when a packet carried several streams)."""
        return self._total_delivered

    @property
    def total_received(self) -> int:
        """Our units received on this stream."""
        return self._total_received

    @property
    def send_max(self) -> int:
        """Total this stream is to send (`send_money` raises it)."""
        return self._send_max

    @property
    def receive_max(self) -> int | None:
        """Total this stream accepts; None when unlimited."""
        return None if self._receive_max == UINT64_MAX else self._receive_max

    @property
    def is_open(self) -> bool:
        """False once closed by either side or failed."""
        return not (self._closing or self._remote_closed or self._error is not None)

    # --- money ---------------------------------------------------------------------------------

    def set_receive_max(self, amount: int | str | None) -> None:
        """Accept up to ``amount`` in total on this stream (None: unlimited); tells the remote.

        RFC 29 §4.4.4 forbids lowering an advertised limit, so the new limit may not be below
        what was received, nor below a limit already advertised.

        Raises:
            ValueError: below ``total_received`` or below the current limit.
        """
        new = UINT64_MAX if amount is None else parse_amount(amount, "receive_max")
        if new < self._total_received:
            raise ValueError(f"receive_max: {new} is below total_received {self._total_received}")
        if new < self._receive_max:
            raise ValueError(f"receive_max: {new} is below the current limit {self._receive_max}")
        if new != self._receive_max:
            self._receive_max = new
            self._connection._window_changed()

    def on_money(self, callback: MoneyCallback) -> None:
        """Call ``callback(amount)`` for each amount this stream receives (in our units)."""
        self._money_callbacks.append(callback)

    async def send_money(
        self,
        amount: int | str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - one deadline for the whole wait
        wait_if_blocked: bool = False,
    ) -> None:
        """Send ``amount`` more on this stream; returns once all of it was fulfilled.

        Split into as many packets as the path and the receiver's limits need. If the receiver's
        receive maximum leaves no room, this raises `ReceiverRefusedError` unless
        ``wait_if_blocked`` (then it waits for the receiver to raise its limit). On any error or
        timeout, what was not sent yet is withdrawn (nothing more goes out for this call).

        Raises:
            ConnectionClosedError: the stream or connection is closed.
            ReceiverRefusedError, ExchangeRateError, RejectedError, InsufficientLiquidityError:
                the connection failed (see `stream.errors`).
            PaymentTimeoutError: ``timeout`` seconds passed first.
        """
        value = parse_amount(amount)
        self._check_open()
        target = self._send_max + value
        if target > UINT64_MAX:
            raise ValueError(f"amount: the stream's total would exceed {UINT64_MAX}")
        self._send_max = target
        self._blocked = False
        self._connection._wake()
        try:
            async with asyncio.timeout(timeout):
                while self._total_sent < target:
                    self._raise_if_failed(target)
                    if self._blocked and not wait_if_blocked:
                        raise ReceiverRefusedError(
                            f"the receiver accepts at most {self._remote_receive_max} on stream "
                            f"{self.id} and has {self._remote_received}; "
                            f"{target - self._total_sent} left to send",
                        )
                    await self._changed.wait()
        except TimeoutError:
            self._withdraw()
            raise self._connection._stamp(
                PaymentTimeoutError(
                    f"timed out after {timeout} s with {target - self._total_sent} of "
                    f"{value} still to send on stream {self.id}"
                )
            ) from None
        except StreamError as exc:
            self._withdraw()
            raise self._connection._stamp(exc) from None
        except BaseException:
            self._withdraw()
            raise

    def _withdraw(self) -> None:
        self._send_max = self._total_sent + self._held
        self._connection._wake()

    # --- data ----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue bytes to send; they leave with the next packets (see `drain`).

        Raises:
            ConnectionClosedError: the stream or connection is closed.
            TypeError: not bytes.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data: expected bytes, got {type(data).__name__}")
        self._check_open()
        if data:
            self._out.append(bytes(data))
            self._out_bytes += len(data)
            self._connection._wake()

    async def drain(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - one deadline for the whole wait
    ) -> None:
        """Wait until every byte written so far was accepted by the remote.

        Raises:
            the connection's error if it fails first; `PaymentTimeoutError` after ``timeout``.
        """
        try:
            async with asyncio.timeout(timeout):
                while self._out_bytes or self._retry or self._in_flight_data:
                    self._raise_if_failed(None)
                    if self._remote_closed:
                        raise ReceiverRefusedError(
                            f"the remote closed stream {self.id} before all data was sent"
                        )
                    await self._changed.wait()
        except TimeoutError:
            raise PaymentTimeoutError(
                f"timed out after {timeout} s draining stream {self.id}"
            ) from None

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all buffered if -1), waiting for at least one; b"" at the end of
        the stream (the remote closed it). Reading frees room the remote may then fill.

        Raises:
            the connection's error if it failed with nothing left to read.
        """
        while not self._ready:
            if self._remote_closed or self._closing:
                return b""
            if self._error is not None:
                raise self._error
            await self._changed.wait()
        size = len(self._ready) if n < 0 else min(n, len(self._ready))
        chunk = bytes(self._ready[:size])
        del self._ready[:size]
        self._consumed += size
        if self._consumed_since_advert() * 2 >= self._window:
            self._connection._window_changed()
        self._connection._data_read(size)
        return chunk

    def _consumed_since_advert(self) -> int:
        return self._consumed - self._advertised_consumed

    # --- closing -------------------------------------------------------------------------------

    async def close(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - one deadline for the whole wait
    ) -> None:
        """Finish: wait until the money and data queued are sent, then tell the remote the
        stream is closed (StreamClose, RFC 29 §4.4.5). Idempotent.

        Raises:
            the connection's error if the money or data cannot be sent;
            `PaymentTimeoutError` after ``timeout`` (the stream is closed anyway).
        """
        if self._closing or self._remote_closed or self._error is not None:
            return
        try:
            async with asyncio.timeout(timeout):
                while (
                    self._total_sent < self._send_max
                    or self._held
                    or self._out_bytes
                    or self._retry
                    or self._in_flight_data
                ):
                    if self._error is not None or self._remote_closed:
                        break
                    if self._blocked:
                        break
                    await self._changed.wait()
        except TimeoutError:
            raise PaymentTimeoutError(
                f"timed out after {timeout} s flushing stream {self.id}"
            ) from None
        finally:
            self._begin_close(ErrorCode.NO_ERROR, "")

    def _begin_close(self, code: int, message: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._close_code = code
        self._close_message = message
        self._send_max = self._total_sent + self._held
        self._connection._stream_closing(self)
        self._changed.notify()

    # --- helpers for the connection ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closing:
            raise ConnectionClosedError(f"stream {self.id} is closed")
        if self._remote_closed:
            raise ReceiverRefusedError(f"the remote closed stream {self.id}", code=self._close_code)

    def _raise_if_failed(self, target: int | None) -> None:
        if self._error is not None:
            raise self._error
        if self._remote_closed and (target is None or self._total_sent < target):
            raise ReceiverRefusedError(
                f"the remote closed stream {self.id}"
                + (f": {self._close_message}" if self._close_message else ""),
                code=self._close_code,
            )
        if self._closing and target is not None and self._total_sent < target and not self._held:
            raise ConnectionClosedError(f"stream {self.id} was closed before the money was sent")

    def _available_to_send(self) -> int:
        if self._error is not None or self._remote_closed:
            return 0
        return max(self._send_max - self._total_sent - self._held, 0)

    def _remote_capacity(self) -> int:
        """Receiver units the remote still accepts, less what is in flight (UINT64_MAX: no
        limit known)."""
        if self._remote_receive_max >= UINT64_MAX:
            return UINT64_MAX
        return max(self._remote_receive_max - self._remote_received - self._in_flight_delivery, 0)

    def _hold(self, sequence: int, source: int, delivery: int) -> None:
        self._holds[sequence] = (source, delivery)
        self._held += source
        self._in_flight_delivery += delivery

    def _settle(self, sequence: int, delivered: int) -> None:
        held = self._holds.pop(sequence, None)
        if held is not None:
            source, delivery = held
            self._held -= source
            self._in_flight_delivery -= delivery
            self._total_sent += source
            self._total_delivered += delivered
            if self._remote_receive_max < UINT64_MAX:
                self._remote_received += delivered
        self._in_flight_data.pop(sequence, None)
        self._changed.notify()

    def _undo(self, sequence: int) -> None:
        held = self._holds.pop(sequence, None)
        if held is not None:
            source, delivery = held
            self._held -= source
            self._in_flight_delivery -= delivery
        chunks = self._in_flight_data.pop(sequence, None)
        if chunks:
            self._retry.extend(chunks)
            self._retry.sort()
        self._changed.notify()

    def _data_wanted(self) -> int:
        """The offset up to which we have data to send (for StreamDataBlocked)."""
        return self._out_offset + self._out_bytes

    def _take_data(self, sequence: int, budget: int) -> tuple[int, bytes] | None:
        """At most ``budget`` bytes to put in packet ``sequence``: a chunk to resend first (whole,
        as RFC 29 §5.3.11 wants resent frames identical), else new bytes within the remote's
        window."""
        if budget <= 0 or self._error is not None or self._remote_closed:
            return None
        if self._retry:
            offset, data = self._retry[0]
            if len(data) > budget:
                return None
            self._retry.pop(0)
            self._in_flight_data.setdefault(sequence, []).append((offset, data))
            return offset, data
        room = min(budget, self._remote_max_offset - self._out_offset, self._out_bytes)
        if room <= 0:
            return None
        parts: list[bytes] = []
        taken = 0
        while taken < room:
            head = self._out[0]
            need = room - taken
            if len(head) <= need:
                parts.append(self._out.popleft())
                taken += len(head)
            else:
                parts.append(head[:need])
                self._out[0] = head[need:]
                taken += need
        data = b"".join(parts)
        offset = self._out_offset
        self._out_offset += taken
        self._out_bytes -= taken
        self._connection._data_sent += taken
        self._in_flight_data.setdefault(sequence, []).append((offset, data))
        return offset, data

    def _max_acceptable_offset(self) -> int:
        return self._consumed + self._window

    def _receive_data(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if end > self._max_incoming_offset:
            self._connection._data_received += end - self._max_incoming_offset
            self._max_incoming_offset = end
        if offset < self._ready_end:
            data = data[self._ready_end - offset :]
            offset = self._ready_end
        # Hold only bytes no held chunk has: RFC 29 §5.3.11 forbids overlapping fragments, and a
        # peer that sends them anyway must not make us hold more than the window.
        starts = self._chunk_starts
        i = bisect.bisect_right(starts, offset) - 1
        if i >= 0:
            before_end = starts[i] + len(self._chunks[starts[i]])
            if before_end > offset:
                data = data[before_end - offset :]
                offset = before_end
        i += 1
        while data and i < len(starts) and starts[i] < offset + len(data):
            start = starts[i]
            if start > offset:
                self._hold_chunk(offset, data[: start - offset])
                i += 1
            skip = start + len(self._chunks[start]) - offset
            data = data[skip:]
            offset += skip
            i += 1
        if data:
            self._hold_chunk(offset, data)
        while starts and starts[0] == self._ready_end:
            chunk = self._chunks.pop(starts.pop(0))
            self._ready += chunk
            self._ready_end += len(chunk)
        self._changed.notify()

    def _hold_chunk(self, offset: int, data: bytes) -> None:
        bisect.insort(self._chunk_starts, offset)
        self._chunks[offset] = data

    def _receive_money(self, amount: int) -> None:
        self._total_received += amount
        for callback in self._money_callbacks:
            try:
                callback(amount)
            except Exception:
                self._connection._log_callback_error("stream money callback")
        self._changed.notify()

    def _remote_close(self, code: int, message: str) -> None:
        if self._remote_closed:
            return
        self._remote_closed = True
        self._close_code = code
        self._close_message = message
        self._changed.notify()

    def _fail(self, error: StreamError) -> None:
        if self._error is None:
            self._error = error
        self._changed.notify()

    def __repr__(self) -> str:
        return (
            f"DataAndMoneyStream(id={self.id}, sent={self._total_sent}, "
            f"received={self._total_received}, open={self.is_open})"
        )
