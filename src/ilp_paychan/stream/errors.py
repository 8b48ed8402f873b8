"""The errors of STREAM: the packet codec's, and those a connection, a stream or `pay` raises.

The codec's two are `codec.CodecError`s (so `ValueError`s with a ``field``): a caller that handles
bad bytes from a peer needs one ``except CodecError``, whichever layer found the fault.

The others are `StreamError`s, one class per way a payment or connection fails, so that a caller
(the CLI's ``pay`` among them) can say in one line what went wrong without parsing messages.
Each carries what had moved when it was raised: ``amount_sent`` (our units, fulfilled) and
``amount_delivered`` (the receiver's units, as the receiver reported them).
"""

from __future__ import annotations

from fractions import Fraction

from ..codec.errors import CodecError

__all__ = [
    "ConnectionClosedError",
    "DecryptionError",
    "ExchangeRateError",
    "InsufficientLiquidityError",
    "NoRouteError",
    "PaymentTimeoutError",
    "ReceiverRefusedError",
    "RejectedError",
    "StreamCodecError",
    "StreamError",
]


class StreamCodecError(CodecError):
    """A STREAM packet, frame, token or receipt that cannot be decoded, or a value that cannot be
    encoded.

    ``field`` names the offending field as RFC 29 and ilp-protocol-stream spell it, prefixed by
    the frame's name inside a frame (``"StreamMaxMoney.receiveMax"``).
    """


class DecryptionError(StreamCodecError):
    """Ciphertext that does not authenticate under the key: another connection's packet, a wrong
    shared secret, or bytes changed on the way. RFC 29 §4.2 has a receiver answer F06."""


class StreamError(Exception):
    """A STREAM connection, stream or payment failed; the subclass says how.

    ``amount_sent`` and ``amount_delivered`` are the connection's totals when it failed (0 when
    nothing had been paid), so a caller can report a partial payment exactly.
    ``amount_in_flight`` is our units in packets whose reply had not come when the caller's
    time ran out: they were abandoned unsettled and may still have been paid out.
    """

    def __init__(self, message: str, *, amount_sent: int = 0, amount_delivered: int = 0) -> None:
        super().__init__(message)
        self.amount_sent = amount_sent
        self.amount_delivered = amount_delivered
        self.amount_in_flight = 0

    def with_amounts(self, sent: int, delivered: int) -> StreamError:
        """Record the connection's totals on this error (returns it, for ``raise``)."""
        self.amount_sent = sent
        self.amount_delivered = delivered
        return self


class RejectedError(StreamError):
    """A connector (or the receiver, outside STREAM's own replies) refused a packet with a final
    ILP error that retrying cannot fix.

    Attributes:
        code: the ILP error code (``"F02"``, ``"F06"``…).
        triggered_by: the address of whoever refused (may be empty).
        reject_message: the Reject's message text.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        triggered_by: str = "",
        reject_message: str = "",
        amount_sent: int = 0,
        amount_delivered: int = 0,
    ) -> None:
        super().__init__(message, amount_sent=amount_sent, amount_delivered=amount_delivered)
        self.code = code
        self.triggered_by = triggered_by
        self.reject_message = reject_message


class NoRouteError(RejectedError):
    """No route to the destination: F02 Unreachable (RFC 27), or a path whose maximum packet
    amount is zero."""


class ExchangeRateError(StreamError):
    """The path's exchange rate is below the minimum the sender accepts, or no rate could be
    measured (every test packet lost, or nothing arrives).

    Attributes:
        rate: the measured rate (receiver units per sender unit), None if none was measured.
        minimum: the least rate the sender accepts, None if it had none yet.
    """

    def __init__(
        self,
        message: str,
        *,
        rate: Fraction | None = None,
        minimum: Fraction | None = None,
        amount_sent: int = 0,
        amount_delivered: int = 0,
    ) -> None:
        super().__init__(message, amount_sent=amount_sent, amount_delivered=amount_delivered)
        self.rate = rate
        self.minimum = minimum


class ReceiverRefusedError(StreamError):
    """The receiver will take no more: it closed the connection or the stream (with ``code``, an
    RFC 29 §5.4 `ErrorCode` or None), or its receive maximum leaves no room for what is left to
    send, or it keeps rejecting our packets."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        amount_sent: int = 0,
        amount_delivered: int = 0,
    ) -> None:
        super().__init__(message, amount_sent=amount_sent, amount_delivered=amount_delivered)
        self.code = code


class InsufficientLiquidityError(StreamError):
    """Temporary errors (T04 Insufficient Liquidity and other T or R codes) went on after every
    retry with backoff; ``code`` is the last one."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        amount_sent: int = 0,
        amount_delivered: int = 0,
    ) -> None:
        super().__init__(message, amount_sent=amount_sent, amount_delivered=amount_delivered)
        self.code = code


class PaymentTimeoutError(StreamError, TimeoutError):
    """The payment (or a wait on a stream) did not finish within its time limit."""


class ConnectionClosedError(StreamError):
    """The connection or stream is closed (by us, or after an error): nothing more can be sent
    or received on it."""
