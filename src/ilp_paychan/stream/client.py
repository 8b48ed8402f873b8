"""The client end: `connect` opens a connection to a STREAM server over a v2 plugin.

What it does, as ilp-protocol-stream's ``createConnection`` does: connect the plugin if needed,
ask the parent for our ILP address and asset by ILDCP (RFC 31), tell the server our address
(ConnectionNewAddress, RFC 29 §4.3.1) and asset (ConnectionAssetDetails), and measure the
exchange rate with test packets before returning. To receive (money or data the server sends),
the client registers one data handler per plugin and gives each connection its own address
segment under the plugin's (RFC 29 §4.2 allows extra segments), so several connections share a
plugin; with ``receive=False`` nothing is registered and the server is not told our address,
so it never sends us a packet (a send-only connection, for links that cannot carry the server's
zero-amount packets).
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime, timedelta

from ..codec.address import is_valid_address
from ..codec.condition import b64url_encode
from ..codec.errors import CodecError
from ..codec.ildcp import (
    DEFAULT_EXPIRY,
    IldcpRequest,
    IldcpResponse,
    decode_response,
    encode_request,
)
from ..codec.ilp4 import IlpReject, decode_prepare, decode_reply, encode, encode_reject
from ..v2.interface import PluginV2
from .address import connection_id_of
from .connection import Connection, ConnectionOptions
from .errors import PaymentTimeoutError, RejectedError, StreamError
from .rate import parse_rate
from .sender import SendLoop

__all__ = ["connect", "fetch_config"]

log = logging.getLogger(__name__)


async def fetch_config(
    plugin: PluginV2,
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 - one deadline for the whole wait
) -> IldcpResponse:
    """Our ILP address, asset code and scale from the plugin's parent (ILDCP, RFC 31).

    Raises:
        RejectedError: the parent refused (its code and message).
        PaymentTimeoutError: no answer within ``timeout`` seconds.
        StreamError: an answer that is not an ILDCP response.
    """
    expires = datetime.now(UTC) + min(DEFAULT_EXPIRY, timedelta(seconds=timeout))
    try:
        async with asyncio.timeout(timeout):
            raw = await plugin.send_data(encode_request(IldcpRequest(expires)))
    except TimeoutError:
        raise PaymentTimeoutError(
            f"no ILDCP answer from the plugin's parent in {timeout} s"
        ) from None
    try:
        reply = decode_reply(raw)
        if isinstance(reply, IlpReject):
            raise RejectedError(
                f"the parent refused ILDCP with {reply.code}"
                + (f": {reply.message}" if reply.message else ""),
                code=reply.code,
                triggered_by=reply.triggered_by,
                reject_message=reply.message,
            )
        return decode_response(raw)
    except CodecError as exc:
        raise StreamError(f"unreadable ILDCP answer ({exc.field}: {exc.reason})") from None


class _ClientEndpoint:
    """Incoming Prepares for the client connections over one plugin, by address segment."""

    def __init__(self, plugin: PluginV2, address: str) -> None:
        self.plugin = plugin
        self.address = address
        self.connections: dict[str, Connection] = {}

    async def handle(self, data: bytes) -> bytes:
        try:
            prepare = decode_prepare(data)
        except CodecError as exc:
            return encode_reject(IlpReject("F00", self.address, f"not an ILP Prepare: {exc}"))
        segment = connection_id_of(self.address, prepare.destination)
        conn = self.connections.get(segment or "")
        if conn is None:
            return encode_reject(IlpReject("F02", self.address))
        try:
            return encode(conn.handle_prepare(prepare))
        except Exception:
            # A bug must not escape into the plugin (which would drop the packet unanswered).
            log.exception("STREAM client failed on a Prepare for %s", prepare.destination)
            return encode_reject(IlpReject("T00", self.address, "internal error"))


_endpoints: dict[int, _ClientEndpoint] = {}


def _attach(plugin: PluginV2, address: str, conn: Connection) -> str | None:
    """Route incoming Prepares for a new segment to ``conn``; None if the plugin's data handler
    belongs to someone else."""
    endpoint = _endpoints.get(id(plugin))
    if endpoint is None or endpoint.plugin is not plugin:
        endpoint = _ClientEndpoint(plugin, address)
        try:
            plugin.register_data_handler(endpoint.handle)
        except Exception as exc:
            log.info("not receiving on this STREAM connection: %s", exc)
            return None
        _endpoints[id(plugin)] = endpoint
    segment = b64url_encode(os.urandom(9))
    endpoint.connections[segment] = conn

    def detach(_: Connection) -> None:
        endpoint.connections.pop(segment, None)
        if not endpoint.connections and _endpoints.get(id(plugin)) is endpoint:
            del _endpoints[id(plugin)]
            try:
                plugin.deregister_data_handler()
            except Exception:
                log.debug("deregistering the STREAM client's data handler failed", exc_info=True)

    conn.on_close(detach)
    return f"{endpoint.address}.{segment}"


async def connect(
    plugin: PluginV2,
    destination_account: str,
    shared_secret: bytes,
    *,
    min_exchange_rate: object = None,
    options: ConnectionOptions | None = None,
    receive: bool = True,
    timeout: float | None = None,  # noqa: ASYNC109 - one deadline for the whole wait
) -> Connection:
    """Open a STREAM connection to ``destination_account`` (from SPSP, say) with its secret.

    Returns once the exchange rate is known (test packets went through), so routing and rate
    problems show here rather than at the first payment. The plugin is connected if it is not;
    it is never disconnected by the connection (the caller owns it).

    Args:
        min_exchange_rate: least receiver units per sender unit (str, int, Decimal or Fraction;
            not float); overrides ``options.min_exchange_rate``.
        options: see `ConnectionOptions`.
        receive: accept money and data the server sends (registers a data handler on the
            plugin if none is set). False: send only; the server is not told our address
            (no ConnectionNewAddress), so it sends nothing and does not tell us its asset.
        timeout: seconds for the whole setup (ILDCP and rate probe).

    Raises:
        ValueError / TypeError: a bad destination, secret or rate (naming the argument).
        NoRouteError, RejectedError, ExchangeRateError, PaymentTimeoutError: see `stream.errors`.
    """
    if not isinstance(destination_account, str) or not is_valid_address(destination_account):
        raise ValueError(f"destination_account: {destination_account!r} is not an ILP address")
    if not isinstance(shared_secret, bytes | bytearray) or not shared_secret:
        raise ValueError("shared_secret: must be non-empty bytes")
    opts = options or ConnectionOptions()
    if min_exchange_rate is not None:
        from dataclasses import replace

        opts = replace(opts, min_exchange_rate=parse_rate(min_exchange_rate))
    conn: Connection | None = None
    try:
        async with asyncio.timeout(timeout):
            if not plugin.is_connected():
                await plugin.connect()
            config = await fetch_config(plugin, timeout=opts.packet_timeout)
            conn = Connection(
                plugin=plugin,
                shared_secret=bytes(shared_secret),
                is_server=False,
                source_account=config.client_address,
                asset_code=config.asset_code,
                asset_scale=config.asset_scale,
                destination_account=destination_account,
                options=opts,
                advertise_address=receive,
            )
            if receive:
                address = _attach(plugin, config.client_address, conn)
                if address is not None:
                    conn.source_account = address
            sender = SendLoop(conn, plugin)
            sender.start()
            conn.start_idle_timer()
            await sender.ensure_rate()
            return conn
    except TimeoutError:
        err = PaymentTimeoutError(f"connecting to {destination_account} took over {timeout} s")
        if conn is not None:
            conn._fail(err)
        raise err from None
    except BaseException as exc:
        if conn is not None and not conn.closed:
            conn._fail(
                exc if isinstance(exc, StreamError) else StreamError(f"setup failed: {exc!r}")
            )
        raise
