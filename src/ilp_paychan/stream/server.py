"""The server end: `StreamServer` accepts STREAM connections on a v2 plugin.

It registers the plugin's data handler, learns its own ILP address and asset by ILDCP (unless
given), and answers each incoming Prepare: the address segment after its own names the
connection (a sealed token, see `stream.address`), from which it derives the connection's
secret, so nothing is stored before a connection's first packet. A token it did not make is F02
(nothing revealed, as ilp-protocol-stream does); a packet that does not decrypt under a token
it made is F06 (RFC 29 §4.2). Packets for a connection that closed lately get F99 with a
ConnectionClose so the client stops (a late closing packet, without money or data, is fulfilled
with it: see `Connection.handle_prepare`).

What it keeps is bounded in time: a closed connection is remembered (to answer its late
packets, and for `accept` if the application has not taken it yet) for ``idle_timeout``
seconds after it closed, then forgotten, by one sweep timer per server. A server whose
application never calls `accept` (it only uses callbacks) holds no more than that.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Final

from ..codec.errors import CodecError
from ..codec.ilp4 import IlpReject, decode_prepare, encode, encode_reject
from ..v2.interface import PluginV2
from ._signal import Changed
from .address import connection_id_of, generate_address_and_secret, open_token, token_of
from .client import fetch_config
from .connection import Connection, ConnectionOptions, ShouldFulfill
from .crypto import ConnectionKeys, shared_secret_from_token
from .errors import ConnectionClosedError, StreamCodecError, StreamError
from .sender import SendLoop
from .stream import DataAndMoneyStream

__all__ = ["StreamServer"]

log = logging.getLogger(__name__)

#: Closed connections remembered at most (to answer their late packets with ConnectionClose);
#: each is also forgotten ``idle_timeout`` seconds after it closed.
CLOSED_REMEMBERED: Final = 1024

ConnectionCallback = Callable[[Connection], object]
MoneyCallback = Callable[[Connection, int, int], object]


class StreamServer:
    """Accepts STREAM connections (RFC 29) on a v2 plugin and receives their money and data.

    Streams the clients open accept any amount unless ``options.receive_max`` says otherwise
    (set per stream with `DataAndMoneyStream.set_receive_max` in an ``on_stream`` callback).
    """

    def __init__(
        self,
        plugin: PluginV2,
        server_secret: bytes | None = None,
        *,
        address: str | None = None,
        asset_code: str = "",
        asset_scale: int = 0,
        options: ConnectionOptions | None = None,
        should_fulfill: ShouldFulfill | None = None,
    ) -> None:
        """``server_secret``: 32 bytes all connection secrets derive from (random if None;
        keep it to accept the same addresses after a restart). ``address``: skip ILDCP and use
        this ILP address (then ``asset_code``/``asset_scale`` are what we tell clients).
        ``should_fulfill``: every connection's `Connection.should_fulfill`, the application's
        say on each packet of money before it is counted (None: take all)."""
        if server_secret is None:
            server_secret = os.urandom(32)
        if not isinstance(server_secret, bytes | bytearray) or len(server_secret) != 32:
            raise ValueError("server_secret: must be 32 bytes")
        self._plugin = plugin
        self._secret = bytes(server_secret)
        self._address = address
        self._asset_code = asset_code
        self._asset_scale = asset_scale
        if should_fulfill is not None and not callable(should_fulfill):
            raise TypeError(
                f"should_fulfill: expected a callable, got {type(should_fulfill).__name__}"
            )
        self.options = options or ConnectionOptions()
        self.should_fulfill = should_fulfill
        """Given to each new connection (see `Connection.should_fulfill`)."""
        self._connections: dict[str, Connection] = {}
        self._closed: OrderedDict[str, Connection] = OrderedDict()
        self._closed_at: dict[str, float] = {}
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._pending: dict[str, Connection] = {}
        self._changed = Changed()
        self._connection_callbacks: list[ConnectionCallback] = []
        self._money_callbacks: list[MoneyCallback] = []
        self._listening = False
        self._closing = False

    # --- lifecycle -----------------------------------------------------------------------------

    async def listen(self) -> None:
        """Start accepting: register the data handler, connect the plugin if needed, and fetch
        our address and asset by ILDCP unless ``address`` was given. Idempotent.

        Raises:
            the plugin's error if its data handler is taken; `RejectedError` or
            `PaymentTimeoutError` if ILDCP fails.
        """
        if self._listening:
            return
        self._plugin.register_data_handler(self._handle)
        try:
            if not self._plugin.is_connected():
                await self._plugin.connect()
            if self._address is None:
                config = await fetch_config(self._plugin, timeout=self.options.packet_timeout)
                self._address = config.client_address
                self._asset_code = config.asset_code
                self._asset_scale = config.asset_scale
        except BaseException:
            self._plugin.deregister_data_handler()
            raise
        self._listening = True
        self._closing = False

    async def close(
        self,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - one deadline for the whole wait
    ) -> None:
        """Stop accepting (new Prepares get T99, as ilp-protocol-stream's server answers while
        shutting down), close every connection (flushing up to ``timeout`` s each, at once),
        then deregister the data handler. The plugin stays connected (the caller owns it)."""
        if not self._listening:
            return
        self._closing = True
        conns = list(self._connections.values())
        await asyncio.gather(*(self._close_one(c, timeout) for c in conns))
        self._plugin.deregister_data_handler()
        self._listening = False
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        self._changed.notify()

    @staticmethod
    async def _close_one(
        conn: Connection,
        timeout: float,  # noqa: ASYNC109 - one deadline for the whole wait
    ) -> None:
        try:
            await conn.close(timeout=timeout)
        except StreamError as exc:
            log.debug("closing %r: %s", conn, exc)

    async def __aenter__(self) -> StreamServer:
        await self.listen()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- addresses -----------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """Our ILP address (known once listening)."""
        if self._address is None:
            raise ConnectionClosedError("the server is not listening yet: call listen()")
        return self._address

    @property
    def asset_code(self) -> str:
        """Our asset code, as ILDCP gave it."""
        return self._asset_code

    @property
    def asset_scale(self) -> int:
        """Our asset scale, as ILDCP gave it."""
        return self._asset_scale

    def generate_address_and_secret(
        self,
        tag: str | None = None,
        *,
        receipt_nonce: bytes | None = None,
        receipt_secret: bytes | None = None,
    ) -> tuple[str, bytes]:
        """A fresh (destination address, shared secret) for one client, e.g. over SPSP.

        ``tag`` (ASCII) comes back as the connection's ``connection_tag``; with
        ``receipt_nonce`` (16 bytes) and ``receipt_secret`` (32) every Fulfill carries an RFC 39
        receipt.

        Raises:
            ConnectionClosedError: not listening yet (the address comes from ILDCP).
            StreamCodecError: a non-ASCII or too long tag, receipt fields of the wrong size.
        """
        return generate_address_and_secret(
            self._secret,
            self.address,
            connection_tag=tag,
            receipt_nonce=receipt_nonce,
            receipt_secret=receipt_secret,
        )

    # --- connections ---------------------------------------------------------------------------

    @property
    def connections(self) -> list[Connection]:
        """The connections open now."""
        return list(self._connections.values())

    def on_connection(self, callback: ConnectionCallback) -> None:
        """Call ``callback(connection)`` for each new connection, at its first packet (before
        any of its money is counted). A coroutine result is run as a task."""
        self._connection_callbacks.append(callback)

    def on_money(self, callback: MoneyCallback) -> None:
        """Call ``callback(connection, amount, total)`` for every amount received, ``total``
        being the connection's ``total_received`` with it (per stream: `Connection.on_money`)."""
        self._money_callbacks.append(callback)

    async def accept(self) -> Connection:
        """The next new connection (waits for one).

        Raises:
            ConnectionClosedError: the server closed.
        """
        while not self._pending:
            if not self._listening or self._closing:
                raise ConnectionClosedError("the server is closed")
            await self._changed.wait()
        connection_id = next(iter(self._pending))
        return self._pending.pop(connection_id)

    def __aiter__(self) -> AsyncIterator[Connection]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Connection]:
        while True:
            try:
                yield await self.accept()
            except ConnectionClosedError:
                return

    # --- packets -------------------------------------------------------------------------------

    async def _handle(self, data: bytes) -> bytes:
        address = self._address or ""
        try:
            prepare = decode_prepare(data)
        except CodecError as exc:
            return encode_reject(IlpReject("F00", address, f"not an ILP Prepare: {exc.reason}"))
        if self._closing or self._address is None:
            return encode_reject(IlpReject("T99", address, "Shutting down server"))
        connection_id = connection_id_of(self._address, prepare.destination)
        if connection_id is None:
            return encode_reject(IlpReject("F02", address))
        conn = self._connections.get(connection_id) or self._closed.get(connection_id)
        if conn is None:
            try:
                conn = self._open(connection_id, prepare.data)
            except StreamCodecError as exc:
                return encode_reject(IlpReject("F06" if exc.field == "data" else "F02", address))
        try:
            return encode(conn.handle_prepare(prepare))
        except Exception:
            # A bug must not escape into the plugin (which would drop the packet unanswered).
            log.exception("STREAM server failed on a Prepare for %s", prepare.destination)
            return encode_reject(IlpReject("T00", address, "internal error"))

    def _open(self, connection_id: str, data: bytes) -> Connection:
        token = token_of(connection_id)
        sealed = open_token(self._secret, token)
        secret = shared_secret_from_token(self._secret, token)
        ConnectionKeys(secret).decrypt(data)
        assert self._address is not None
        conn = Connection(
            plugin=self._plugin,
            shared_secret=secret,
            is_server=True,
            source_account=self._address,
            asset_code=self._asset_code,
            asset_scale=self._asset_scale,
            options=self.options,
            connection_tag=sealed.connection_tag,
            receipt_nonce=sealed.receipt_nonce,
            receipt_secret=sealed.receipt_secret,
        )
        conn.should_fulfill = self.should_fulfill
        self._connections[connection_id] = conn
        for callback in self._money_callbacks:
            conn.on_money(_bind_money(callback, conn))

        def closed(c: Connection) -> None:
            if self._connections.get(connection_id) is c:
                del self._connections[connection_id]
            self._remember_closed(connection_id, c)

        conn.on_close(closed)
        SendLoop(conn, self._plugin).start()
        conn.start_idle_timer()
        self._pending[connection_id] = conn
        for cb in self._connection_callbacks:
            conn._call(cb, conn)
        self._changed.notify()
        return conn

    def _remember_closed(self, connection_id: str, conn: Connection) -> None:
        self._closed[connection_id] = conn
        self._closed.move_to_end(connection_id)
        try:
            self._closed_at[connection_id] = asyncio.get_running_loop().time()
        except RuntimeError:
            self._closed_at[connection_id] = 0.0
        while len(self._closed) > CLOSED_REMEMBERED:
            self._forget(next(iter(self._closed)))
        self._arm_sweep()

    def _forget(self, connection_id: str) -> None:
        conn = self._closed.pop(connection_id, None)
        self._closed_at.pop(connection_id, None)
        if conn is not None and self._pending.get(connection_id) is conn:
            del self._pending[connection_id]

    def _arm_sweep(self) -> None:
        retention = self.options.idle_timeout
        if self._sweep_handle is not None or not self._closed or retention <= 0:
            return
        oldest = self._closed_at[next(iter(self._closed))]
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._sweep_handle = loop.call_at(oldest + retention, self._sweep)

    def _sweep(self) -> None:
        """Forget closed connections whose ``idle_timeout`` since closing has passed."""
        self._sweep_handle = None
        cutoff = asyncio.get_running_loop().time() - self.options.idle_timeout
        while self._closed:
            connection_id = next(iter(self._closed))
            if self._closed_at[connection_id] > cutoff:
                break
            self._forget(connection_id)
        self._arm_sweep()


def _bind_money(
    callback: MoneyCallback, conn: Connection
) -> Callable[[DataAndMoneyStream, int], object]:
    def on_money(stream: DataAndMoneyStream, amount: int) -> object:
        return callback(conn, amount, conn.total_received)

    return on_money
