"""`IncomingRequests`: a Plugin's answers to the BTP requests its peer sends.

What this module is for: the peer's side of the state machine — a Prepare, Fulfill or Reject
becomes a committed ledger change, then its event, then the BTP Response (in that order, API.md);
a Message is answered from the plugin's info, balance or limit, passed to the registered request
handler, or offered to the settlement hooks' side protocols. Any failure becomes a BTP Error
carrying the right ILP code. It also counts the requests being handled, so that `disconnect()`
can let them finish.

It works on its Plugin's state (book, validator, hooks, scheduler, events) and owns none of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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
    UnreachableError,
    error_name_for,
    ilp_code_for,
)
from ilp_paychan.ledger import PrepareOutcome
from ilp_paychan.plugin.protocol_data import (
    dump_json,
    entries_by_name,
    lpi_fields,
    side_protocol_entry,
    to_protocol_data,
)
from ilp_paychan.plugin.reasons import outgoing_reason
from ilp_paychan.plugin.transfers import Entry
from ilp_paychan.plugin.validate import b64url, format_timestamp

if TYPE_CHECKING:
    from ilp_paychan.plugin.plugin import Plugin

log = logging.getLogger("ilp_paychan.plugin")

_OCTETS = int(ContentType.OCTET_STREAM)
_TEXT = int(ContentType.TEXT_PLAIN_UTF8)
_JSON = int(ContentType.APPLICATION_JSON)
_EMPTY_RESPONSE_PD: tuple[ProtocolData, ...] = ()


def error_data(message: str) -> str:
    """The JSON `data` of a BTP Error or ILP error, as the reference writes it."""
    return json.dumps({"message": message}, separators=(",", ":"), ensure_ascii=False)


def error_packet(request_id: int, error: BaseException) -> Error:
    """The BTP Error answering a request that failed with `error`."""
    code = error.code if isinstance(error, PeerError) else ilp_code_for(error)
    return Error(request_id, code, error_name_for(error), datetime.now(UTC), error_data(str(error)))


class IncomingRequests:
    """Handles one Plugin's incoming requests; `handle` is the link's request handler."""

    def __init__(self, plugin: Plugin) -> None:
        self._plugin = plugin
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def handle(self, packet: Prepare | Fulfill | Reject | Message) -> Response | Error:
        plugin = self._plugin
        if not plugin._connected and not await self._wait_ready():
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
            log.exception("request %d failed", packet.request_id)
            return error_packet(packet.request_id, NotAcceptedError("internal error"))
        finally:
            self.running -= 1
            if not self.running:
                self.idle.set()

    async def _wait_ready(self) -> bool:
        """Hold a request that arrived during connect() until ready (weakness 20), bounded."""
        plugin = self._plugin
        if plugin._closing or plugin._connect_task is None:
            return False
        try:
            await asyncio.wait_for(plugin._ready.wait(), plugin._settings.request_timeout)
        except TimeoutError:
            return False
        return plugin._connected

    async def _on_prepare(self, packet: Prepare) -> Response:
        plugin = self._plugin
        if plugin._closing:
            raise UnreachableError("the plugin is disconnecting")
        book = plugin._book
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
        validator = plugin._validator
        assert validator is not None
        record: dict[str, Any] = {
            "id": tid,
            "amount": str(packet.amount),
            "executionCondition": b64url(packet.execution_condition),
            "expiresAt": format_timestamp(packet.expires_at),
            "to": validator.account,
            "from": validator.peer_account,
            "ledger": plugin._prefix,
        }
        if packet.protocol_data:
            record.update(lpi_fields(entries_by_name(packet.protocol_data)))
        entry = Entry(tid, record, True, packet.amount, packet.execution_condition, expires_at)
        outcome = await book.prepare(entry)
        if outcome is PrepareOutcome.NEW:
            if plugin._has_prepare_hook:
                try:
                    await plugin._hooks.handle_incoming_prepare(record)
                except Exception as error:
                    await book.cancel_refused(tid)
                    log.info("transfer %s refused by the settlement hook: %s", tid, error)
                    if isinstance(error, PluginError):
                        raise
                    raise NotAcceptedError(str(error)) from error
            plugin._scheduler.arm(tid, expires_at)
            plugin._events.emit("incoming_prepare", record)
        elif outcome is PrepareOutcome.REPEAT_CANCELLED:
            raise AlreadyRolledBackError(f"transfer {tid} has already been cancelled.")
        elif outcome is PrepareOutcome.REPEAT_FULFILLED:
            plugin._notices.kick()
        return Response(packet.request_id, _EMPTY_RESPONSE_PD)

    async def _on_fulfill(self, packet: Fulfill) -> Response:
        plugin = self._plugin
        book = plugin._book
        assert book is not None
        tid = packet.transfer_id
        try:
            entry, changed = await book.fulfill_outgoing(tid, packet.fulfillment, time.time())
        except AlreadyRolledBackError:
            late = book.prepared.get(tid)
            if late is not None:
                # Past its expiry by our clock, not cancelled yet: the F05 we answer says it is
                # cancelled, so cancel it now rather than when the timer gets to it.
                plugin._scheduler.arm(tid, late.expires_at)
            raise
        if changed:
            plugin._scheduler.disarm(tid)
            events = plugin._events
            if events.has_listeners("outgoing_fulfill"):
                fields = (
                    lpi_fields(entries_by_name(packet.protocol_data))
                    if packet.protocol_data
                    else {}
                )
                events.emit("outgoing_fulfill", entry.record, entry.fulfillment, fields.get("ilp"))
        if not plugin._has_claims:
            return Response(packet.request_id, _EMPTY_RESPONSE_PD)
        try:
            claim = await plugin._hooks.create_outgoing_claim(
                await plugin.transfer_log.get_outgoing_fulfilled()
            )
        except Exception:
            log.exception("create_outgoing_claim failed for %s", tid)
            claim = None
        pd = (side_protocol_entry("claim", claim),) if claim is not None else _EMPTY_RESPONSE_PD
        return Response(packet.request_id, pd)

    async def _on_reject(self, packet: Reject) -> Response:
        plugin = self._plugin
        book = plugin._book
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
            plugin._scheduler.disarm(tid)
            reason = outgoing_reason(error)
            if entry.is_incoming:
                plugin._events.emit("incoming_cancel", entry.record, reason)
            else:
                plugin._events.emit("outgoing_reject", entry.record, reason)
        return Response(packet.request_id, _EMPTY_RESPONSE_PD)

    async def _on_message(self, packet: Message) -> Response:
        plugin = self._plugin
        by_name = entries_by_name(packet.protocol_data)
        ilp = by_name.get("ilp")
        if ilp is not None and ilp.data:
            return await self._on_handler_request(packet.request_id, by_name)
        info = by_name.get("info")
        if info is not None:
            if info.content_type not in (_TEXT, _JSON) and info.data[:1] == b"\x02":
                return Response(
                    packet.request_id, (ProtocolData("info", _JSON, dump_json(plugin.get_info())),)
                )
            return Response(
                packet.request_id, (ProtocolData("info", _TEXT, plugin.get_account().encode()),)
            )
        if "balance" in by_name:
            balance = int(await plugin.transfer_log.get_balance())
            return Response(
                packet.request_id, (ProtocolData("balance", _OCTETS, encode_int64(balance)),)
            )
        if "limit" in by_name:
            maximum = await plugin.transfer_log.get_maximum()
            return Response(packet.request_id, (ProtocolData("limit", _JSON, dump_json(maximum)),))
        if "custom" in by_name:
            return await self._on_handler_request(packet.request_id, by_name)
        answer = await plugin._hooks.handle_side_protocols(packet)
        if answer is None:
            names = ", ".join(sorted(by_name)) or "(none)"
            raise NotAcceptedError(f"Unsupported side protocol(s): {names}")
        return Response(packet.request_id, answer.protocol_data)

    async def _on_handler_request(
        self, request_id: int, by_name: Mapping[str, ProtocolData]
    ) -> Response:
        plugin = self._plugin
        message: dict[str, Any] = {
            "id": request_id,
            "to": plugin.get_account(),
            "from": plugin.get_peer_account(),
            "ledger": plugin._prefix,
        }
        message.update(lpi_fields(by_name))
        plugin._events.emit("incoming_request", message)
        handler = plugin._request_handler
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
                plugin.get_account(),
                (),
                datetime.now(UTC),
                error_data(str(error)).encode("utf-8"),
            )
            encoded = encode_ilp(ilp_error)
            plugin._events.emit(
                "outgoing_response",
                {
                    "to": plugin.get_peer_account(),
                    "from": plugin.get_account(),
                    "ilp": b64url(encoded),
                },
            )
            return Response(request_id, (ProtocolData("ilp", _OCTETS, encoded),))
        assert plugin._validator is not None
        checked = plugin._validator.outgoing_message(result)
        plugin._events.emit("outgoing_response", result)
        return Response(request_id, to_protocol_data(checked.ilp, checked.custom))
