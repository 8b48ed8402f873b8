"""`IncomingRequests`: a Plugin's answers to the BTP requests its peer sends.

What this module is for: the peer's side of the state machine — a Prepare, Fulfill or Reject
becomes a committed ledger change, then its event, then the BTP Response (in that order, so
that a peer told yes can count on the change surviving a crash); a Message is answered from
the plugin's info, balance or limit, passed to the registered request handler, or offered to
the settlement hooks' side protocols. Any failure becomes a BTP Error carrying the right ILP
code. It also counts the requests being handled, so that `disconnect()` can let them finish.

It owns none of the Plugin's state and never sees the Plugin: it is built with the few
collaborators it uses (the events, the expiry scheduler, the settlement hooks, the peer notices'
kick, the Plugin's `Lifecycle` flags and its account/info getters), and `bind()` hands it the
TransferBook and Validator of each connection. Everything is bound once, so a request costs no
lookups through the Plugin.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ilp_paychan.codec.btp import (
    ContentType,
    Error,
    Fulfill,
    Message,
    Prepare,
    ProtocolData,
    Reject,
    Response,
)
from ilp_paychan.codec.errors import CodecError
from ilp_paychan.codec.ilp import IlpError, decode_ilp, encode_ilp
from ilp_paychan.codec.int64 import encode_int64
from ilp_paychan.errors import (
    AlreadyRolledBackError,
    InvalidFieldsError,
    NotAcceptedError,
    PeerError,
    PluginError,
    StoreUnavailableError,
    UnreachableError,
    error_name_for,
    ilp_code_for,
)
from ilp_paychan.ledger import PrepareOutcome
from ilp_paychan.plugin.events import EventEmitter
from ilp_paychan.plugin.expiry import ExpiryScheduler
from ilp_paychan.plugin.hooks import SettlementHooks
from ilp_paychan.plugin.lifecycle import Lifecycle
from ilp_paychan.plugin.protocol_data import (
    dump_json,
    entries_by_name,
    lpi_fields,
    side_protocol_entry,
    to_protocol_data,
)
from ilp_paychan.plugin.reasons import outgoing_reason
from ilp_paychan.plugin.transfers import Entry, TransferBook
from ilp_paychan.plugin.validate import Validator, b64url, format_timestamp
from ilp_paychan.transport.session import error_data

log = logging.getLogger("ilp_paychan.plugin")

_OCTETS = int(ContentType.OCTET_STREAM)
_TEXT = int(ContentType.TEXT_PLAIN_UTF8)
_JSON = int(ContentType.APPLICATION_JSON)
_EMPTY_RESPONSE_PD: tuple[ProtocolData, ...] = ()

#: A message handler as `Plugin.register_request_handler` takes it (sync or async).
RequestHandlerFn = Callable[[dict[str, Any]], Any]


def error_packet(request_id: int, error: BaseException) -> Error:
    """The BTP Error answering a request that failed with `error`."""
    code = error.code if isinstance(error, PeerError) else ilp_code_for(error)
    return Error(request_id, code, error_name_for(error), datetime.now(UTC), error_data(str(error)))


class IncomingRequests:
    """Handles one Plugin's incoming requests; `handle` is the link's request handler."""

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        events: EventEmitter,
        scheduler: ExpiryScheduler,
        hooks: SettlementHooks,
        kick_notices: Callable[[], None],
        request_handler: Callable[[], RequestHandlerFn | None],
        info: Callable[[], dict[str, Any] | None],
        account: Callable[[], str],
        peer_account: Callable[[], str],
        request_timeout: float,
    ) -> None:
        """`request_handler` returns the handler registered now; `info`, `account` and
        `peer_account` answer as the Plugin's getters; `request_timeout` bounds how long a
        request that arrives during connect() is held."""
        self._lifecycle = lifecycle
        self._emit = events.emit
        self._has_listeners = events.has_listeners
        self._arm = scheduler.arm
        self._disarm = scheduler.disarm
        hooks_class = type(hooks)
        # A hook the hooks object does not override is skipped rather than awaited for nothing.
        self._prepare_hook = (
            hooks.handle_incoming_prepare
            if hooks_class.handle_incoming_prepare is not SettlementHooks.handle_incoming_prepare
            else None
        )
        self._claim_hook = (
            hooks.create_outgoing_claim
            if hooks_class.create_outgoing_claim is not SettlementHooks.create_outgoing_claim
            else None
        )
        self._side_protocols = hooks.handle_side_protocols
        self._kick_notices = kick_notices
        self._request_handler = request_handler
        self._info = info
        self._account = account
        self._peer_account = peer_account
        self._request_timeout = request_timeout
        self._book: TransferBook | None = None
        self._validator: Validator | None = None
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def bind(self, book: TransferBook, validator: Validator) -> None:
        """Use this connection's book and validator (called by connect() before it is done)."""
        self._book = book
        self._validator = validator

    async def handle(self, packet: Prepare | Fulfill | Reject | Message) -> Response | Error:
        """Answer one request of the peer; never raises (a failure becomes a BTP Error)."""
        if not self._lifecycle.connected and not await self._wait_ready():
            return error_packet(packet.request_id, UnreachableError("the plugin is not connected"))
        self.running += 1
        self.idle.clear()
        try:
            kind = type(packet)
            if kind is Prepare:
                return await self._on_prepare(packet)  # type: ignore[arg-type]
            if kind is Fulfill:
                return await self._on_fulfill(packet)  # type: ignore[arg-type]
            if kind is Reject:
                return await self._on_reject(packet)  # type: ignore[arg-type]
            return await self._on_message(packet)  # type: ignore[arg-type]
        except PluginError as error:
            log.debug("request %d refused: %s", packet.request_id, error)
            return error_packet(packet.request_id, error)
        except CodecError as error:
            return error_packet(packet.request_id, InvalidFieldsError(str(error)))
        except Exception:
            # Not a verdict on the request (a bug, a store failing in a way it does not name):
            # a temporary code, so the peer asks again. A final one would let a receiver
            # re-delivering its Fulfill drop its notice while we still hold the transfer.
            log.exception("request %d failed", packet.request_id)
            return error_packet(packet.request_id, UnreachableError("internal error; try again"))
        finally:
            self.running -= 1
            if not self.running:
                self.idle.set()

    async def _wait_ready(self) -> bool:
        """Hold a request that arrived during connect() until ready, bounded by the request
        timeout (the reference answered such a request with an error)."""
        lifecycle = self._lifecycle
        if lifecycle.closing or not lifecycle.connecting:
            return False
        try:
            await asyncio.wait_for(lifecycle.ready.wait(), self._request_timeout)
        except TimeoutError:
            return False
        return lifecycle.connected

    async def _on_prepare(self, packet: Prepare) -> Response:
        if self._lifecycle.closing:
            raise UnreachableError("the plugin is disconnecting")
        book = self._book
        assert book is not None
        if packet.expires_at is None:
            raise InvalidFieldsError("invalid expiresAt: not a valid timestamp")
        if packet.amount <= 0:
            raise InvalidFieldsError(f"invalid amount: must be positive; got {packet.amount}")
        expires_at = packet.expires_at.timestamp()
        if expires_at <= time.time():
            raise InvalidFieldsError(
                f"invalid expiresAt: {format_timestamp(packet.expires_at)} is in the past"
            )
        tid = packet.transfer_id
        validator = self._validator
        assert validator is not None
        record: dict[str, Any] = {
            "id": tid,
            "amount": str(packet.amount),
            "executionCondition": b64url(packet.execution_condition),
            "expiresAt": format_timestamp(packet.expires_at),
            "to": validator.account,
            "from": validator.peer_account,
            "ledger": validator.prefix,
        }
        if packet.protocol_data:
            record.update(lpi_fields(entries_by_name(packet.protocol_data)))
        entry = Entry(tid, record, True, packet.amount, packet.execution_condition, expires_at)
        try:
            outcome = await book.prepare(entry)
        except StoreUnavailableError:
            self._arm(tid, expires_at)  # it may be stored all the same
            raise
        if outcome is PrepareOutcome.NEW:
            prepare_hook = self._prepare_hook
            if prepare_hook is not None:
                try:
                    await prepare_hook(record)
                except Exception as error:
                    await book.cancel_refused(tid)
                    log.info("transfer %s refused by the settlement hook: %s", tid, error)
                    if isinstance(error, PluginError):
                        raise
                    raise NotAcceptedError(str(error)) from error
            self._arm(tid, expires_at)
            self._emit("incoming_prepare", record)
        elif outcome is PrepareOutcome.REPEAT_CANCELLED:
            raise AlreadyRolledBackError(f"transfer {tid} has already been cancelled.")
        elif outcome is PrepareOutcome.REPEAT_FULFILLED:
            self._kick_notices()
        return Response(packet.request_id, _EMPTY_RESPONSE_PD)

    async def _on_fulfill(self, packet: Fulfill) -> Response:
        book = self._book
        assert book is not None
        tid = packet.transfer_id
        try:
            entry, changed = await book.fulfill_outgoing(tid, packet.fulfillment, time.time())
        except AlreadyRolledBackError:
            late = book.prepared.get(tid)
            if late is not None:
                # Past its expiry by our clock, not cancelled yet: the F05 we answer says it is
                # cancelled, so cancel it now rather than when the timer gets to it.
                self._arm(tid, late.expires_at)
            raise
        if changed:
            self._disarm(tid)
            if self._has_listeners("outgoing_fulfill"):
                fields = (
                    lpi_fields(entries_by_name(packet.protocol_data))
                    if packet.protocol_data
                    else {}
                )
                self._emit("outgoing_fulfill", entry.record, entry.fulfillment, fields.get("ilp"))
        claim_hook = self._claim_hook
        if claim_hook is None:
            return Response(packet.request_id, _EMPTY_RESPONSE_PD)
        try:
            claim = await claim_hook(await book.log.get_outgoing_fulfilled())
        except Exception:
            log.exception("create_outgoing_claim failed for %s", tid)
            claim = None
        pd = (side_protocol_entry("claim", claim),) if claim is not None else _EMPTY_RESPONSE_PD
        return Response(packet.request_id, pd)

    async def _on_reject(self, packet: Reject) -> Response:
        book = self._book
        assert book is not None
        entry_pd = entries_by_name(packet.protocol_data).get("ilp")
        if entry_pd is None or not entry_pd.data:
            raise NotAcceptedError("a Reject must carry an ILP error in its ilp entry")
        try:
            error = decode_ilp(entry_pd.data)
        except CodecError as exc:
            raise NotAcceptedError(f"the Reject's ilp entry is not an ILP error: {exc}") from None
        if not isinstance(error, IlpError):
            raise NotAcceptedError("the Reject's ilp entry is not an ILP error")
        tid = packet.transfer_id
        entry, changed = await book.reject_by_peer(tid, time.time())
        if changed:
            self._disarm(tid)
            reason = outgoing_reason(error)
            if entry.is_incoming:
                self._emit("incoming_cancel", entry.record, reason)
            else:
                self._emit("outgoing_reject", entry.record, reason)
        return Response(packet.request_id, _EMPTY_RESPONSE_PD)

    async def _on_message(self, packet: Message) -> Response:
        by_name = entries_by_name(packet.protocol_data)
        ilp = by_name.get("ilp")
        if ilp is not None and ilp.data:
            return await self._on_handler_request(packet.request_id, by_name)
        info = by_name.get("info")
        if info is not None:
            if info.content_type not in (_TEXT, _JSON) and info.data[:1] == b"\x02":
                return Response(
                    packet.request_id, (ProtocolData("info", _JSON, dump_json(self._info())),)
                )
            return Response(
                packet.request_id, (ProtocolData("info", _TEXT, self._account().encode()),)
            )
        if "balance" in by_name:
            book = self._book
            assert book is not None
            balance = int(await book.log.get_balance())
            return Response(
                packet.request_id, (ProtocolData("balance", _OCTETS, encode_int64(balance)),)
            )
        if "limit" in by_name:
            book = self._book
            assert book is not None
            maximum = await book.log.get_maximum()
            return Response(packet.request_id, (ProtocolData("limit", _JSON, dump_json(maximum)),))
        if "custom" in by_name:
            return await self._on_handler_request(packet.request_id, by_name)
        answer = await self._side_protocols(packet)
        if answer is None:
            names = ", ".join(sorted(by_name)) or "(none)"
            raise NotAcceptedError(f"Unsupported side protocol(s): {names}")
        return Response(packet.request_id, answer.protocol_data)

    async def _on_handler_request(
        self, request_id: int, by_name: Mapping[str, ProtocolData]
    ) -> Response:
        validator = self._validator
        assert validator is not None
        message: dict[str, Any] = {
            "id": request_id,
            "to": self._account(),
            "from": self._peer_account(),
            "ledger": validator.prefix,
        }
        message.update(lpi_fields(by_name))
        self._emit("incoming_request", message)
        handler = self._request_handler()
        if handler is None:
            raise NotAcceptedError("no request handler registered")
        try:
            result = handler(message)
            if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
                result = await result
        except Exception as error:
            log.info("request handler failed for request %d: %s", request_id, error)
            ilp_error = IlpError(
                "F00",
                "Bad Request",
                self._account(),
                (),
                datetime.now(UTC),
                error_data(str(error)).encode("utf-8"),
            )
            encoded = encode_ilp(ilp_error)
            self._emit(
                "outgoing_response",
                {
                    "to": self._peer_account(),
                    "from": self._account(),
                    "ilp": b64url(encoded),
                },
            )
            return Response(request_id, (ProtocolData("ilp", _OCTETS, encoded),))
        checked = validator.outgoing_message(result)
        self._emit("outgoing_response", result)
        return Response(request_id, to_protocol_data(checked.ilp, checked.custom))
