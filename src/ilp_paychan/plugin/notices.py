"""Telling the peer about settled transfers until it acknowledges (weakness 5).

What this module is for: after we fulfil or reject an incoming transfer, the ledger holds a durable
*peer notice* (recorded in the same transaction as the state change). `PeerNotices` sends the
Fulfill or Reject, clears the notice when the peer answers, and otherwise re-sends it from one
background task with exponential backoff while the plugin is connected — also for notices left by
an earlier process (after a restart). It never changes a transfer's state.

Rules:
- A Response clears the notice. A BTP Error is an answer too (the peer heard us and refused,
  e.g. it already expired the transfer): the notice is cleared and, for a first Fulfill whose
  caller asked for it, the PeerError is raised.
- A timeout or a lost connection keeps the notice and wakes the background task. While the link
  is down nothing is sent (and nobody waits): the link's coming up wakes the task.
- A Fulfill notice is given up once the transfer's expiry has passed (the peer refuses it then);
  a Reject notice one hour after it.
- The payload is stored with the notice (`Entry.notice`, the ledger's `notice`): the Reject's
  encoded ILP error, the Fulfill's `ilp` data; so a notice re-sent after a restart carries the
  original reason or data. A notice without one (an expiry) goes as the R00 expiry Reject.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ilp_paychan.codec.btp import ContentType, Fulfill, Packet, ProtocolData, Reject, Response
from ilp_paychan.codec.ilp import encode_ilp
from ilp_paychan.errors import NotConnectedError, PeerError, PeerTimeoutError, UnreachableError
from ilp_paychan.ledger import TransferLog
from ilp_paychan.plugin.protocol_data import decode_entry, entries_by_name
from ilp_paychan.plugin.reasons import expiry_error
from ilp_paychan.plugin.transfers import FULFILLED, Entry
from ilp_paychan.plugin.validate import parse_hash32

log = logging.getLogger("ilp_paychan.plugin")

_OCTETS = int(ContentType.OCTET_STREAM)

#: A settled transfer's Reject notice is dropped this long after its expiry if never acknowledged.
NOTICE_GRACE = 3600.0
#: Longest wait between re-delivery rounds.
NOTICE_BACKOFF_MAX = 30.0
NOTICE_BACKOFF_MIN = 0.25

Requester = Callable[[Packet, str], Awaitable[Response]]


class PeerNotices:
    """Delivery of Fulfills and Rejects the peer has not acknowledged yet."""

    def __init__(
        self,
        request: Requester,
        *,
        transfer_log: Callable[[], TransferLog | None],
        account: Callable[[], str],
        active: Callable[[], bool],
        link_open: Callable[[], bool],
        on_claim: Callable[[Any], Awaitable[None]],
    ) -> None:
        self._request = request
        self._transfer_log = transfer_log
        self._account = account
        self._active = active
        self._link_open = link_open
        self._on_claim = on_claim
        self._delivering: set[str] = set()
        self._worker: asyncio.Task[None] | None = None

    def _packet(self, entry: Entry, preimage: bytes | None) -> tuple[Packet, str]:
        if entry.fulfillment is not None and entry.state == FULFILLED:
            if preimage is None:
                preimage = parse_hash32(entry.fulfillment, "fulfillment")
            ilp = entry.notice
            pd = (ProtocolData("ilp", _OCTETS, ilp),) if ilp else ()
            return Fulfill(0, entry.id, preimage, pd), "fulfill"
        reason = entry.notice
        if not reason:
            reason = encode_ilp(expiry_error(self._account()))
        return Reject(0, entry.id, (ProtocolData("ilp", _OCTETS, reason),)), "reject"

    async def deliver(
        self, entry: Entry, *, raise_refusal: bool = False, preimage: bytes | None = None
    ) -> bool:
        """Send a settled transfer's Fulfill/Reject once; True when the peer answered.

        With no open link it sends nothing and returns False at once: the notice is stored and
        the link's coming up starts the re-delivery.
        """
        if not self._link_open():
            return False
        tid = entry.id
        packet, kind = self._packet(entry, preimage)
        self._delivering.add(tid)
        try:
            response = await self._request(packet, kind)
        except PeerError as error:
            log.warning("peer refused our %s of %s: %s %s", kind, tid, error.code, error.name)
            await self._clear(tid)
            if raise_refusal and kind == "fulfill":
                raise
            return True
        except (PeerTimeoutError, UnreachableError, NotConnectedError) as error:
            log.info("%s of %s not acknowledged (%s); will retry", kind, tid, type(error).__name__)
            self.kick()
            return False
        finally:
            self._delivering.discard(tid)
        await self._clear(tid)
        if kind == "fulfill" and response.protocol_data:
            claim = entries_by_name(response.protocol_data).get("claim")
            if claim is not None:
                try:
                    await self._on_claim(decode_entry(claim))
                except Exception:
                    log.exception("handle_incoming_claim failed for %s", tid)
        return True

    async def _clear(self, transfer_id: str) -> None:
        transfer_log = self._transfer_log()
        if transfer_log is not None:
            try:
                await transfer_log.clear_peer_notice(transfer_id)
            except Exception:
                log.exception("could not clear the peer notice of %s", transfer_id)

    def kick(self) -> None:
        """Start the background re-delivery of stored notices, if not running."""
        if self._worker is None and self._active():
            self._worker = asyncio.get_running_loop().create_task(self._redeliver())

    def stop(self) -> None:
        """Stop the background task; the notices stay stored for the next connect()."""
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    async def _redeliver(self) -> None:
        backoff = NOTICE_BACKOFF_MIN
        try:
            while self._active():
                transfer_log = self._transfer_log()
                if transfer_log is None:
                    return
                stored = await transfer_log.list_peer_notices()
                pending = [n for n in stored if n["transfer"]["id"] not in self._delivering]
                if not pending:
                    return
                if not await self._deliver_round(pending):
                    if not self._link_open():
                        return  # the link's coming back up kicks us again
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, NOTICE_BACKOFF_MAX)
                else:
                    backoff = NOTICE_BACKOFF_MIN
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("re-delivery of peer notices failed")
        finally:
            if self._worker is asyncio.current_task():
                self._worker = None

    async def _deliver_round(self, pending: list[dict[str, Any]]) -> bool:
        """One pass over the stored notices; False as soon as one goes unanswered."""
        for stored in pending:
            try:
                entry = Entry.from_stored(stored)
            except (KeyError, ValueError, TypeError):
                log.error("stored notice %r cannot be read; dropped", stored.get("transfer"))
                await self._clear(str(stored.get("transfer", {}).get("id", "")))
                continue
            grace = 0.0 if entry.state == FULFILLED else NOTICE_GRACE
            if time.time() > entry.expires_at + grace:
                log.warning(
                    "giving up telling the peer about %s %s: expired", entry.state, entry.id
                )
                await self._clear(entry.id)
                continue
            if not self._link_open() or not await self.deliver(entry):
                return False
        return True
