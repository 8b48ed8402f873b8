"""A STREAM connection (RFC 29 §4): its state machine, and the application's handle on it.

The decisions are plain methods on bytes and packets, with no awaiting, so they can be tested
without a network:

- `Connection.handle_prepare(prepare) -> IlpFulfill | IlpReject`: the receiver's side
  (RFC 29 §4.2, RFC 29 §4.4, RFC 29 §4.5). Undecryptable data is F06; anything STREAM refuses
  is F99 with an encrypted reply packet that says why (its frames) and how much arrived; a
  Prepare whose condition is not ours (a test packet, RFC 29 §6.1) is F99 too; everything else
  is fulfilled.
- `Connection.next_packet() -> OutgoingPacket | None`: the sender's side: which money, data and
  control frames the next Prepare carries, within the path's packet maximum, the exchange rate,
  and the remote's money and data windows.
- `Connection.handle_reply(out, reply) -> float`: settle or undo that packet from its Fulfill or
  Reject; returns how long to wait before sending more (T04 and other temporary errors back off)
  or raises the `StreamError` that ends the connection.
- `Connection.probe_packet(amount)` / `probe_result(out, reply)`: the unfulfillable test packets
  that measure the exchange rate (`rate.RateProbe` decides their amounts).

`sender.SendLoop` drives those over a plugin; `server.StreamServer` and `client.connect` build
connections. The application uses the async methods: `create_stream`, `accept_stream`, `close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final

from ..codec.address import is_valid_address
from ..codec.errors import CodecError
from ..codec.ilp4 import (
    IlpFulfill,
    IlpPrepare,
    IlpReject,
    decode_amount_too_large_data,
    decode_reply,
    encode_prepare,
)
from ._oer import UINT64_MAX
from ._signal import Changed
from .crypto import ConnectionKeys, condition_of, random_condition
from .errors import (
    ConnectionClosedError,
    ExchangeRateError,
    InsufficientLiquidityError,
    NoRouteError,
    PaymentTimeoutError,
    ReceiverRefusedError,
    RejectedError,
    StreamCodecError,
    StreamError,
)
from .frames import (
    ConnectionAssetDetailsFrame,
    ConnectionCloseFrame,
    ConnectionDataBlockedFrame,
    ConnectionMaxDataFrame,
    ConnectionMaxStreamIdFrame,
    ConnectionNewAddressFrame,
    ConnectionStreamIdBlockedFrame,
    ErrorCode,
    Frame,
    StreamCloseFrame,
    StreamDataBlockedFrame,
    StreamDataFrame,
    StreamMaxDataFrame,
    StreamMaxMoneyFrame,
    StreamMoneyBlockedFrame,
    StreamMoneyFrame,
    StreamReceiptFrame,
    encode_frame,
)
from .packet import MAX_DATA_SIZE, IlpPacketType, StreamPacket, decrypt_packet, encrypt_packet
from .rate import DEFAULT_SLIPPAGE, PacketSizer, ProbeResult, destination_for, source_for
from .receipt import create_receipt
from .stream import DEFAULT_STREAM_WINDOW, DataAndMoneyStream

if TYPE_CHECKING:
    from ..v2.interface import PluginV2
    from .sender import SendLoop

__all__ = [
    "DEFAULT_CONNECTION_WINDOW",
    "MAX_PACKETS",
    "Connection",
    "ConnectionOptions",
    "OutgoingPacket",
    "ShouldFulfill",
    "State",
    "final_error_of",
]

log = logging.getLogger(__name__)

#: Bytes of unread data a connection holds over all its streams (ilp-protocol-stream's default,
#: which it also assumes of a peer until told).
DEFAULT_CONNECTION_WINDOW: Final = 2 * MAX_DATA_SIZE
#: RFC 29 §5.1.3: a connection closes before either side sends 2^31 packets.
MAX_PACKETS: Final = 2**31
#: How much more than a stream's remaining receive maximum a packet may bring (1 %): the sender
#: converts with a measured rate, so its share can round above the limit (ilp-protocol-stream's
#: allowance, kept so its senders are not refused at the edge).
RECEIVE_ALLOWANCE: Final = Fraction(101, 100)
#: Plaintext bytes a StreamData frame needs besides its data, at most (type, length, id, offset,
#: data length).
_DATA_FRAME_OVERHEAD: Final = 1 + 3 + 9 + 9 + 3
_PLAINTEXT_LIMIT: Final = MAX_DATA_SIZE - 28
#: Closed remote stream ids kept above the floor (see `Connection._remote_stream_closed`).
_CLOSED_IDS_KEPT: Final = 64
#: Connection-level control frames of which only the latest matters: queuing one replaces any
#: of its type already queued, so what a remote makes us queue stays bounded.
_LATEST_ONLY: Final = (
    ConnectionMaxStreamIdFrame,
    ConnectionStreamIdBlockedFrame,
    ConnectionAssetDetailsFrame,
    ConnectionMaxDataFrame,
)


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """How a connection sends and what it accepts; every field has a working default.

    Attributes:
        min_exchange_rate: the least receiver units per sender unit to accept (exact); None:
            accept the measured rate less ``slippage``.
        slippage: how far below the measured rate a packet may arrive when there is no minimum.
        exchange_rate: a known rate; skips the test packets (then give ``max_packet_amount``).
        max_packet_amount: never more than this per packet, even if the path allows more.
        packet_timeout: seconds until a Prepare expires.
        idle_timeout: close after this many seconds without a packet either way (0: never).
        max_in_flight: Prepares outstanding at once.
        max_retries: consecutive temporary failures (T04, other T and R codes, lost packets,
            receiver rejections) before the connection fails.
        retry_delay / max_retry_delay: first backoff and its ceiling (doubles each time).
        receive_max: default receive maximum of every stream; None: unlimited.
        stream_window / connection_window: unread bytes buffered per stream / per connection.
        max_remote_streams: streams the remote may have open at once (RFC 29 §3.3: 10).
        pad_packets: pad every STREAM packet to the full 32767 bytes (hides sizes).
    """

    min_exchange_rate: Fraction | None = None
    slippage: Fraction = DEFAULT_SLIPPAGE
    exchange_rate: Fraction | None = None
    max_packet_amount: int | None = None
    packet_timeout: float = 30.0
    idle_timeout: float = 60.0
    max_in_flight: int = 5
    max_retries: int = 10
    retry_delay: float = 0.1
    max_retry_delay: float = 5.0
    receive_max: int | None = None
    stream_window: int = DEFAULT_STREAM_WINDOW
    connection_window: int = DEFAULT_CONNECTION_WINDOW
    max_remote_streams: int = 10
    pad_packets: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.slippage < 1:
            raise ValueError(f"slippage: {self.slippage} is not in [0, 1)")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight: {self.max_in_flight} is below 1")
        if self.packet_timeout <= 0:
            raise ValueError(f"packet_timeout: {self.packet_timeout} is not positive")
        if self.max_packet_amount is not None and self.max_packet_amount < 1:
            raise ValueError(f"max_packet_amount: {self.max_packet_amount} is below 1")
        if self.stream_window < 1 or self.connection_window < 1:
            raise ValueError("stream_window and connection_window must be positive")


@dataclass(slots=True)
class OutgoingPacket:
    """One Prepare the connection built, and what to settle or undo when its reply comes."""

    sequence: int
    source_amount: int
    min_destination: int
    frames: tuple[Frame, ...]
    prepare: bytes
    condition: bytes
    fulfillment: bytes | None
    expires_at: datetime
    money: tuple[tuple[DataAndMoneyStream, int], ...] = ()
    data_streams: tuple[DataAndMoneyStream, ...] = ()
    closing_streams: tuple[DataAndMoneyStream, ...] = ()
    resend: tuple[Frame, ...] = ()
    probe: bool = False
    closes_connection: bool = False
    destination: str | None = None
    data_bytes: int = 0
    data_acked_before: int = 0


class State(Enum):
    """Where a connection is in its life."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(slots=True)
class _Counters:
    fulfilled: int = 0
    rejected: int = 0
    temporary_in_a_row: int = 0
    receiver_rejects_in_a_row: int = 0


StreamCallback = Callable[[DataAndMoneyStream], object]
ConnectionMoneyCallback = Callable[[DataAndMoneyStream, int], object]
ShouldFulfill = Callable[["Connection", int, dict[int, int]], bool]
"""``(connection, amount, {stream id: its part})`` -> True to take a packet's money (see
`Connection.should_fulfill`)."""


class Connection:
    """One end of a STREAM connection: streams of money and data to and from one remote.

    Built by `client.connect` (the client end) or by `server.StreamServer` (one per incoming
    connection); not meant to be constructed by applications.
    """

    def __init__(
        self,
        *,
        plugin: PluginV2 | None,
        shared_secret: bytes,
        is_server: bool,
        source_account: str,
        asset_code: str,
        asset_scale: int,
        destination_account: str | None = None,
        options: ConnectionOptions | None = None,
        connection_tag: str | None = None,
        receipt_nonce: bytes | None = None,
        receipt_secret: bytes | None = None,
        advertise_address: bool = True,
    ) -> None:
        self.options = options or ConnectionOptions()
        self._plugin = plugin
        self._keys = ConnectionKeys(shared_secret)
        self.is_server = is_server
        self.source_account = source_account
        self.asset_code = asset_code
        self.asset_scale = asset_scale
        self.destination_account = destination_account
        self.pending_address: str | None = None
        """An address the remote moved to (ConnectionNewAddress) that no authenticated round
        trip has confirmed yet (RFC 29 §4.3.2); packets go to `destination_account` meanwhile."""
        self.destination_asset: tuple[str, int] | None = None
        """The remote's (asset code, asset scale), once it sent ConnectionAssetDetails."""
        self.connection_tag = connection_tag
        """The tag given to `StreamServer.generate_address_and_secret` for this connection."""
        self._receipt_nonce = receipt_nonce
        self._receipt_secret = receipt_secret
        self.should_fulfill: ShouldFulfill | None = None
        """The application's say on each incoming packet that carries money: called as
        ``should_fulfill(connection, amount, {stream id: part})`` (our units) once STREAM
        would fulfil it, before anything is counted. Only True takes the money; False, another
        value, or an exception refuses the packet: F99 with a STREAM reply, nothing counted on
        either side, and the sender retries with backoff as for any receiver rejection. It must
        be synchronous and quick (it runs inside the plugin's data handler). None: take all."""
        self._streams: dict[int, DataAndMoneyStream] = {}
        # Remote stream ids that are closed: every one up to the floor (when not open), and
        # those above it in the set. The remote's ids only grow, so the floor follows them.
        self._remote_closed_floor = -1 if is_server else 0
        self._remote_closed_ids: set[int] = set()
        self._next_stream_id = 2 if is_server else 1
        self._max_stream_id = 2 * self.options.max_remote_streams
        self._remote_max_stream_id = 2 * self.options.max_remote_streams
        self._queued: list[Frame] = []
        self._next_sequence = 1
        self._remote_knows_address = is_server or not advertise_address
        # Connection-level flow control (RFC 29 §4.5) counts bytes over every stream, closed
        # ones too: these totals never go down when a closed stream is forgotten.
        self._data_received = 0  # the sum of each stream's highest incoming offset
        self._data_consumed = 0  # bytes the application read
        self._max_data_told = 0  # the highest ConnectionMaxData we sent
        self._data_sent = 0  # bytes of ours sent at least once
        self._data_acked = 0  # bytes of ours in packets the remote fulfilled
        self._remote_max_offset = DEFAULT_CONNECTION_WINDOW
        self._remote_counts_open_streams = False
        self._data_blocked_told = False
        self._advert_pending = False
        self.exchange_rate: Fraction | None = self.options.exchange_rate
        """Receiver units per sender unit: measured by test packets, updated when a packet
        arrives worse than expected."""
        self.minimum_rate: Fraction | None = self.options.min_exchange_rate
        self.sizer = PacketSizer(self.options.max_packet_amount)
        if self.exchange_rate is not None and self.minimum_rate is None:
            self.minimum_rate = self.exchange_rate * (1 - self.options.slippage)
        self._total_sent = 0
        self._total_delivered = 0
        self._total_received = 0
        self.counters = _Counters()
        self.state = State.OPEN
        self._remote_closed = False
        self._error: StreamError | None = None
        self._changed = Changed()
        self._incoming: deque[DataAndMoneyStream] = deque()
        self._stream_callbacks: list[StreamCallback] = []
        self._money_callbacks: list[ConnectionMoneyCallback] = []
        self._close_callbacks: list[Callable[[Connection], object]] = []
        self._progress_callbacks: list[Callable[[int, int], object]] = []
        self._sender: SendLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.last_active = 0.0
        self._idle_handle: asyncio.TimerHandle | None = None

    # --- public state --------------------------------------------------------------------------

    @property
    def total_sent(self) -> int:
        """Our units sent in fulfilled packets, over all streams."""
        return self._total_sent

    @property
    def total_delivered(self) -> int:
        """The remote's units that arrived from us, as its Fulfills reported."""
        return self._total_delivered

    @property
    def total_received(self) -> int:
        """Our units received over all streams."""
        return self._total_received

    @property
    def error(self) -> StreamError | None:
        """Why the connection failed, if it did."""
        return self._error

    @property
    def closed(self) -> bool:
        """True once closed by either side or failed."""
        return self.state is State.CLOSED

    @property
    def streams(self) -> list[DataAndMoneyStream]:
        """The streams open now, by id."""
        return [self._streams[i] for i in sorted(self._streams)]

    # --- application API -----------------------------------------------------------------------

    def create_stream(self) -> DataAndMoneyStream:
        """A new stream of ours (odd ids for a client, even for a server).

        Raises:
            ConnectionClosedError: the connection is closed.
            StreamError: the remote allows no more streams now (RFC 29 §3.3).
        """
        self._check_open()
        sid = self._next_stream_id
        if sid > self._remote_max_stream_id:
            self._queue(ConnectionStreamIdBlockedFrame(sid))
            raise StreamError(
                f"the remote allows stream ids up to {self._remote_max_stream_id}; "
                "close a stream first"
            )
        self._next_stream_id += 2
        stream = self._new_stream(sid)
        return stream

    async def accept_stream(self) -> DataAndMoneyStream:
        """The next stream the remote opened (waits for one).

        Raises:
            ConnectionClosedError: the connection closed with no stream pending.
        """
        while not self._incoming:
            if self.state is State.CLOSED:
                raise self._error or ConnectionClosedError("the connection is closed")
            await self._changed.wait()
        return self._incoming.popleft()

    def __aiter__(self) -> AsyncIterator[DataAndMoneyStream]:
        return self._iterate_streams()

    async def _iterate_streams(self) -> AsyncIterator[DataAndMoneyStream]:
        while True:
            try:
                yield await self.accept_stream()
            except StreamError:
                return

    def on_stream(self, callback: StreamCallback) -> None:
        """Call ``callback(stream)`` for each stream the remote opens, before its first money is
        counted (so it can `set_receive_max`). A coroutine result is run as a task."""
        self._stream_callbacks.append(callback)

    def on_money(self, callback: ConnectionMoneyCallback) -> None:
        """Call ``callback(stream, amount)`` for every amount received on any stream
        (``total_received`` already includes it)."""
        self._money_callbacks.append(callback)

    def on_close(self, callback: Callable[[Connection], object]) -> None:
        """Call ``callback(connection)`` once, when the connection closes or fails."""
        self._close_callbacks.append(callback)

    def on_progress(self, callback: Callable[[int, int], object]) -> None:
        """Call ``callback(total_sent, total_delivered)`` after every fulfilled packet of ours
        that carried money (for progress bars)."""
        self._progress_callbacks.append(callback)

    async def wait_closed(self) -> None:
        """Until the connection is closed (by either side) or failed."""
        while self.state is not State.CLOSED:
            await self._changed.wait()

    async def close(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - one deadline for the whole wait
    ) -> None:
        """Close gracefully: flush every stream's money and data, then send ConnectionClose
        (RFC 29 §4.6). Idempotent; a failed connection is just marked closed.

        Raises:
            PaymentTimeoutError: flushing took longer than ``timeout`` (closed anyway).
        """
        if self.state is not State.OPEN:
            await self.wait_closed()
            return
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(
                    *(s.close() for s in list(self._streams.values())), return_exceptions=True
                )
                while self._sender is not None and self._sender.busy() and not self.closed:
                    await self._changed.wait()
        except TimeoutError:
            timed_out = True
        if self.state is State.OPEN:
            self.state = State.CLOSING
            if self._sender is not None and not self._remote_closed:
                await self._sender.send_close(ErrorCode.NO_ERROR, "")
            self._finish(None)
        if timed_out:
            raise PaymentTimeoutError(f"timed out after {timeout} s flushing the connection")

    async def abort(self, message: str = "closed by the application") -> None:
        """Close now with an application error (RFC 29 §5.4), without flushing."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSING
        if self._sender is not None and not self._remote_closed:
            await self._sender.send_close(ErrorCode.APPLICATION_ERROR, message)
        self._finish(ConnectionClosedError(message))

    # --- the receiver's side -------------------------------------------------------------------

    def handle_prepare(self, prepare: IlpPrepare) -> IlpFulfill | IlpReject:
        """Answer one incoming Prepare addressed to this connection (see the module docstring)."""
        try:
            packet = decrypt_packet(prepare.data, self._keys)
        except StreamCodecError:
            return IlpReject("F06", self.source_account)
        if packet.ilp_packet_type is not IlpPacketType.PREPARE:
            return IlpReject("F06", self.source_account)
        self._touch()
        reply: list[Frame] = []

        def refuse() -> IlpReject:
            reply.extend(self._queued)
            self._queued = []
            reply.insert(0, self._max_data_frame())
            data = self._reply_data(packet.sequence, IlpPacketType.REJECT, amount, reply)
            return IlpReject("F99", self.source_account, "", data)

        amount = prepare.amount
        if self.state is State.CLOSED:
            code = ErrorCode.NO_ERROR if self._error is None else ErrorCode.APPLICATION_ERROR
            reply.append(
                ConnectionCloseFrame(code, "" if self._error is None else str(self._error))
            )
            if (
                amount == 0
                and packet.prepare_amount == 0
                and not any(
                    isinstance(f, StreamMoneyFrame | StreamDataFrame) for f in packet.frames
                )
            ):
                # A closing packet that arrives after we closed (ilp-protocol-stream sends its
                # StreamClose after its ConnectionClose) is fulfilled: its sender re-sends a
                # rejected StreamClose, and ilp-protocol-stream 2.7 does so in a loop, one
                # packet per round trip, for as long as we remember the connection.
                fulfillment = self._keys.fulfillment(prepare.data)
                if condition_of(fulfillment) == prepare.execution_condition:
                    data = self._reply_data(packet.sequence, IlpPacketType.FULFILL, 0, reply)
                    return IlpFulfill(fulfillment, data)
            return refuse()

        for frame in packet.frames:
            if isinstance(frame, ConnectionNewAddressFrame) and not is_valid_address(
                frame.source_account
            ):
                close = ConnectionCloseFrame(
                    ErrorCode.FRAME_FORMAT_ERROR,
                    f"ConnectionNewAddress.sourceAccount: {frame.source_account[:100]!r} "
                    "is not an ILP address",
                )
                reply.append(close)
                self._fail(
                    ReceiverRefusedError(close.message, code=close.code), notify_remote=False
                )
                return refuse()
            if isinstance(
                frame, StreamMoneyFrame | StreamDataFrame | StreamMaxMoneyFrame | StreamMaxDataFrame
            ):
                sid = frame.stream_id
                if self._stream_id_closed(sid) or (
                    sid in self._streams
                    and not self._streams[sid].is_open
                    and isinstance(frame, StreamMoneyFrame | StreamDataFrame)
                ):
                    if isinstance(frame, StreamMoneyFrame | StreamDataFrame):
                        if not any(
                            isinstance(f, StreamCloseFrame) and f.stream_id == sid for f in reply
                        ):
                            reply.append(
                                StreamCloseFrame(
                                    sid, ErrorCode.STREAM_STATE_ERROR, "Stream is already closed"
                                )
                            )
                        return refuse()
                    continue
                violation = self._open_remote_stream(sid)
                if violation is not None:
                    reply.append(violation)
                    return refuse()

        conflict = self._asset_conflict(packet.frames)
        if conflict is not None:
            close = ConnectionCloseFrame(ErrorCode.PROTOCOL_VIOLATION, conflict)
            reply.append(close)
            self._fail(ReceiverRefusedError(conflict, code=close.code), notify_remote=False)
            return refuse()

        self._apply_frames(packet.frames)

        data_frames = [f for f in packet.frames if isinstance(f, StreamDataFrame)]
        if data_frames:
            violation = self._check_incoming_data(data_frames)
            if violation is not None:
                reply.append(violation)
                self._fail(
                    ReceiverRefusedError(violation.message, code=violation.code),
                    notify_remote=False,
                )
                return refuse()

        if packet.prepare_amount > amount:
            return refuse()
        fulfillment = self._keys.fulfillment(prepare.data)
        if condition_of(fulfillment) != prepare.execution_condition:
            return refuse()

        money = [f for f in packet.frames if isinstance(f, StreamMoneyFrame)]
        shares = sum(f.shares for f in money)
        if amount > 0 and shares == 0:
            return refuse()
        if self._total_received + amount > UINT64_MAX:
            return refuse()
        split = _split(amount, [(f.stream_id, f.shares) for f in money]) if amount else []
        for sid, part in split:
            stream = self._streams.get(sid)
            if stream is None or not stream.is_open:
                reply.append(
                    StreamCloseFrame(sid, ErrorCode.STREAM_STATE_ERROR, "Stream is already closed")
                )
                return refuse()
            room = max(stream._receive_max - stream._total_received, 0)
            if part > math.ceil(room * RECEIVE_ALLOWANCE):
                reply.append(StreamMaxMoneyFrame(sid, stream._receive_max, stream._total_received))
                return refuse()

        hook = self.should_fulfill
        if hook is not None and amount > 0 and not self._application_takes(hook, amount, split):
            return refuse()

        # Accepted: data and money reach their streams.
        for f in data_frames:
            stream = self._streams.get(f.stream_id)
            if stream is not None:
                stream._receive_data(f.offset, f.data)
        receipts: list[Frame] = []
        self._total_received += amount
        for sid, part in split:
            stream = self._streams[sid]
            stream._receive_money(part)
            for cb in self._money_callbacks:
                self._call(cb, stream, part)
            if self._receipt_nonce and self._receipt_secret and sid <= 255:
                receipts.append(
                    StreamReceiptFrame(
                        sid,
                        create_receipt(
                            self._receipt_nonce, sid, stream._total_received, self._receipt_secret
                        ),
                    )
                )
        self.counters.fulfilled += 1

        reply.insert(0, self._max_data_frame())
        if not self._remote_closed:
            for stream in self.streams:
                if not stream.is_open:
                    if not stream._remote_closed and not stream._close_acked:
                        reply.append(
                            StreamCloseFrame(stream.id, stream._close_code, stream._close_message)
                        )
                        self._stream_close_told(stream)
                else:
                    reply.extend(self._adverts(stream))
        reply.extend(receipts)
        reply.extend(self._queued)
        self._queued = []
        data = self._reply_data(packet.sequence, IlpPacketType.FULFILL, amount, reply)
        self._changed.notify()
        return IlpFulfill(fulfillment, data)

    def _application_takes(
        self, hook: ShouldFulfill, amount: int, split: list[tuple[int, int]]
    ) -> bool:
        try:
            answer = hook(self, amount, dict(split))
        except Exception as exc:
            log.info("the application refused %d: %r", amount, exc)
            return False
        if answer is True:
            return True
        if answer is not False:
            if inspect.isawaitable(answer):
                close = getattr(answer, "close", None)
                if close is not None:
                    close()
            log.error(
                "should_fulfill returned %r, not True or False (it must be synchronous): "
                "refused the packet",
                type(answer).__name__,
            )
        return False

    def _open_remote_stream(self, sid: int) -> ConnectionCloseFrame | None:
        if sid in self._streams:
            return None
        ours = sid % 2 == (0 if self.is_server else 1)
        if ours:
            if sid < self._next_stream_id:
                return None  # one of ours, already gone
            frame = ConnectionCloseFrame(
                ErrorCode.PROTOCOL_VIOLATION,
                f"Invalid Stream ID: {sid}. "
                + (
                    "Client-initiated streams must have odd-numbered IDs"
                    if self.is_server
                    else "Server-initiated streams must have even-numbered IDs"
                ),
            )
            self._fail(ReceiverRefusedError(frame.message, code=frame.code), notify_remote=False)
            return frame
        if sid > self._max_stream_id:
            frame = ConnectionCloseFrame(
                ErrorCode.STREAM_ID_ERROR,
                f"Maximum number of open streams exceeded. Got stream: {sid}, "
                f"current max stream ID: {self._max_stream_id}",
            )
            self._fail(ReceiverRefusedError(frame.message, code=frame.code), notify_remote=False)
            return frame
        if sid > self._max_stream_id * 3 // 4:
            self._queue(ConnectionMaxStreamIdFrame(self._max_stream_id))
        stream = self._new_stream(sid)
        self._incoming.append(stream)
        for cb in self._stream_callbacks:
            self._call(cb, stream)
        self._changed.notify()
        return None

    def _check_incoming_data(self, frames: list[StreamDataFrame]) -> ConnectionCloseFrame | None:
        total = self._data_received
        for f in frames:
            stream = self._streams.get(f.stream_id)
            if stream is None:
                continue
            end = f.offset + len(f.data)
            if end > stream._max_acceptable_offset():
                return ConnectionCloseFrame(
                    ErrorCode.FLOW_CONTROL_ERROR,
                    f"Exceeded flow control limits. Stream {stream.id} can accept up to offset: "
                    f"{stream._max_acceptable_offset()} but got bytes up to offset: {end}",
                )
            total += max(end - stream._max_incoming_offset, 0)
        if total > self._max_connection_offset():
            return ConnectionCloseFrame(
                ErrorCode.FLOW_CONTROL_ERROR,
                f"Exceeded flow control limits. Max connection byte offset: "
                f"{self._max_connection_offset()}, received: {total}",
            )
        return None

    def _max_connection_offset(self) -> int:
        return self._data_consumed + self.options.connection_window

    def _max_data_frame(self) -> ConnectionMaxDataFrame:
        limit = self._max_connection_offset()
        self._max_data_told = max(self._max_data_told, limit)
        return ConnectionMaxDataFrame(limit)

    def _data_read(self, size: int) -> None:
        """The application read ``size`` bytes of some stream: once the connection's limit
        moved half a window past what we told, tell the remote (in our next packet)."""
        self._data_consumed += size
        if (self._max_connection_offset() - self._max_data_told) * 2 >= (
            self.options.connection_window
        ):
            self._window_changed()

    def _adverts(self, stream: DataAndMoneyStream) -> list[Frame]:
        stream._advertised_consumed = stream._consumed
        return [
            StreamMaxMoneyFrame(stream.id, stream._receive_max, stream._total_received),
            StreamMaxDataFrame(stream.id, stream._max_acceptable_offset()),
        ]

    # --- frames from either direction ----------------------------------------------------------

    def _apply_frames(self, frames: tuple[Frame, ...], max_data_floor: int = -1) -> None:
        """Act on the remote's control frames. ``max_data_floor``: bytes the remote had
        received, at least, when it wrote them (-1: unknown): a ConnectionMaxData below it
        shows that the remote counts only open streams (see `_remote_counts_open`)."""
        for frame in frames:
            if isinstance(frame, ConnectionNewAddressFrame):
                self._on_new_address(frame.source_account)
            elif isinstance(frame, ConnectionAssetDetailsFrame):
                conflict = self._asset_conflict((frame,))
                if conflict is not None:
                    raise ReceiverRefusedError(conflict, code=ErrorCode.PROTOCOL_VIOLATION)
                self.destination_asset = (frame.source_asset_code, frame.source_asset_scale)
            elif isinstance(frame, ConnectionCloseFrame):
                self._on_remote_close(frame.code, frame.message)
            elif isinstance(frame, ConnectionMaxDataFrame):
                if frame.max_offset < max_data_floor and not self._remote_counts_open_streams:
                    self._remote_counts_open(frame.max_offset, max_data_floor)
                if frame.max_offset > self._remote_max_offset:
                    self._remote_max_offset = frame.max_offset
                    self._data_blocked_told = False
                    self._wake()
            elif isinstance(frame, ConnectionMaxStreamIdFrame):
                self._remote_max_stream_id = max(self._remote_max_stream_id, frame.max_stream_id)
            elif isinstance(frame, StreamCloseFrame):
                stream = self._streams.get(frame.stream_id)
                if stream is not None and not stream._remote_closed:
                    stream._remote_close(frame.code, frame.message)
                    self._max_stream_id += 2
                    self._queue(ConnectionMaxStreamIdFrame(self._max_stream_id))
                    self._retire(stream)
                    self._wake()
            elif isinstance(frame, StreamMaxMoneyFrame):
                stream = self._streams.get(frame.stream_id)
                if stream is None:
                    continue
                stream._remote_received = max(stream._remote_received, frame.total_received)
                if stream._remote_receive_max >= UINT64_MAX:
                    stream._remote_receive_max = frame.receive_max
                else:
                    stream._remote_receive_max = max(stream._remote_receive_max, frame.receive_max)
                if stream._remote_capacity() > 0 and stream._blocked:
                    stream._blocked = False
                if stream._remote_capacity() > 0 and stream._available_to_send():
                    self._wake()
            elif isinstance(frame, StreamMaxDataFrame):
                stream = self._streams.get(frame.stream_id)
                if stream is not None and frame.max_offset > stream._remote_max_offset:
                    stream._remote_max_offset = frame.max_offset
                    self._data_blocked_told = False  # it read: ask for the connection's limit
                    self._wake()

    def _remote_counts_open(self, limit: int, floor: int) -> None:
        """The remote advertised a ConnectionMaxData (``limit``) below the bytes it had
        received (``floor``): it counts only the streams it has open, as ilp-protocol-stream
        2.7 does, not every byte of the connection as RFC 29 §5.3.3 says. Count our bytes the
        same way for it from now on, or its window would look full for good once closed
        streams carried more than it."""
        log.info(
            "remote ConnectionMaxData %d is below the %d bytes it had received: "
            "it counts open streams only",
            limit,
            floor,
        )
        self._remote_counts_open_streams = True
        self._data_blocked_told = False
        self._wake()

    def _asset_conflict(self, frames: tuple[Frame, ...]) -> str | None:
        """Why ``frames`` contradict the remote's asset details, if they do: they may not change
        during a connection, and a receiver of contradicting ones closes it (RFC 29 §4.3.3)."""
        known = self.destination_asset
        for frame in frames:
            if isinstance(frame, ConnectionAssetDetailsFrame):
                details = (frame.source_asset_code, frame.source_asset_scale)
                if known is not None and details != known:
                    return (
                        f"ConnectionAssetDetails: the remote's asset changed from {known[0]!r} "
                        f"scale {known[1]} to {details[0][:50]!r} scale {details[1]} "
                        "during the connection"
                    )
                known = details
        return None

    def _on_new_address(self, address: str) -> None:
        """The remote's address: adopted at once when we had none (RFC 29 §4.3.1); a different
        one waits for a validating round trip (RFC 29 §4.3.2), so a packet carrying it cannot
        redirect our money and data to a third party. Either way we answer with our details,
        as ilp-protocol-stream does."""
        if not is_valid_address(address):
            log.info("ignoring ConnectionNewAddress %r: not an ILP address", address[:100])
            return
        self._queue(ConnectionMaxStreamIdFrame(self._max_stream_id))
        self._queue(ConnectionAssetDetailsFrame(self.asset_code, self.asset_scale))
        if self.destination_account is None:
            self.destination_account = address
            self._wake()
        elif address == self.destination_account:
            self.pending_address = None
        elif address != self.pending_address:
            self.pending_address = address
            self._wake()

    def validation_packet(self) -> OutgoingPacket | None:
        """An unfulfillable Prepare (amount 0) to `pending_address`: an authenticated reply from
        there proves the remote is at the new address (RFC 29 §4.3.2). None if none pending."""
        if self.pending_address is None:
            return None
        seq = self._take_sequence()
        data = self._encrypt(StreamPacket(seq, IlpPacketType.PREPARE, 0, ()))
        condition = random_condition()
        expires = self._expiry()
        prepare = encode_prepare(IlpPrepare(0, expires, condition, self.pending_address, data))
        return OutgoingPacket(
            seq,
            0,
            0,
            (),
            prepare,
            condition,
            None,
            expires,
            probe=True,
            destination=self.pending_address,
        )

    def validation_result(self, out: OutgoingPacket, raw: bytes | None) -> bool:
        """Adopt the address ``out`` went to if its reply is an authenticated STREAM reply
        (our secret, its sequence); otherwise forget it. Returns whether it was adopted."""
        address = out.destination
        reply = None
        if raw is not None:
            with contextlib.suppress(CodecError):
                reply = decode_reply(raw)
        packet = None
        if reply is not None and reply.data:
            kind = IlpPacketType.FULFILL if isinstance(reply, IlpFulfill) else IlpPacketType.REJECT
            packet = self._open_reply(out, reply.data, kind)
        if self.pending_address != address:
            return False  # superseded meanwhile; the newer one gets its own round trip
        self.pending_address = None
        if packet is None:
            log.info("not moving to %s: no authenticated reply came from there", address)
            return False
        self._touch()
        self.destination_account = address
        self._apply_frames(packet.frames)
        self._wake()
        return True

    def _on_remote_close(self, code: int, message: str) -> None:
        self._remote_closed = True
        for stream in list(self._streams.values()):
            stream._remote_close(code, message)
        if code == ErrorCode.NO_ERROR:
            self._finish(None)
        else:
            try:
                name = ErrorCode(code).name
            except ValueError:
                name = str(code)
            self._finish(
                ReceiverRefusedError(
                    f"the remote closed the connection: {name}"
                    + (f": {message}" if message else ""),
                    code=code,
                )
            )

    # --- the sender's side ---------------------------------------------------------------------

    def _expiry(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.options.packet_timeout)

    def _take_sequence(self) -> int:
        seq = self._next_sequence
        if seq >= MAX_PACKETS:
            raise StreamError("the connection reached 2^31 packets (RFC 29 §5.1.3)")
        self._next_sequence += 1
        return seq

    def _queue(self, frame: Frame) -> None:
        """Queue a control frame for our next packet or reply (see `_LATEST_ONLY`)."""
        if isinstance(frame, _LATEST_ONLY):
            self._queued = [f for f in self._queued if type(f) is not type(frame)]
        self._queued.append(frame)

    def _reply_data(
        self, sequence: int, kind: IlpPacketType, amount: int, frames: list[Frame]
    ) -> bytes:
        """The encrypted reply packet. Close frames always go; of the others, those that no
        longer fit in an ILP packet's data are left out (a reply must never be too large to
        send, whatever the remote made us queue)."""
        sizes = [len(encode_frame(f)) for f in frames]
        room = _PLAINTEXT_LIMIT - 32
        if sum(sizes) > room:
            keep = [isinstance(f, ConnectionCloseFrame | StreamCloseFrame) for f in frames]
            used = sum(n for n, k in zip(sizes, keep, strict=True) if k)
            for i, n in enumerate(sizes):
                if not keep[i] and used + n <= room:
                    keep[i] = True
                    used += n
            frames = [f for f, k in zip(frames, keep, strict=True) if k]
        return self._encrypt(StreamPacket(sequence, kind, amount, tuple(frames)))

    def _encrypt(self, packet: StreamPacket) -> bytes:
        pad = MAX_DATA_SIZE if self.options.pad_packets else None
        return encrypt_packet(packet, self._keys, pad_to=pad)

    def _address_frames(self) -> list[Frame]:
        if self._remote_knows_address:
            return []
        return [
            ConnectionNewAddressFrame(self.source_account),
            ConnectionAssetDetailsFrame(self.asset_code, self.asset_scale),
        ]

    def probe_packet(self, amount: int) -> OutgoingPacket:
        """An unfulfillable test packet of ``amount`` (RFC 29 §6.1) to measure the rate."""
        if self.destination_account is None:
            raise StreamError("the remote's address is not known yet")
        seq = self._take_sequence()
        frames = tuple(self._address_frames())
        data = self._encrypt(StreamPacket(seq, IlpPacketType.PREPARE, 0, frames))
        condition = random_condition()
        expires = self._expiry()
        prepare = encode_prepare(
            IlpPrepare(amount, expires, condition, self.destination_account, data)
        )
        return OutgoingPacket(seq, amount, 0, frames, prepare, condition, None, expires, probe=True)

    def close_packet(self, code: int, message: str) -> OutgoingPacket:
        """The unfulfillable Prepare (amount 0) that carries our ConnectionClose."""
        if self.destination_account is None:
            raise StreamError("the remote's address is not known")
        seq = self._take_sequence()
        frames: tuple[Frame, ...] = (ConnectionCloseFrame(code, message),)
        data = self._encrypt(StreamPacket(seq, IlpPacketType.PREPARE, 0, frames))
        condition = random_condition()
        expires = self._expiry()
        prepare = encode_prepare(IlpPrepare(0, expires, condition, self.destination_account, data))
        return OutgoingPacket(seq, 0, 0, frames, prepare, condition, None, expires, probe=True)

    def probe_result(self, out: OutgoingPacket, raw: bytes | None) -> ProbeResult:
        """What a test packet's reply says (None: no reply in time)."""
        if raw is None:
            return ProbeResult(out.source_amount, code="T00")
        try:
            reply = decode_reply(raw)
        except CodecError:
            return ProbeResult(out.source_amount, code="F00")
        if isinstance(reply, IlpFulfill):
            # Nobody can fulfil a random condition; a connector that says so is broken.
            return ProbeResult(out.source_amount, code="F05")
        self._touch()
        if reply.code == "F99" and reply.data:
            packet = self._open_reply(out, reply.data, IlpPacketType.REJECT)
            if packet is not None:
                self._apply_frames(packet.frames)
                return ProbeResult(out.source_amount, delivered=packet.prepare_amount)
            return ProbeResult(out.source_amount, code="F99")
        if reply.code == "F08":
            try:
                received, maximum = decode_amount_too_large_data(reply.data)
            except CodecError:
                return ProbeResult(out.source_amount, maximum=max(out.source_amount - 1, 0))
            if received > maximum:
                return ProbeResult(
                    out.source_amount, maximum=out.source_amount * maximum // received
                )
            return ProbeResult(out.source_amount, maximum=max(out.source_amount - 1, 0))
        return ProbeResult(out.source_amount, code=reply.code)

    def set_rate(self, rate: Fraction, max_packet_amount: int) -> None:
        """Adopt a measured rate and path maximum; checks the caller's minimum.

        Raises:
            ExchangeRateError: the rate is below ``min_exchange_rate``.
        """
        if self.options.min_exchange_rate is not None and rate < self.options.min_exchange_rate:
            raise ExchangeRateError(
                f"the path's exchange rate {_fmt(rate)} is below the minimum "
                f"{_fmt(self.options.min_exchange_rate)}",
                rate=rate,
                minimum=self.options.min_exchange_rate,
            )
        self.exchange_rate = rate
        if self.options.min_exchange_rate is None:
            self.minimum_rate = rate * (1 - self.options.slippage)
        self.sizer.set_maximum(max_packet_amount)
        self._changed.notify()

    def has_work(self) -> bool:
        """Whether `next_packet` may have something to send."""
        if self.state is State.CLOSED or self.destination_account is None or self._remote_closed:
            return False
        if self._queued or self._advert_pending or not self._remote_knows_address:
            return True
        for s in self._streams.values():
            if s._available_to_send() or s._out_bytes or s._retry:
                return True
            if s._closing and not s._close_queued and not s._remote_closed:
                return True
        return False

    def needs_rate(self) -> bool:
        """Whether money waits for the exchange rate to be measured."""
        return self.exchange_rate is None and any(
            s._available_to_send() for s in self._streams.values()
        )

    def next_packet(self) -> OutgoingPacket | None:
        """Build the next Prepare, holding the money and data it carries; None: nothing to send.

        Raises:
            StreamError: the connection reached its packet limit (RFC 29 §5.1.3).
        """
        if not self.has_work():
            return None
        assert self.destination_account is not None
        seq = self._next_sequence
        resend = list(self._queued)
        frames: list[Frame] = [*resend, *self._address_frames()]
        worth_sending = bool(frames) or self._advert_pending
        self._queued = []
        money: list[tuple[DataAndMoneyStream, int]] = []
        amount = 0
        rate = self.exchange_rate
        ordered = [self._streams[i] for i in sorted(self._streams)]
        if rate is not None:
            budget = self.sizer.packet_limit()
            for stream in ordered:
                available = stream._available_to_send()
                if not available:
                    continue
                capacity = stream._remote_capacity()
                allowed = (
                    available
                    if capacity >= UINT64_MAX
                    else min(available, source_for(capacity, rate))
                )
                if rate > 1:
                    allowed = min(allowed, source_for(UINT64_MAX, rate))
                send = min(allowed, budget)
                if send > 0:
                    stream._hold(seq, send, destination_for(send, rate))
                    frames.append(StreamMoneyFrame(stream.id, send))
                    money.append((stream, send))
                    amount += send
                    budget -= send
                if allowed < available:
                    frames.append(
                        StreamMoneyBlockedFrame(stream.id, stream._send_max, stream._total_sent)
                    )
                    if send == 0 and not stream._holds:
                        stream._blocked = True
                        stream._changed.notify()
                if budget <= 0:
                    break

        closing: list[DataAndMoneyStream] = []
        for stream in ordered:
            if (
                stream._closing
                and not stream._close_queued
                and not stream._remote_closed
                and not stream._holds
                and not stream._out_bytes
                and not stream._retry
                and not stream._in_flight_data
            ):
                frames.append(
                    StreamCloseFrame(stream.id, stream._close_code, stream._close_message)
                )
                stream._close_queued = True
                closing.append(stream)

        adverts: list[Frame] = []
        for stream in ordered:
            if stream.is_open:
                adverts.extend(self._adverts(stream))
        if self._max_connection_offset() > self._max_data_told:
            adverts.append(self._max_data_frame())
        self._advert_pending = False

        # Data, within the packet's room and the remote's connection window: the bytes sent on
        # every stream, or on open ones only for a remote that counts so.
        used = 32 + sum(len(encode_frame(f)) for f in (*frames, *adverts))
        room = _PLAINTEXT_LIMIT - used
        if self._remote_counts_open_streams:
            sent_offsets = sum(s._out_offset for s in self._streams.values())
            wanted = sum(s._data_wanted() for s in self._streams.values())
        else:
            sent_offsets = self._data_sent
            wanted = sent_offsets + sum(s._out_bytes for s in self._streams.values())
        conn_room = self._remote_max_offset - sent_offsets
        data_frames: list[Frame] = []
        data_streams: list[DataAndMoneyStream] = []
        data_bytes = 0
        blocked = wanted > self._remote_max_offset
        if blocked:
            data_frames.append(ConnectionDataBlockedFrame(wanted))
        for stream in ordered:
            if room - _DATA_FRAME_OVERHEAD <= 0:
                break
            budget = room - _DATA_FRAME_OVERHEAD
            if not stream._retry:
                budget = min(budget, conn_room)
            before = stream._out_offset
            taken = stream._take_data(seq, budget)
            if taken is not None:
                offset, chunk = taken
                data_frames.append(StreamDataFrame(stream.id, offset, chunk))
                data_streams.append(stream)
                data_bytes += len(chunk)
                room -= len(chunk) + _DATA_FRAME_OVERHEAD
                conn_room -= stream._out_offset - before
            if stream._data_wanted() > stream._remote_max_offset:
                data_frames.append(StreamDataBlockedFrame(stream.id, stream._data_wanted()))

        # Blocked with nothing else to send: one packet to ask, whose reply brings the remote's
        # limit (as ilp-protocol-stream's sender does); again once the remote read something.
        ask = blocked and not self._data_blocked_told
        if not (amount or data_streams or closing or worth_sending or ask):
            return None
        if blocked:
            self._data_blocked_told = True
        self._take_sequence()
        min_destination = 0
        if amount and self.minimum_rate is not None:
            min_destination = destination_for(amount, self.minimum_rate)
        all_frames = tuple(frames + adverts + data_frames)
        data = self._encrypt(StreamPacket(seq, IlpPacketType.PREPARE, min_destination, all_frames))
        fulfillment = self._keys.fulfillment(data)
        condition = condition_of(fulfillment)
        expires = self._expiry()
        prepare = encode_prepare(
            IlpPrepare(amount, expires, condition, self.destination_account, data)
        )
        return OutgoingPacket(
            seq,
            amount,
            min_destination,
            all_frames,
            prepare,
            condition,
            fulfillment,
            expires,
            money=tuple(money),
            data_streams=tuple(data_streams),
            closing_streams=tuple(closing),
            resend=tuple(resend),
            data_bytes=data_bytes,
            data_acked_before=self._data_acked,
        )

    def _open_reply(
        self, out: OutgoingPacket, data: bytes, kind: IlpPacketType
    ) -> StreamPacket | None:
        try:
            packet = decrypt_packet(data, self._keys)
        except StreamCodecError:
            return None
        if packet.sequence != out.sequence or packet.ilp_packet_type is not kind:
            return None
        self._remote_knows_address = True
        return packet

    def handle_reply(self, out: OutgoingPacket, raw: bytes | None) -> float:
        """Settle or undo ``out`` from its reply (None: none came before its expiry).

        Returns the seconds to wait before sending more (0: go on).

        Raises:
            StreamError: the subclass that ends the connection (see `stream.errors`).
        """
        if raw is None:
            self._undo(out)
            return self._temporary(out, "T00", "no reply before the packet expired")
        try:
            reply = decode_reply(raw)
        except CodecError as exc:
            self._undo(out)
            return self._temporary(out, "T00", f"unreadable reply: {exc}")
        self._touch()
        if isinstance(reply, IlpFulfill):
            if out.fulfillment is None or condition_of(reply.fulfillment) != out.condition:
                self._undo(out)
                raise RejectedError(
                    f"packet {out.sequence} came back with a fulfillment that does not match",
                    code="F05",
                )
            packet = (
                self._open_reply(out, reply.data, IlpPacketType.FULFILL) if reply.data else None
            )
            delivered = packet.prepare_amount if packet is not None else out.min_destination
            # Settle first: the reply's StreamMaxMoney totals already include this packet.
            self._settle(out, delivered)
            if packet is not None:
                self._apply_frames(packet.frames, out.data_acked_before + out.data_bytes)
                for frame in packet.frames:
                    if isinstance(frame, StreamReceiptFrame):
                        stream = self._streams.get(frame.stream_id)
                        if stream is not None:
                            stream.receipt = frame.receipt
            return 0.0

        self.counters.rejected += 1
        self._undo(out)
        code = reply.code
        if code == "F99" and reply.data:
            packet = self._open_reply(out, reply.data, IlpPacketType.REJECT)
            if packet is not None:
                self._apply_frames(packet.frames, out.data_acked_before)
                if out.source_amount and packet.prepare_amount < out.min_destination:
                    return self._rate_fell(out, packet.prepare_amount)
                self.counters.receiver_rejects_in_a_row += 1
                if self.counters.receiver_rejects_in_a_row > self.options.max_retries:
                    raise ReceiverRefusedError(
                        f"the receiver rejected {self.counters.receiver_rejects_in_a_row} "
                        "packets in a row"
                    )
                n = self.counters.receiver_rejects_in_a_row
                return 0.0 if n <= 1 else self._backoff(n - 1)
        if code == "F08":
            try:
                received, maximum = decode_amount_too_large_data(reply.data)
                pair: tuple[int | None, int | None] = (received, maximum)
            except CodecError:
                pair = (None, None)
            if self.sizer.on_amount_too_large(out.source_amount, *pair) == 0:
                raise NoRouteError(
                    "the path's maximum packet amount is 0: it carries no money",
                    code=code,
                    triggered_by=reply.triggered_by,
                    reject_message=reply.message,
                )
            return 0.0
        if code[:1] in ("T", "R"):
            if code == "T04":
                self.sizer.on_insufficient_liquidity(out.source_amount)
            return self._temporary(out, code, reply.message, reply.triggered_by)
        raise _final_error(reply)

    def _rate_fell(self, out: OutgoingPacket, arrived: int) -> float:
        rate = Fraction(arrived, out.source_amount)
        minimum = self.minimum_rate or Fraction(0)
        if rate < minimum:
            raise ExchangeRateError(
                f"the exchange rate fell to {_fmt(rate)}, below the minimum {_fmt(minimum)} "
                f"(a packet of {out.source_amount} delivered {arrived}, at least "
                f"{out.min_destination} needed)",
                rate=rate,
                minimum=minimum,
            )
        self.exchange_rate = rate
        return 0.0

    def _backoff(self, n: int) -> float:
        return float(
            min(self.options.retry_delay * 2 ** max(n - 1, 0), self.options.max_retry_delay)
        )

    def _temporary(self, out: OutgoingPacket, code: str, message: str, by: str = "") -> float:
        self.counters.temporary_in_a_row += 1
        n = self.counters.temporary_in_a_row
        if n > self.options.max_retries:
            what = "insufficient liquidity" if code == "T04" else "temporary errors"
            raise InsufficientLiquidityError(
                f"{what}: {n} packets in a row failed (last {code}"
                + (f" from {by}" if by else "")
                + (f": {message}" if message else "")
                + ")",
                code=code,
            )
        return self._backoff(n)

    def _settle(self, out: OutgoingPacket, delivered: int) -> None:
        self.counters.fulfilled += 1
        self.counters.temporary_in_a_row = 0
        self.counters.receiver_rejects_in_a_row = 0
        if out.money:
            parts = _split(delivered, [(i, s) for i, (_, s) in enumerate(out.money)])
            for (stream, _), (_, part) in zip(out.money, parts, strict=True):
                stream._settle(out.sequence, part)
        for stream in out.data_streams:
            stream._settle(out.sequence, 0)
        for stream in out.closing_streams:
            self._stream_close_told(stream)
        self._total_sent += out.source_amount
        self._total_delivered += delivered
        self._data_acked += out.data_bytes
        if out.source_amount:
            self.sizer.on_fulfill(out.source_amount)
            for cb in self._progress_callbacks:
                self._call(cb, self._total_sent, self._total_delivered)
        self._changed.notify()

    def _undo(self, out: OutgoingPacket) -> None:
        for stream, _ in out.money:
            stream._undo(out.sequence)
        for stream in out.data_streams:
            stream._undo(out.sequence)
        for stream in out.closing_streams:
            stream._close_queued = False
        for frame in out.frames:
            if isinstance(frame, ConnectionMaxDataFrame):
                self._max_data_told = 0  # tell it again
            elif isinstance(frame, ConnectionDataBlockedFrame):
                self._data_blocked_told = False
        if out.resend:
            queued = {type(f) for f in self._queued if isinstance(f, _LATEST_ONLY)}
            self._queued[:0] = [
                f
                for f in out.resend
                if not isinstance(f, ConnectionNewAddressFrame | ConnectionAssetDetailsFrame)
                and type(f) not in queued
            ]

    # --- internals -----------------------------------------------------------------------------

    def _new_stream(self, sid: int) -> DataAndMoneyStream:
        receive_max = UINT64_MAX if self.options.receive_max is None else self.options.receive_max
        stream = DataAndMoneyStream(
            self, sid, receive_max=receive_max, window=self.options.stream_window
        )
        self._streams[sid] = stream
        return stream

    def _stream_close_told(self, stream: DataAndMoneyStream) -> None:
        stream._close_acked = True
        self._retire(stream)

    def _retire(self, stream: DataAndMoneyStream) -> None:
        if (
            self._streams.get(stream.id) is stream
            and not stream._holds
            and not stream._in_flight_data
        ):
            del self._streams[stream.id]
            if stream.id % 2 != self._next_stream_id % 2:
                self._remote_stream_closed(stream.id)
        self._changed.notify()

    def _stream_id_closed(self, sid: int) -> bool:
        """Whether ``sid`` names a stream that was open once and is gone (RFC 29 §4.4.1: only a
        previously unused id opens a stream)."""
        if sid in self._streams:
            return False
        if sid % 2 == self._next_stream_id % 2:
            return sid < self._next_stream_id
        return sid <= self._remote_closed_floor or sid in self._remote_closed_ids

    def _remote_stream_closed(self, sid: int) -> None:
        """Remember that the remote's stream ``sid`` is closed, in bounded memory: the floor
        rises over closed ids in a row, and a set too large (the remote skipped an id) moves
        it to its least member, so ids never used below it count as closed."""
        floor = self._remote_closed_floor
        closed = self._remote_closed_ids
        if sid <= floor:
            return
        closed.add(sid)
        if len(closed) > _CLOSED_IDS_KEPT:
            floor = min(closed) - 2
        while floor + 2 in closed:
            floor += 2
            closed.discard(floor)
        self._remote_closed_floor = floor

    def _stream_closing(self, stream: DataAndMoneyStream) -> None:
        self._wake()

    def _window_changed(self) -> None:
        self._advert_pending = True
        self._wake()

    def _wake(self) -> None:
        if self._sender is not None:
            self._sender.wake()
        self._changed.notify()

    def _touch(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.last_active = asyncio.get_running_loop().time()

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self.state is not State.OPEN:
            raise ConnectionClosedError("the connection is closed")

    def _stamp(self, error: StreamError) -> StreamError:
        return error.with_amounts(self._total_sent, self._total_delivered)

    def _call(self, callback: Callable[..., object], *args: Any) -> None:
        try:
            result = callback(*args)
        except Exception:
            self._log_callback_error(getattr(callback, "__name__", "callback"))
            return
        if isinstance(result, Awaitable):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _log_callback_error(self, what: str) -> None:
        log.exception("STREAM %s raised", what)

    def _fail(self, error: StreamError, *, notify_remote: bool = True) -> None:
        """End the connection with ``error`` (waiters get it); tell the remote unless it closed."""
        if self.state is State.CLOSED:
            return
        if notify_remote and self._sender is not None and not self._remote_closed:
            self._sender.send_close_soon(ErrorCode.APPLICATION_ERROR, str(error)[:1000])
        self._finish(error)

    def _finish(self, error: StreamError | None) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        if error is not None:
            self._error = self._stamp(error)
        for stream in list(self._streams.values()):
            if error is not None:
                stream._fail(self._error)  # type: ignore[arg-type]
            else:
                stream._changed.notify()
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if self._sender is not None:
            self._sender.stop()
        self._changed.notify()
        for cb in self._close_callbacks:
            self._call(cb, self)

    def start_idle_timer(self) -> None:
        """Arm the idle timeout (one timer per connection, re-armed from the last activity)."""
        if self.options.idle_timeout <= 0 or self.state is State.CLOSED:
            return
        loop = asyncio.get_running_loop()
        if not self.last_active:
            self.last_active = loop.time()
        due = self.last_active + self.options.idle_timeout
        self._idle_handle = loop.call_at(due, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_handle = None
        if self.state is State.CLOSED:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self.last_active >= self.options.idle_timeout:
            self._fail(
                ConnectionClosedError(
                    f"no packet either way for {self.options.idle_timeout} s: closed as idle"
                )
            )
        else:
            self.start_idle_timer()

    def __repr__(self) -> str:
        role = "server" if self.is_server else "client"
        return (
            f"Connection({role}, to={self.destination_account!r}, state={self.state.value}, "
            f"sent={self._total_sent}, delivered={self._total_delivered}, "
            f"received={self._total_received})"
        )


def _split(amount: int, shares: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``amount`` divided by shares, floor, the remainder to the first entry (RFC 29 §5.3.8:
    the lowest-numbered stream, since frames are written in id order)."""
    total = sum(s for _, s in shares)
    if not shares:
        return []
    if total == 0:
        return [(key, 0) for key, _ in shares]
    parts = [(key, amount * s // total) for key, s in shares]
    rest = amount - sum(p for _, p in parts)
    if rest:
        low = min(range(len(parts)), key=lambda i: parts[i][0])
        key, p = parts[low]
        parts[low] = (key, p + rest)
    return parts


def _final_error(reply: IlpReject) -> RejectedError:
    where = f" (from {reply.triggered_by})" if reply.triggered_by else ""
    text = f": {reply.message}" if reply.message else ""
    if reply.code == "F02":
        return NoRouteError(
            f"no route to the destination: F02 Unreachable{where}{text}",
            code=reply.code,
            triggered_by=reply.triggered_by,
            reject_message=reply.message,
        )
    if reply.code == "F06":
        return RejectedError(
            f"the receiver could not read our packets (F06{where}): wrong shared secret or address",
            code=reply.code,
            triggered_by=reply.triggered_by,
            reject_message=reply.message,
        )
    return RejectedError(
        f"packet rejected with {reply.code}{where}{text}",
        code=reply.code,
        triggered_by=reply.triggered_by,
        reject_message=reply.message,
    )


def final_error_of(reply: IlpReject) -> RejectedError:
    """The `RejectedError` (or `NoRouteError` for F02) a final Reject stands for."""
    return _final_error(reply)


def _fmt(rate: Fraction) -> str:
    """A rate for messages: exact when whole, else 6 significant digits (decimal, no float)."""
    if rate.denominator == 1:
        return str(rate.numerator)
    with localcontext() as ctx:
        ctx.prec = 6
        return str(Decimal(rate.numerator) / Decimal(rate.denominator))
