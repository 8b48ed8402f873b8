"""`BtpPlugin`: the LPI v2 plugin over BTP 2.0 (RFC 23), as ilp-plugin-btp 1.5.0 is in JS.

What it does on the wire (as ilp-plugin-btp, so either can be the other's peer):
- `send_data(prepare)` sends a BTP Message whose protocol data is one `ilp` entry (octet stream)
  holding the ILPv4 Prepare; the peer's Response carries the Fulfill or Reject in its `ilp`
  entry. An incoming Message is answered likewise from the data handler (a Message without `ilp`
  gets an empty Response).
- `send_money(amount)` sends a BTP Transfer of `amount`; an incoming Transfer goes to the money
  handler and is answered with an empty Response.
- A client dials `server` and authenticates (RFC 23: `auth`, `auth_username`, `auth_token`); a
  listener accepts a client whose `auth_token` is `listener.secret`, whatever its username. The
  newest authenticated client replaces an older one.

Where it differs from ilp-plugin-btp, and why (docs/v2.md has the full list):
- A listener's `connect()` returns once it is bound; ilp-plugin-btp's returns only once a client
  has authenticated, which deadlocks a program that connects its two ends one after the other.
  `is_connected()` and the `connect` event say when a client is there.
- `send_data` answers with a Reject instead of raising whenever the peer cannot give an answer:
  no answer before the Prepare's expiry or `responseTimeout` (R00), no link (T01), a BTP Error
  from the peer (T00), an answer that is no Fulfill or Reject (T00), a Fulfill that does not
  match the condition (F05). A STREAM sender or a connector needs a Reject to go on;
  ilp-plugin-btp throws. It still raises for a malformed Prepare (`InvalidInputError`) and
  before `connect()` (`NotConnectedError`).
- An incoming Prepare with no data handler registered is answered with an F02 Reject, and one
  whose handler raises with a T00 Reject (ilp-plugin-btp answers both with a BTP Error, which
  makes the sender's `sendData` throw). A malformed Prepare gets F01.
- `send_money` sends a Transfer (ilp-plugin-btp's is a no-op) and an incoming Transfer reaches
  the money handler (ilp-plugin-btp refuses it).

The packet path does no repeated encoding and starts no timer per request: the transport's
connection runs one timer for every pending request, each with its own deadline.

Balances: the plugin keeps none. It calls an `Accounting` object (`v2.accounting`) at fixed
points of the packet and money paths; none is the default (pass-through), and that seam is where
the durable trustline plugs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from ilp_paychan.codec.btp import ContentType, Error, Message, ProtocolData, Response
from ilp_paychan.codec.btp2 import Transfer
from ilp_paychan.codec.errors import CodecError
from ilp_paychan.codec.ildcp import ILDCP_DESTINATION, encode_error
from ilp_paychan.codec.ilp4 import (
    TYPE_FULFILL,
    TYPE_REJECT,
    IlpFulfill,
    IlpPrepare,
    IlpReject,
    decode_prepare,
    decode_reject,
    decode_reply,
    encode_reject,
)
from ilp_paychan.codec.oer import UINT64_MAX
from ilp_paychan.errors import (
    NotAcceptedError,
    NotConnectedError,
    PeerError,
    PeerTimeoutError,
    UnreachableError,
)
from ilp_paychan.plugin.events import EventEmitter
from ilp_paychan.transport.client import BtpClient
from ilp_paychan.transport.connection import ConnectionLostError
from ilp_paychan.transport.events import Request2
from ilp_paychan.transport.server import BtpListener
from ilp_paychan.v2 import ildcp
from ilp_paychan.v2.accounting import Accounting
from ilp_paychan.v2.errors import (
    DataHandlerAlreadyRegisteredError,
    InvalidInputError,
    MoneyHandlerAlreadyRegisteredError,
)
from ilp_paychan.v2.interface import V2_EVENTS, DataHandler, MoneyHandler
from ilp_paychan.v2.options import BtpPluginSettings, normalise_btp_options, parse_btp_settings

log = logging.getLogger("ilp_paychan.v2")

_ILP: Final = "ilp"
_EMPTY_RESPONSE: Final = Response(0, ())
_DIGITS: Final = frozenset("0123456789")
#: Longest Reject message we copy from an exception or a peer's error (RFC 27 allows 8191).
_MAX_MESSAGE: Final = 1000


class BtpPlugin:
    """An LPI v2 plugin speaking BTP 2.0: a client (`server`) or a listener (`listener`).

    Args:
        options: ilp-plugin-btp's options mapping (camelCase); snake_case keywords work too.
            `server`: ``btp+ws://user:token@host:port[/path]`` or ``btp+wss://...``;
            `listener`: ``{port, host, secret, cert, key, ca, clientCa}``;
            `reconnectInterval` (ms, the longest wait between redials, default 1000),
            `responseTimeout` (ms, default 35000); client TLS: `ca`, `clientCert`, `clientKey`;
            `btpAccount`/`btpToken` (instead of the URL's credentials); `address` (ours, the
            `triggeredBy` of Rejects we make); `ildcp` (listener: ``{clientAddress |
            addressPrefix, assetCode, assetScale}``, answered to the client's ILDCP request);
            the durable trustline: `balance` (``{maximum, minimum, settleThreshold,
            settleTo}``, ilp-connector's), `store` (URL or SQLite path), `storeKey`,
            `settlement` (a payment-channel module; see `v2.settlement`), `settledRetention`
            (seconds a settled packet is kept after its expiry: 10 on `memory:`, 3600 on a
            durable store; see `v2.trustline_options`).
        accounting: the balance seam (`v2.accounting.Accounting`); None keeps no balance
            (unless `balance` or `store` is given: then a `v2.trustline.Trustline`).

    Raises:
        InvalidFieldsError: an option is missing, unknown or malformed (the message names it).
    """

    def __init__(
        self,
        options: Mapping[str, Any] | None = None,
        /,
        *,
        accounting: Accounting | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings: BtpPluginSettings = parse_btp_settings(
            normalise_btp_options(options, kwargs)
        )
        if accounting is None and self.settings.trustline is not None:
            from ilp_paychan.v2.trustline import Trustline

            accounting = Trustline(self.settings.trustline)
        self._accounting = accounting
        self._events = EventEmitter(V2_EVENTS)
        self._data_handler: DataHandler | None = None
        self._money_handler: MoneyHandler | None = None
        self._link: BtpListener | BtpClient | None = None
        self._started = False
        self._lock: asyncio.Lock | None = None
        self._observers: list[Any] = []
        self._on_packet: tuple[Callable[[str, str, str], None], ...] = ()
        self._on_round_trip: tuple[Callable[[str, float], None], ...] = ()
        self._on_link: tuple[Callable[[bool], None], ...] = ()
        address = self.settings.address
        self._address = address
        self._timeout = self.settings.response_timeout
        self._ildcp = self.settings.ildcp
        self._serve_ildcp = self.settings.is_listener
        # The Rejects whose text never changes, encoded once.
        self._no_handler = encode_reject(IlpReject("F02", address, "no request handler registered"))
        self._unreachable = encode_reject(
            IlpReject("T01", address, "no authenticated connection to the peer")
        )
        self._lost = encode_reject(
            IlpReject(
                "T01", address, "the connection to the peer closed before it answered the Prepare"
            )
        )
        self._timed_out = encode_reject(
            IlpReject("R00", address, "the peer did not answer before the Prepare's expiry")
        )
        self._expired = encode_reject(
            IlpReject("R00", address, "the Prepare expired before it was sent")
        )
        self._no_reply = encode_reject(
            IlpReject("T00", address, "the peer answered without an ILP Fulfill or Reject")
        )
        self._wrong_fulfillment = encode_reject(
            IlpReject("F05", address, "the fulfillment does not match the condition")
        )
        self._handler_cancelled = encode_reject(
            IlpReject("T00", address, "the data handler was cancelled before it answered")
        )
        self._bad_handler_reply = encode_reject(
            IlpReject("T00", address, "the data handler returned no ILP Fulfill or Reject")
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def accounting(self) -> Accounting | None:
        """The balance seam in use (a `Trustline` with `balance`/`store`), or None."""
        return self._accounting

    async def request_side_protocol(
        self,
        entry: ProtocolData,
        timeout: float | None = None,  # noqa: ASYNC109 - the connection's single timer enforces it
    ) -> bytes | None:
        """Send a BTP Message carrying one side-protocol entry; returns the data of the peer's
        entry of the same name in its Response, or None when it has none.

        Raises:
            NotConnectedError: not connected. PeerError: the peer answered a BTP Error.
            UnreachableError, PeerTimeoutError: no link, or no answer in time.
        """
        link = self._link
        if not self._started or link is None:
            raise NotConnectedError("the plugin is not connected; call connect() first")
        response = await link.request(
            Message(0, (entry,)), self._timeout if timeout is None else timeout
        )
        found = None
        for answer in response.protocol_data:
            if answer.protocol_name == entry.protocol_name:
                found = answer.data
        return found

    @property
    def listener_port(self) -> int | None:
        """The bound port of a listener once connected (useful with port 0), else None."""
        link = self._link
        return link.port if isinstance(link, BtpListener) and self._started else None

    async def connect(self) -> None:
        """Client: dial and authenticate; returns once the link is up. Listener: bind and return
        at once (a client may come later: see `is_connected()` and the `connect` event).
        Idempotent; works again after `disconnect()`.

        Raises:
            UnreachableError: the server cannot be reached.
            NotAcceptedError: the server refused our credentials (a `PeerError`).
            InvalidFieldsError: a TLS file cannot be read, or the port cannot be bound.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._started:
                return
            link = self._link
            if link is None:
                link = self._link = self._make_link()
                link.on_state_change(self._link_state)
            if self._accounting is not None:
                await self._accounting.open(self)
            link.set_request_handler(self._on_request)
            try:
                await link.start()
            except BaseException:
                if self._accounting is not None:
                    await self._accounting.close()
                raise
            self._started = True

    async def disconnect(self) -> None:
        """Close the link (requests in flight fail: their `send_data` gets a Reject)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._started:
                return
            self._started = False
            link = self._link
            if link is not None:
                await link.stop()
            if self._accounting is not None:
                await self._accounting.close()

    def is_connected(self) -> bool:
        """Whether an authenticated socket to the peer is up now (for a listener: a client)."""
        link = self._link
        return self._started and link is not None and link.is_open()

    def _make_link(self) -> BtpListener | BtpClient:
        settings = self.settings
        listener = settings.listener
        if listener is not None:
            return BtpListener(
                listener.port,
                listener.host,
                cert=listener.cert,
                key=listener.key,
                ca=listener.ca,
                client_ca=listener.client_ca,
                incoming_secret=listener.secret,
                request_timeout=settings.response_timeout,
                version="2.0",
            )
        assert settings.server is not None
        interval = settings.reconnect_interval
        return BtpClient(
            settings.server,
            ca=settings.ca,
            cert=settings.client_cert,
            key=settings.client_key,
            request_timeout=settings.response_timeout,
            backoff_initial=min(0.05, interval),
            backoff_max=interval,
            version="2.0",
        )

    def _link_state(self, up: bool) -> None:
        for callback in self._on_link:
            try:
                callback(up)
            except Exception:
                log.exception("observer link_changed raised")
        self._events.emit("connect" if up else "disconnect")

    # ------------------------------------------------------------------ events and observers

    def on(self, event: str, callback: Callable[..., Any]) -> None:
        """Call `callback` on `event`: "connect", "disconnect" or "error" (with the exception)."""
        self._events.on(event, callback)

    def off(self, event: str, callback: Callable[..., Any]) -> None:
        """Stop calling `callback` on `event`."""
        self._events.off(event, callback)

    def add_observer(self, observer: Any) -> None:
        """Tell `observer` of packets, round trips and link changes (see `v2.observe`)."""
        self._observers.append(observer)
        self._collect_observers()

    def remove_observer(self, observer: Any) -> None:
        """Stop telling `observer`."""
        if observer in self._observers:
            self._observers.remove(observer)
            self._collect_observers()

    def _collect_observers(self) -> None:
        def methods(name: str) -> tuple[Any, ...]:
            found = (getattr(o, name, None) for o in self._observers)
            return tuple(m for m in found if callable(m))

        self._on_packet = methods("packet")
        self._on_round_trip = methods("round_trip")
        self._on_link = methods("link_changed")

    def _count(self, direction: str, kind: str, code: str = "") -> None:
        for callback in self._on_packet:
            try:
                callback(direction, kind, code)
            except Exception:
                log.exception("observer packet raised")

    def _count_reply(self, direction: str, reply: bytes) -> None:
        if reply[0] == TYPE_FULFILL:
            self._count(direction, "fulfill")
        else:
            try:
                code = decode_reject(reply).code
            except CodecError:
                code = "???"
            self._count(direction, "reject", code)

    def _timed(self, kind: str, seconds: float) -> None:
        for callback in self._on_round_trip:
            try:
                callback(kind, seconds)
            except Exception:
                log.exception("observer round_trip raised")

    def _error(self, exc: BaseException) -> None:
        self._events.emit("error", exc)

    # ------------------------------------------------------------------ handlers

    def register_data_handler(self, handler: DataHandler) -> None:
        """Set the one handler of incoming Prepares: ``async (prepare: bytes) -> bytes``.

        Raises:
            DataHandlerAlreadyRegisteredError: one is registered; deregister it first.
            TypeError: `handler` is not callable.
        """
        if self._data_handler is not None:
            raise DataHandlerAlreadyRegisteredError("a data handler is already registered")
        if not callable(handler):
            raise TypeError(f"the data handler must be callable; got {handler!r}")
        self._data_handler = handler

    def deregister_data_handler(self) -> None:
        """Remove the data handler; incoming Prepares are then rejected with F02."""
        self._data_handler = None

    def register_money_handler(self, handler: MoneyHandler) -> None:
        """Set the one handler of incoming money: ``async (amount: str) -> None``.

        Raises:
            MoneyHandlerAlreadyRegisteredError: one is registered; deregister it first.
            TypeError: `handler` is not callable.
        """
        if self._money_handler is not None:
            raise MoneyHandlerAlreadyRegisteredError("a money handler is already registered")
        if not callable(handler):
            raise TypeError(f"the money handler must be callable; got {handler!r}")
        self._money_handler = handler

    def deregister_money_handler(self) -> None:
        """Remove the money handler; incoming Transfers are then refused (BTP Error F00)."""
        self._money_handler = None

    # ------------------------------------------------------------------ outgoing

    async def send_data(self, data: bytes) -> bytes:
        """Send an ILPv4 Prepare to the peer; returns its Fulfill or Reject (ILPv4 bytes).

        The wait ends at the Prepare's expiry or after `responseTimeout`, whichever is first;
        then, and whenever the peer cannot answer, the result is a Reject made here (see the
        module docstring for the codes), with `address` as `triggeredBy`.

        Raises:
            InvalidInputError: `data` is not an ILPv4 Prepare (the message names the field).
            NotConnectedError: `connect()` was not called, or `disconnect()` was.
        """
        if type(data) is not bytes:
            if not isinstance(data, bytearray | memoryview):
                raise InvalidInputError(
                    f"expected the ILPv4 Prepare as bytes; got {type(data).__name__}",
                    field="data",
                )
            data = bytes(data)
        try:
            prepare = decode_prepare(data)
        except CodecError as exc:
            raise InvalidInputError(exc.reason, field=exc.field) from None
        link = self._link
        if not self._started or link is None:
            raise NotConnectedError("the plugin is not connected; call connect() first")
        if self._on_packet:
            self._count("outgoing", "prepare")
        accounting = self._accounting
        if accounting is not None:
            try:
                local = await accounting.outgoing_prepare(prepare)
            except Exception as exc:
                local = self._local_failure(exc, "accounting failed on the outgoing Prepare")
            if local is not None:
                if self._on_packet:
                    self._count_reply("outgoing", local)
                return local
        left = prepare.expires_at.timestamp() - time.time()
        if left <= 0:
            reply, answered = self._expired, False
        else:
            try:
                reply, answered = await self._request_data(
                    link, data, left if left < self._timeout else self._timeout
                )
            except BaseException:
                # The caller gave up (cancelled) after the Prepare may have gone out: the
                # accounting must still learn that its answer is unknown, or it stays held.
                if accounting is not None:
                    with contextlib.suppress(Exception):
                        await accounting.outgoing_settled(prepare, self._lost, False, False)
                raise
            if answered:
                reply = self._check_fulfillment(prepare, reply)
        if accounting is not None:
            fulfilled = reply[0] == TYPE_FULFILL
            try:
                instead = await accounting.outgoing_settled(prepare, reply, fulfilled, answered)
            except Exception:
                log.exception("accounting failed to record the result of an outgoing Prepare")
            else:
                if instead is not None:
                    reply = instead
        if self._on_packet:
            self._count_reply("outgoing", reply)
        return reply

    async def _request_data(
        self,
        link: BtpListener | BtpClient,
        data: bytes,
        timeout: float,  # noqa: ASYNC109 - the connection's single timer enforces it
    ) -> tuple[bytes, bool]:
        """The peer's answer (True) or a Reject made here (False: the peer's view unknown)."""
        message = Message(0, (ProtocolData(_ILP, ContentType.OCTET_STREAM, data),))
        timing = self._on_round_trip
        started = time.perf_counter() if timing else 0.0
        try:
            response = await link.request(message, timeout)
        except ConnectionLostError:
            return self._lost, False
        except PeerTimeoutError:
            return self._timed_out, False
        except PeerError as exc:
            return self._reject("T00", f"the peer refused the BTP message: {exc}"), True
        except UnreachableError:
            return self._unreachable, False
        if timing:
            self._timed("data", time.perf_counter() - started)
        reply = None
        for entry in response.protocol_data:
            if entry.protocol_name == _ILP:
                reply = entry.data
        if not reply or reply[0] not in (TYPE_FULFILL, TYPE_REJECT):
            return self._no_reply, True
        return reply, True

    def _check_fulfillment(self, prepare: IlpPrepare, reply: bytes) -> bytes:
        """A well-formed reply; a Fulfill only if it fulfils this Prepare's condition."""
        try:
            packet = decode_reply(reply)
        except CodecError:
            return self._no_reply
        if isinstance(packet, IlpFulfill) and (
            hashlib.sha256(packet.fulfillment).digest() != prepare.execution_condition
        ):
            return self._wrong_fulfillment
        return reply

    async def send_money(self, amount: str) -> None:
        """Pay the peer `amount` (a decimal string of units) with a BTP Transfer; returns once
        the peer accepted it. "0" sends nothing.

        Raises:
            InvalidInputError: `amount` is no decimal string of an integer in 0..2^64-1.
            NotConnectedError: `connect()` was not called, or `disconnect()` was.
            PeerError: the peer refused the Transfer (e.g. it has no money handler).
            PeerTimeoutError, UnreachableError: no answer in time, or no link.
        """
        units = _parse_amount(amount)
        if units == 0:
            return
        link = self._link
        if not self._started or link is None:
            raise NotConnectedError("the plugin is not connected; call connect() first")
        accounting = self._accounting
        proof = await accounting.outgoing_money(units) if accounting is not None else ()
        timing = self._on_round_trip
        started = time.perf_counter() if timing else 0.0
        try:
            await link.request(Transfer(0, units, proof))
        except BaseException as exc:
            failed = getattr(accounting, "money_failed", None)
            if failed is not None:
                await failed(units, exc)
            raise
        if timing:
            self._timed("money", time.perf_counter() - started)
        if self._on_packet:
            self._count("outgoing", "money")
        if accounting is not None:
            await accounting.money_sent(units)

    # ------------------------------------------------------------------ incoming

    async def _on_request(self, packet: Request2) -> Response | Error:
        """Answer one BTP request of the peer (the transport sets the request id)."""
        if type(packet) is Message:
            ilp = None
            for entry in packet.protocol_data:
                if entry.protocol_name == _ILP:
                    ilp = entry.data
            if ilp is None:
                side = getattr(self._accounting, "side_message", None)
                if side is not None:
                    answer = await side(packet.protocol_data)
                    if answer:
                        return Response(0, answer)
                return _EMPTY_RESPONSE
            reply = await self._on_prepare(ilp)
            return Response(0, (ProtocolData(_ILP, ContentType.OCTET_STREAM, reply),))
        await self._on_money(packet)  # type: ignore[arg-type]
        return _EMPTY_RESPONSE

    async def _on_prepare(self, raw: bytes) -> bytes:
        try:
            prepare = decode_prepare(raw)
        except CodecError as exc:
            return self._reject("F01", f"invalid ILP Prepare: {exc}")
        if (
            prepare.destination == ILDCP_DESTINATION
            and self._serve_ildcp
            and (self._ildcp is not None or self._data_handler is None)
        ):
            return self._answer_ildcp()
        if self._on_packet:
            self._count("incoming", "prepare")
        accounting = self._accounting
        if accounting is not None:
            try:
                local = await accounting.incoming_prepare(prepare)
            except Exception as exc:
                local = self._local_failure(exc, "accounting failed on an incoming Prepare")
            if local is not None:
                if self._on_packet:
                    self._count_reply("incoming", local)
                return local
        try:
            reply = await self._call_handler(prepare, raw)
        except BaseException:
            # Cancelled (the peer's socket closed and the handler outlived its grace): no
            # answer will be sent, so what the accounting holds for it is released.
            if accounting is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        accounting.incoming_settled(prepare, self._handler_cancelled, False)
                    )
            raise
        if accounting is not None:
            try:
                await accounting.incoming_settled(prepare, reply, reply[0] == TYPE_FULFILL)
            except Exception as exc:
                reply = self._local_failure(exc, "accounting failed to record our answer")
        if self._on_packet:
            self._count_reply("incoming", reply)
        return reply

    async def _call_handler(self, prepare: IlpPrepare, raw: bytes) -> bytes:
        handler = self._data_handler
        if handler is None:
            return self._no_handler
        try:
            reply = await handler(raw)
        except Exception as exc:
            log.warning("the data handler raised", exc_info=True)
            self._error(exc)
            return self._reject("T00", f"the data handler failed: {exc}")
        if type(reply) is not bytes:
            if not isinstance(reply, bytearray | memoryview):
                self._error(TypeError(f"the data handler returned {type(reply).__name__}"))
                return self._bad_handler_reply
            reply = bytes(reply)
        try:
            # Decoded whole: a Fulfill to check its fulfillment, a Reject so that the peer
            # never gets bytes its codec refuses (a malformed reply is ours to report).
            packet = decode_reply(reply)
        except CodecError as exc:
            self._error(
                ValueError(f"the data handler returned no well-formed ILP Fulfill or Reject: {exc}")
            )
            return self._bad_handler_reply
        if isinstance(packet, IlpFulfill) and (
            hashlib.sha256(packet.fulfillment).digest() != prepare.execution_condition
        ):
            self._error(ValueError("the data handler's Fulfill does not fulfil the Prepare"))
            return self._wrong_fulfillment
        return reply

    def _answer_ildcp(self) -> bytes:
        """A listener answers its client's ILDCP request itself when it has `ildcp` options;
        without them (and without a data handler to ask) it says what is missing."""
        settings = self._ildcp
        link = self._link
        username = link.peer_username if link is not None else None
        if settings is None:
            return encode_error(
                self._address,
                'this listener assigns no address: give it the "ildcp" option'
                " ({clientAddress | addressPrefix, assetCode, assetScale})",
            )
        return ildcp.answer(settings, username, self._address)

    async def _on_money(self, packet: Transfer) -> None:
        amount = packet.amount
        if self._on_packet:
            self._count("incoming", "money")
        accounting = self._accounting
        if (
            accounting is not None
            and await accounting.incoming_money(amount, packet.protocol_data) is False
        ):
            return  # a repeat the accounting already counted: the handler heard it
        handler = self._money_handler
        if handler is None:
            if accounting is None:
                raise NotAcceptedError("no money handler registered")
            return
        await handler(str(amount))

    # ------------------------------------------------------------------ helpers

    def _reject(self, code: str, message: str) -> bytes:
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        return encode_reject(IlpReject(code, self._address, message))

    def _local_failure(self, exc: Exception, what: str) -> bytes:
        log.error("%s", what, exc_info=exc)
        self._error(exc)
        return self._reject("T00", f"{what}: {exc}")


def _parse_amount(amount: object) -> int:
    if type(amount) is not str:
        raise InvalidInputError(
            f"expected a decimal string; got {type(amount).__name__}", field="amount"
        )
    if not amount or not _DIGITS.issuperset(amount) or len(amount) > 20:
        raise InvalidInputError(
            f"expected a decimal string of a non-negative integer; got {amount!r}", field="amount"
        )
    units = int(amount)
    if units > UINT64_MAX:
        raise InvalidInputError(f"{amount} is above 2^64-1", field="amount")
    return units
