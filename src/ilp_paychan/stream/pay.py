"""`pay`: one payment of a fixed amount over STREAM, the way SPSP senders pay (RFC 9).

Connect, open one stream, send the amount, close; report exactly what was sent (our units,
fulfilled) and delivered (the receiver's units, as it reported). Any failure raises the
`StreamError` subclass that names it, carrying the amounts that had moved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from ..v2.interface import PluginV2
from .client import connect
from .connection import Connection, ConnectionOptions
from .errors import ConnectionClosedError, PaymentTimeoutError, StreamError
from .rate import parse_rate
from .stream import parse_amount

__all__ = ["PaymentReceipt", "pay"]


@dataclass(frozen=True, slots=True)
class PaymentReceipt:
    """What a payment did. Amounts are ints (``sent``/``delivered`` give decimal strings).

    Attributes:
        destination_account: where the money went.
        amount: what was asked for, in our units.
        amount_sent: our units in packets whose Fulfill reached us (equals ``amount`` on
            success).
        amount_delivered: the receiver's units in those packets, as its Fulfills reported
            them: what was acknowledged. A packet the receiver fulfilled whose reply was lost
            (the plugin answered T00/R00, or nothing came before expiry) is not counted and its
            money was sent again, so the receiver may have received more than this.
        exchange_rate: the rate measured before paying (receiver units per our unit).
        source_asset / destination_asset: (code, scale); the receiver's if it told us.
        packets_fulfilled / packets_rejected: packets of ours the receiver fulfilled / that
            came back rejected (test packets not counted).
        stream_receipt: the last RFC 39 receipt the receiver gave, if receipts are on.
    """

    destination_account: str
    amount: int
    amount_sent: int
    amount_delivered: int
    exchange_rate: Fraction | None
    source_asset: tuple[str, int]
    destination_asset: tuple[str, int] | None
    packets_fulfilled: int
    packets_rejected: int
    stream_receipt: bytes | None = None

    @property
    def sent(self) -> str:
        """``amount_sent`` as a decimal string."""
        return str(self.amount_sent)

    @property
    def delivered(self) -> str:
        """``amount_delivered`` as a decimal string."""
        return str(self.amount_delivered)

    @property
    def complete(self) -> bool:
        """Whether the whole amount was sent."""
        return self.amount_sent == self.amount

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: amounts as decimal strings."""
        return {
            "destination": self.destination_account,
            "amount": str(self.amount),
            "sent": self.sent,
            "delivered": self.delivered,
            "exchangeRate": None if self.exchange_rate is None else str(self.exchange_rate),
            "sourceAsset": {"code": self.source_asset[0], "scale": self.source_asset[1]},
            "destinationAsset": None
            if self.destination_asset is None
            else {"code": self.destination_asset[0], "scale": self.destination_asset[1]},
        }


async def pay(
    plugin: PluginV2,
    destination_account: str,
    shared_secret: bytes,
    amount: int | str,
    *,
    min_exchange_rate: object = None,
    timeout: float | None = 60.0,  # noqa: ASYNC109 - one deadline for the whole wait
    options: ConnectionOptions | None = None,
    on_progress: Callable[[int, int], object] | None = None,
    receive: bool = True,
) -> PaymentReceipt:
    """Pay ``amount`` (our units) to a STREAM receiver; returns once all of it was delivered.

    Args:
        min_exchange_rate: the least receiver units per our unit (str, int, Decimal or
            Fraction, never float). Without it the rate measured at the start, less 1 %
            slippage, is the floor for every packet.
        timeout: seconds for the whole payment (None: no limit).
        options: the connection's other settings (`ConnectionOptions`).
        on_progress: ``callback(sent, delivered)`` after each fulfilled packet.
        receive: False to pay send-only (see `connect`): the receiver never sends us a packet,
            for a link that cannot carry its zero-amount packets (an LPI v1 link behind
            ilp-connector); ``destination_asset`` is then None.

    Raises:
        ValueError / TypeError: a bad amount, destination, secret or rate.
        NoRouteError: no route (F02), or a path that carries nothing.
        ExchangeRateError: the rate is (or fell) below the minimum, or could not be measured.
        ReceiverRefusedError: the receiver closed or will not take the whole amount.
        InsufficientLiquidityError: T04 (or other temporary errors) after every retry.
        RejectedError: another final ILP error.
        PaymentTimeoutError: ``timeout`` passed first.
        Each carries ``amount_sent`` and ``amount_delivered`` at the time it was raised.
    """
    value = parse_amount(amount)
    opts = options or ConnectionOptions()
    if min_exchange_rate is not None:
        opts = replace(opts, min_exchange_rate=parse_rate(min_exchange_rate))
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    conn: Connection | None = None
    stream = None
    try:
        async with asyncio.timeout_at(deadline):
            conn = await connect(
                plugin, destination_account, shared_secret, options=opts, receive=receive
            )
            if on_progress is not None:
                conn.on_progress(on_progress)
            if value:
                stream = conn.create_stream()
                await stream.send_money(value)
            await conn.close()
    except TimeoutError:
        err: StreamError = PaymentTimeoutError(f"the payment did not finish within {timeout} s")
        raise await _failed(conn, err, deadline) from None
    except StreamError as exc:
        raise await _failed(conn, exc, deadline) from None
    except BaseException:
        if conn is not None and not conn.closed:
            await conn.abort("payment cancelled")
        raise
    assert conn is not None
    stream_receipt = None if stream is None else stream.receipt
    return PaymentReceipt(
        destination_account=destination_account,
        amount=value,
        amount_sent=conn.total_sent,
        amount_delivered=conn.total_delivered,
        exchange_rate=conn.exchange_rate,
        source_asset=(conn.asset_code, conn.asset_scale),
        destination_asset=conn.destination_asset,
        packets_fulfilled=conn.counters.fulfilled,
        packets_rejected=conn.counters.rejected,
        stream_receipt=stream_receipt,
    )


async def _failed(
    conn: Connection | None, error: StreamError, deadline: float | None
) -> StreamError:
    """End the connection after ``error`` and stamp the settled amounts on it, within the
    caller's deadline: packets still in flight then are abandoned and reported as
    ``amount_in_flight`` rather than waited for (up to their expiry, 30 s by default)."""
    if conn is None:
        return error
    loop = asyncio.get_running_loop()
    limit = conn.options.packet_timeout + 1.0
    if deadline is not None:
        limit = min(limit, max(deadline - loop.time(), 0.0))
    try:
        async with asyncio.timeout(limit):
            if not conn.closed:
                await conn.abort(str(error)[:1000])
            if conn._sender is not None:
                await conn._sender.drained()
    except TimeoutError:
        if not conn.closed:
            conn._finish(ConnectionClosedError(str(error)[:1000]))
    error.with_amounts(conn.total_sent, conn.total_delivered)
    if conn._sender is not None:
        error.amount_in_flight = await conn._sender.abandon()
    return error
