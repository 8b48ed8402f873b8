"""`V1Adapter`: the v2 plugin interface over our LPI v1 `Plugin`, as ilp-compat-plugin 2.0.3 does
it in JavaScript, so that the same ILPv4 application code runs over a BTP 1.0 trustline and so
that the trustline interoperates with an LPI v1 account of ilp-connector 23 (which wraps its v1
plugin in ilp-compat-plugin).

Why it is built on the v1 plugin's public surface only: the trustline's agreement rules
(durable commits, notices delivered until acknowledged, expiry) stay where they are proven, and
the adapter only translates. The conversions themselves are `compat_mapping`'s.

What it adds to ilp-compat-plugin, each where the JavaScript leaves a caller waiting for ever
or throws where it need not (see docs/v2.md, "The v1 plugin on today's network"):
- a Prepare whose transfer the peer was sent but did not acknowledge in time stays pending
  until its Fulfill or Reject, or the v1 plugin's expiry (R00), instead of failing while the
  money may still move;
- a zero-amount Prepare (which an LPI v1 transfer cannot carry) travels as a v1 message whose
  ``ilp`` is the Prepare, which ilp-compat-plugin on the other end hands to its data handler;
- an incoming transfer whose ``ilp`` is unusable, or a handler Fulfill whose fulfillment does not
  match, is rejected at once (F01, F05) rather than left to expire.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ilp_paychan.codec import ilp4
from ilp_paychan.codec.errors import CodecError
from ilp_paychan.codec.ildcp import ILDCP_DESTINATION
from ilp_paychan.errors import (
    FulfillmentPendingError,
    InvalidFieldsError,
    InvalidFulfillmentError,
    NotAcceptedError,
    NotConnectedError,
    PeerError,
    PeerTimeoutError,
    PluginError,
    StoreUnavailableError,
    UnreachableError,
)
from ilp_paychan.plugin.events import EventEmitter
from ilp_paychan.plugin.plugin import Plugin

from .compat_mapping import (
    b64_lenient,
    b64url,
    error_name,
    fulfill_to_fulfillment,
    fulfillment_to_fulfill,
    handler_failure_reason,
    ildcp_answer,
    no_handler_reason,
    prepare_to_transfer,
    reason_to_reject,
    refusal_to_reject,
    reject_to_reason,
    transfer_to_prepare,
)
from .errors import (
    DataHandlerAlreadyRegisteredError,
    InvalidInputError,
    MoneyHandlerAlreadyRegisteredError,
)
from .interface import V2_EVENTS, DataHandler, MoneyHandler

__all__ = ["V1Adapter"]

log = logging.getLogger("ilp_paychan.v2.adapter")


def _now() -> datetime:
    return datetime.now(UTC)


class V1Adapter:
    """A `PluginV2` over an LPI v1 `Plugin` (ilp-compat-plugin 2.0.3's mapping).

    Outgoing: `send_data(prepare)` sends one LPI v1 transfer (a fresh UUID, the Prepare's
    amount, condition and expiry, ``ilp`` = a type 10 forwarded payment) and returns the ILPv4
    Fulfill or Reject its outcome maps to: ``outgoing_fulfill`` -> Fulfill (data from the type 9
    ``ilp``), ``outgoing_reject`` -> Reject (the peer's code, message and data), the v1 plugin's
    expiry (``outgoing_cancel``) -> R00. A transfer refused or never sent (nothing moved) is
    answered with a Reject made here (T04 for a balance limit, T01 for no link), as `BtpPlugin`
    answers; calls in flight when the plugin disconnects raise `NotConnectedError` (the
    outcome is unknown to them: the transfer settles by its stored state). A
    ``peer.config`` Prepare is answered here from the plugin's account and info (ILDCP);
    another packet type goes as a v1 message, as ilp-compat-plugin sends it.

    Incoming: each ``incoming_prepare`` becomes an ILPv4 Prepare for the data handler; a
    Fulfill is handed to `Plugin.fulfill_condition` (``ilp`` = type 9 with the data), a Reject
    to `Plugin.reject_incoming_transfer` (an ILP v1 error whose data is ``{"data", "message"}``
    as JSON). No handler: T01; the handler raising or answering with something else: F00.
    A v1 message with ``ilp`` goes to the data handler as is and its answer back as ``ilp``.

    When a Fulfill is final: `fulfill_condition` commits the fulfilment (with a notice to
    deliver it) before anything is sent, and returns only once the sender acknowledged it.
    If the sender does not answer in time the v1 plugin keeps delivering it, across reconnects
    and restarts, and its events ``incoming_fulfill_confirmed`` / ``incoming_fulfill_reverted``
    report the outcome. A sender that had already cancelled the transfer (the handler's Fulfill
    came after the expiry) refuses it: the amount is not ours, and this adapter emits
    ``error`` with the `AlreadyRolledBackError`, as for any other failure to fulfil.

    The adapter registers the plugin's one request handler and listens to its events; build
    one adapter per plugin. Money: LPI v1 has no optimistic transfers on this trustline, so
    `send_money` does nothing (as in ilp-compat-plugin) and the money handler is never called;
    settlement is the v1 plugin's (its balance, its payment-channel module).
    """

    def __init__(self, plugin: Plugin) -> None:
        """Wrap `plugin` (connected or not); raises RequestHandlerAlreadyRegisteredError if the
        plugin's request handler is taken (another adapter, or the application's)."""
        self._plugin = plugin
        self._events = EventEmitter(V2_EVENTS)
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._handling: set[asyncio.Task[None]] = set()
        self._data_handler: DataHandler | None = None
        self._money_handler: MoneyHandler | None = None
        self._account: str | None = None
        self._peer_account = ""
        self._prefix = ""
        plugin.register_request_handler(self._on_request)
        plugin.on("outgoing_fulfill", self._on_outgoing_fulfill)
        plugin.on("outgoing_reject", self._on_outgoing_reject)
        plugin.on("outgoing_cancel", self._on_outgoing_reject)
        plugin.on("incoming_prepare", self._on_incoming_prepare)
        plugin.on("connect", self._on_connect)
        plugin.on("disconnect", self._on_disconnect)

    @property
    def plugin(self) -> Plugin:
        """The wrapped v1 plugin (its balance, transfer log and v1 events stay available)."""
        return self._plugin

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Connect the v1 plugin (its store, its link); emits ``connect``."""
        await self._plugin.connect()

    async def disconnect(self) -> None:
        """Let running data handlers finish (up to the plugin's ``shutdownTimeout``), then
        disconnect the v1 plugin; `send_data` calls still waiting raise NotConnectedError."""
        running = set(self._handling)
        if running:
            await asyncio.wait(running, timeout=self._plugin.settings.shutdown_timeout)
        await self._plugin.disconnect()

    def is_connected(self) -> bool:
        """Whether the v1 plugin is connected."""
        return self._plugin.is_connected()

    def on(self, event: str, callback: Callable[..., Any]) -> None:
        """Call `callback` on ``connect``, ``disconnect`` or ``error`` (the exception)."""
        self._events.on(event, callback)

    def off(self, event: str, callback: Callable[..., Any]) -> None:
        """Stop calling `callback` on `event`."""
        self._events.off(event, callback)

    def _on_connect(self) -> None:
        self._remember_accounts()
        self._events.emit("connect")

    def _on_disconnect(self) -> None:
        pending, self._pending = self._pending, {}
        for transfer_id, future in pending.items():
            if not future.done():
                future.set_exception(
                    NotConnectedError(
                        f"disconnected before the outcome of transfer {transfer_id} arrived; "
                        "it settles by its stored state once connected again"
                    )
                )
        self._events.emit("disconnect")

    def _remember_accounts(self) -> None:
        plugin = self._plugin
        self._account = plugin.get_account()
        self._peer_account = plugin.get_peer_account()
        info = plugin.get_info() or {}
        prefix = info.get("prefix")
        self._prefix = prefix if isinstance(prefix, str) else ""

    def _own_account(self) -> str:
        """Our account (remembered at `connect`; read now if wrapped after it)."""
        if self._account is None:
            self._remember_accounts()
        assert self._account is not None
        return self._account

    # ------------------------------------------------------------------ handlers

    def register_data_handler(self, handler: DataHandler) -> None:
        """Set the one handler of incoming Prepares (DataHandlerAlreadyRegisteredError if one
        is set, TypeError if it is not callable, as `BtpPlugin`)."""
        if not callable(handler):
            raise TypeError(f"the data handler must be callable; got {handler!r}")
        if self._data_handler is not None:
            raise DataHandlerAlreadyRegisteredError("a data handler is already registered")
        self._data_handler = handler

    def deregister_data_handler(self) -> None:
        """Remove the data handler; incoming transfers are then rejected with T01."""
        self._data_handler = None

    def register_money_handler(self, handler: MoneyHandler) -> None:
        """Set the money handler (kept for the interface; a v1 trustline never calls it)."""
        if not callable(handler):
            raise TypeError(f"the money handler must be callable; got {handler!r}")
        if self._money_handler is not None:
            raise MoneyHandlerAlreadyRegisteredError("a money handler is already registered")
        self._money_handler = handler

    def deregister_money_handler(self) -> None:
        """Remove the money handler."""
        self._money_handler = None

    # ------------------------------------------------------------------ outgoing

    async def send_money(self, amount: str) -> None:
        """Checks `amount` and does nothing else, as ilp-compat-plugin: on a v1 trustline every
        fulfilled transfer already moved the balance, and settlement is the plugin's."""
        if type(amount) is not str or not amount.isdigit() or not amount.isascii():
            raise InvalidInputError(
                f"expected a decimal string of a non-negative integer; got {amount!r}",
                field="amount",
            )

    async def send_data(self, data: bytes) -> bytes:
        """Send one ILPv4 Prepare over the v1 link; returns its Fulfill or Reject (bytes).

        A transfer that is refused or cannot be sent (nothing moved) is answered with a Reject
        made here (`compat_mapping.refusal_to_reject`: T04 for a balance limit, T01 for no
        link, else the peer's code), as `BtpPlugin` answers; ilp-compat-plugin throws.

        Raises:
            InvalidInputError: `data` is not bytes, or not a valid Prepare (``field`` names
                the field; an `InvalidFieldsError` and a `ValueError`, as `BtpPlugin` raises).
            NotConnectedError: the plugin is not connected, or it disconnected while the
                outcome was awaited (the outcome is then unknown here: the transfer settles by
                its stored state once the plugin is connected again).
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError(
                f"expected the ILP packet as bytes; got {type(data).__name__}", field="data"
            )
        data = bytes(data)
        if not self._plugin.is_connected():
            raise NotConnectedError("Must be connected before send_data can be called.")
        if data[:1] != bytes((ilp4.TYPE_PREPARE,)):
            return await self._send_message(data, None)
        try:
            prepare = ilp4.decode_prepare(data)
        except CodecError as error:
            raise InvalidInputError(error.reason, field=error.field) from None
        if prepare.destination == ILDCP_DESTINATION:
            return ildcp_answer(self._own_account(), self._plugin.get_info())
        if prepare.amount == 0:
            return await self._send_message(data, prepare)
        if prepare.expires_at.timestamp() <= time.time():
            return self._expired_reject("the Prepare expired before it was sent")
        transfer_id = str(uuid.uuid4())
        account = self._own_account()  # first: it fills in the peer's account and the prefix
        transfer = prepare_to_transfer(
            prepare, transfer_id, to=self._peer_account, from_=account, ledger=self._prefix
        )
        if not transfer["ledger"]:
            del transfer["ledger"]
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[transfer_id] = future  # before sending: the Fulfill may come first
        try:
            await self._plugin.send_transfer(transfer)
        except PeerTimeoutError:
            # Sent, unanswered: the peer may hold it. Its Fulfill or Reject, or else the v1
            # plugin's expiry, resolves the future.
            log.info("transfer %s sent without an answer; waiting for its outcome", transfer_id)
        except PeerError as error:
            self._pending.pop(transfer_id, None)
            return ilp4.encode_reject(refusal_to_reject(error, self._peer_account))
        except NotConnectedError:
            self._pending.pop(transfer_id, None)
            raise
        except InvalidFieldsError:
            self._pending.pop(transfer_id, None)
            if prepare.expires_at.timestamp() <= time.time():
                return self._expired_reject("the Prepare expired before it was sent")
            raise
        except (NotAcceptedError, UnreachableError, StoreUnavailableError) as error:
            self._pending.pop(transfer_id, None)
            return ilp4.encode_reject(refusal_to_reject(error, self._own_account()))
        except BaseException:
            self._pending.pop(transfer_id, None)
            raise
        try:
            return await future
        finally:
            self._pending.pop(transfer_id, None)

    def _expired_reject(self, message: str) -> bytes:
        return ilp4.encode_reject(ilp4.IlpReject("R00", self._own_account(), message))

    async def _send_message(self, data: bytes, prepare: ilp4.IlpPrepare | None) -> bytes:
        """A packet that is not a paying Prepare goes as a v1 message with ``ilp`` = the packet,
        and the answer's ``ilp`` is the reply (ilp-compat-plugin's path for non-Prepares)."""
        account = self._own_account()
        message: dict[str, Any] = {"to": self._peer_account, "from": account, "ilp": b64url(data)}
        if self._prefix:
            message["ledger"] = self._prefix
        try:
            response = await self._plugin.send_request(message)
        except PeerTimeoutError:
            if prepare is None:
                raise
            return self._expired_reject("the peer did not answer in time")
        except (PeerError, UnreachableError) as error:
            if prepare is None:
                raise
            code = "T01" if isinstance(error, UnreachableError) else "T00"
            text = f"the peer could not answer the Prepare: {error}"[: ilp4.MAX_MESSAGE_LENGTH]
            return ilp4.encode_reject(ilp4.IlpReject(code, self._own_account(), text))
        ilp = response.get("ilp")
        if isinstance(ilp, str) and ilp:
            reply = b64_lenient(ilp)
        else:
            custom = response.get("custom")
            if isinstance(custom, Mapping) and custom:
                reply = json.dumps(custom, separators=(",", ":")).encode("utf-8")
            else:
                reply = b""
        if prepare is not None:
            try:
                ilp4.decode_reply(reply)
            except CodecError:
                return ilp4.encode_reject(
                    ilp4.IlpReject(
                        "T00",
                        self._own_account(),
                        "the peer answered without an ILP Fulfill or Reject",
                    )
                )
        return reply

    def _on_outgoing_fulfill(self, transfer: Mapping[str, Any], fulfillment: str, ilp: Any) -> None:
        future = self._pending.pop(transfer.get("id", ""), None)
        if future is None or future.done():
            return
        try:
            fulfill = fulfillment_to_fulfill(fulfillment, ilp if isinstance(ilp, str) else None)
        except CodecError as error:
            # The money has moved: the caller gets the Fulfill, without the unreadable data.
            log.warning("transfer %s: fulfilled, but %s; data dropped", transfer.get("id"), error)
            fulfill = fulfillment_to_fulfill(fulfillment, None)
        future.set_result(ilp4.encode_fulfill(fulfill))

    def _on_outgoing_reject(self, transfer: Mapping[str, Any], reason: Any = None) -> None:
        future = self._pending.pop(transfer.get("id", ""), None)
        if future is None or future.done():
            return
        future.set_result(ilp4.encode_reject(reason_to_reject(reason)))

    # ------------------------------------------------------------------ incoming

    def _on_incoming_prepare(self, transfer: Mapping[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._handle_incoming(dict(transfer)))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _handle_incoming(self, transfer: dict[str, Any]) -> None:
        transfer_id = transfer["id"]
        try:
            packet = ilp4.encode_prepare(transfer_to_prepare(transfer))
        except CodecError as error:
            log.info("transfer %s cannot become an ILP Prepare: %s", transfer_id, error)
            text = f"invalid {error.field}: {error.reason}"
            await self._reject(transfer_id, _reason("F01", text))
            return
        handler = self._data_handler
        if handler is None:
            await self._reject(transfer_id, no_handler_reason(self._own_account(), _now()))
            return
        try:
            reply = ilp4.decode_reply(await _call(handler, packet))
        except Exception as error:
            log.info("data handler failed for transfer %s: %r", transfer_id, error)
            await self._reject(transfer_id, handler_failure_reason(error, _now()))
            return
        if isinstance(reply, ilp4.IlpReject):
            await self._reject(transfer_id, reject_to_reason(reply, _now()))
        else:
            await self._fulfill(transfer_id, reply)

    async def _fulfill(self, transfer_id: str, fulfill: ilp4.IlpFulfill) -> None:
        fulfillment, ilp = fulfill_to_fulfillment(fulfill)
        try:
            await self._plugin.fulfill_condition(transfer_id, fulfillment, ilp)
        except FulfillmentPendingError:
            log.info("transfer %s: fulfilment stored, delivery goes on", transfer_id)
        except PeerError as error:
            self._fulfil_failed(transfer_id, error)
        except InvalidFulfillmentError:
            await self._reject(
                transfer_id,
                _reason("F05", "the data handler's fulfillment does not match the condition"),
            )
        except PluginError as error:
            self._fulfil_failed(transfer_id, error)

    def _fulfil_failed(self, transfer_id: str, error: PluginError) -> None:
        log.warning("transfer %s: the data handler's Fulfill was not taken: %s", transfer_id, error)
        self._events.emit("error", error)

    async def _reject(self, transfer_id: str, reason: dict[str, Any]) -> None:
        plugin = self._plugin
        try:
            await plugin.reject_incoming_transfer(transfer_id, reason)
        except InvalidFieldsError as error:
            # A reason the ILP v1 error cannot hold (say, a non-ASCII name): its code alone.
            log.info(
                "transfer %s: reason refused (%s); rejecting with its code", transfer_id, error
            )
            code = reason.get("code")
            plain = _reason(code if isinstance(code, str) and len(code) == 3 else "F00", "")
            try:
                await plugin.reject_incoming_transfer(transfer_id, plain)
            except PluginError as again:
                log.warning("transfer %s: reject failed: %s", transfer_id, again)
        except PluginError as error:
            # Fulfilled or cancelled meanwhile, or the plugin is gone: its expiry decides.
            log.info("transfer %s: reject not applied: %s", transfer_id, error)

    async def _on_request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        ilp = message.get("ilp")
        if not isinstance(ilp, str) or not ilp:
            raise NotAcceptedError("cannot handle requests without an ilp packet")
        handler = self._data_handler
        if handler is None:
            raise NotAcceptedError("no data handler registered")
        data = b64_lenient(ilp)
        try:
            answer = await _call(handler, data)
            if not isinstance(answer, bytes | bytearray | memoryview):
                raise TypeError(f"the data handler returned {type(answer).__name__}, not bytes")
        except Exception as error:
            if data[:1] != bytes((ilp4.TYPE_PREPARE,)):
                raise
            # A zero-amount Prepare sent as a message: its caller waits for an ILPv4 reply.
            answer = ilp4.encode_reject(
                ilp4.IlpReject("F00", self._own_account(), str(error)[: ilp4.MAX_MESSAGE_LENGTH])
            )
        return {"to": message.get("from"), "ilp": b64url(bytes(answer))}


def _reason(code: str, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "name": error_name(code),
        "message": message,
        "triggered_at": _now(),
        "forwarded_by": "",
        "additional_info": {"message": message},
    }


async def _call(handler: Callable[[bytes], Any], packet: bytes) -> Any:
    result = handler(packet)
    if inspect.isawaitable(result):
        result = await result
    return result
