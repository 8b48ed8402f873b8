"""Telling the peer about settled transfers until it answers, and acting on its answer.

What this module is for: after we fulfil or reject an incoming transfer, the ledger holds a durable
*peer notice* (recorded in the same transaction as the state change). `PeerNotices` sends the
Fulfill or Reject, and re-sends it from one background task with exponential backoff while the
plugin is connected — also for notices left by an earlier process (after a restart). The sender
decides whether a Fulfill counts, so its answer settles the notice:

- A Response: acknowledged. The notice is cleared; for a Fulfill `incoming_fulfill_confirmed`
  fires (the money is final).
- A BTP Error F05 (AlreadyRolledBackError) to a Fulfill: the sender had already cancelled the
  transfer (at its expiry, before our Fulfill reached it), and a fulfilment that reaches the
  sender after the expiry does not count. The fulfilment is rolled back
  (`TransferLog.revert_fulfillment`: state, sums and notice in one transaction) and
  `incoming_fulfill_reverted` fires. The JavaScript reference words its F05 as "<id> has
  already expired: <its record as JSON>"; should a quoted record say `fulfilled`, the peer holds
  the transfer fulfilled, and that counts as acknowledged instead.
- A BTP Error of the temporary class (T00 and the like: the peer is starting or stopping, its
  store is down): no decision; as no answer below.
- Any other BTP Error: the peer heard us but says nothing about a cancel; the notice is cleared,
  nothing is reverted, a warning is logged. (The reference answers F00 TypeError to a Fulfill of
  any transfer it has settled, fulfilled or cancelled alike, so that answer cannot decide.)
- A timeout or a lost connection: no answer; the notice stays and is sent again. While the link
  is down nothing is sent by the background task: the link's coming up wakes it, and it also
  looks at the link every `LINK_RECHECK` seconds, since a socket that authenticates while the
  old one is still closing takes over with no link event (`PeerLink.on_state_change`).

A Fulfill notice is re-sent, after the transfer's expiry too, until the sender answers: that is
what makes both sides agree in the end. The back-off (0.25 s doubling to 5 s) restarts whenever
the link comes back or a new notice is stored, so a returning peer hears at once. A Reject
notice is given up an hour after the expiry (a sender that never hears it cancels at its own
expiry anyway).

The payload is stored with the notice (`Entry.notice`, the ledger's `notice`): the Reject's
encoded ILP error, the Fulfill's `ilp` data; so a notice re-sent after a restart carries the
original reason or data. A notice without one (an expiry) goes as the R00 expiry Reject.
It changes a transfer's state only to revert a fulfilment the sender refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from ilp_paychan.codec.btp import ContentType, Fulfill, Packet, ProtocolData, Reject, Response
from ilp_paychan.codec.ilp import encode_ilp
from ilp_paychan.errors import (
    AlreadyRolledBackError,
    NotAcceptedError,
    NotConnectedError,
    PeerError,
    PeerTimeoutError,
    TransferNotFoundError,
    UnreachableError,
)
from ilp_paychan.ledger import CANCELLED, FULFILLED, TransferLog
from ilp_paychan.plugin.events import EventEmitter
from ilp_paychan.plugin.protocol_data import decode_entry, entries_by_name
from ilp_paychan.plugin.reasons import expiry_error, reverted_reason
from ilp_paychan.plugin.transfers import Entry
from ilp_paychan.plugin.validate import parse_hash32

log = logging.getLogger("ilp_paychan.plugin")

_OCTETS = int(ContentType.OCTET_STREAM)

#: A settled transfer's Reject notice is dropped this long after its expiry if never acknowledged.
NOTICE_GRACE = 3600.0
#: Longest wait between re-delivery rounds. Short, because a socket replaced by a newer one
#: raises no link event to wake the round, and a fulfilment waits for it to be confirmed.
NOTICE_BACKOFF_MAX = 5.0
NOTICE_BACKOFF_MIN = 0.25
#: Pause between two tries within one `deliver_until` wait (after a dropped connection).
RETRY_PAUSE = 0.1
#: How often the background task looks whether the link is open again while it waits for it.
LINK_RECHECK = 1.0

_ALREADY_CANCELLED = AlreadyRolledBackError.ilp_code  # F05, from us and from the reference


class Requester(Protocol):
    """Sends a packet to the peer (the Plugin's request, timed as `kind`)."""

    def __call__(
        self, packet: Packet, kind: str, timeout: float | None = None
    ) -> Awaitable[Response]: ...


class Outcome(Enum):
    """What became of one delivery of a notice."""

    #: The peer answered with a Response (for a Fulfill: paid, final).
    ACKNOWLEDGED = "acknowledged"
    #: The sender refused the Fulfill as already cancelled; our fulfilment was rolled back.
    REVERTED = "reverted"
    #: The peer answered with another BTP Error; the notice is cleared, nothing reverted.
    REFUSED = "refused"
    #: Not sent, or no answer; the notice stays and is sent again.
    UNANSWERED = "unanswered"


@dataclass(frozen=True, slots=True)
class Answer:
    """How one delivery of a notice ended, with the peer's error when it refused."""

    outcome: Outcome
    #: The peer's BTP Error, for REVERTED and REFUSED.
    error: PeerError | None = None


_UNANSWERED = Answer(Outcome.UNANSWERED)
_ACKNOWLEDGED = Answer(Outcome.ACKNOWLEDGED)


def sender_record_state(error: PeerError) -> str | None:
    """The state in the transfer record a refusal quotes, if it quotes one.

    The JavaScript reference words its F05 as "<id> has already expired: <record as JSON>"
    (or "... cancelled: ..."); the record says what the transfer is on the sender's side.
    """
    message = str(error)
    start = message.find("{")
    if start < 0:
        return None
    try:
        record: Any = json.loads(message[start:])
    except ValueError:
        return None
    state = record.get("state") if isinstance(record, dict) else None
    return state if isinstance(state, str) else None


class PeerNotices:
    """Delivery of Fulfills and Rejects the peer has not answered yet."""

    def __init__(
        self,
        request: Requester,
        *,
        transfer_log: Callable[[], TransferLog | None],
        account: Callable[[], str],
        peer_account: Callable[[], str],
        active: Callable[[], bool],
        link_open: Callable[[], bool],
        on_claim: Callable[[Any], Awaitable[None]],
        events: EventEmitter,
    ) -> None:
        self._request = request
        self._transfer_log = transfer_log
        self._account = account
        self._peer_account = peer_account
        self._active = active
        self._link_open = link_open
        self._on_claim = on_claim
        self._events = events
        #: Notices being sent, or held by a caller delivering them itself: id -> holders.
        self._delivering: dict[str, int] = {}
        self._worker: asyncio.Task[None] | None = None
        #: Set by `kick()`: the background task goes round again instead of backing off.
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ holding

    @contextlib.contextmanager
    def holding(self, transfer_id: str) -> Iterator[None]:
        """The background task leaves this notice alone meanwhile (its caller delivers it)."""
        held = self._delivering
        held[transfer_id] = held.get(transfer_id, 0) + 1
        try:
            yield
        finally:
            left = held[transfer_id] - 1
            if left:
                held[transfer_id] = left
            else:
                del held[transfer_id]

    async def stored(self, transfer_id: str) -> Entry | None:
        """The pending notice of a transfer, with its payload; None when there is none."""
        transfer_log = self._transfer_log()
        if transfer_log is None:
            return None
        for stored in await transfer_log.list_peer_notices():
            if stored["transfer"]["id"] == transfer_id:
                return Entry.from_stored(stored)
        return None

    # ------------------------------------------------------------------ delivering

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

    async def deliver(self, entry: Entry) -> Answer:
        """Send a settled transfer's Fulfill/Reject once, if the link is open, and act on the
        answer. With no open link it sends nothing and leaves it to the background task."""
        if not self._link_open():
            self.kick()
            return _UNANSWERED
        with self.holding(entry.id):
            answer = await self._send(entry, None, None)
        if answer.outcome is Outcome.UNANSWERED:
            self.kick()
        return answer

    async def deliver_until(
        self, entry: Entry, deadline: float, preimage: bytes | None = None
    ) -> Answer:
        """Send the Fulfill/Reject and wait for the peer's answer until `deadline` (event-loop
        time), waiting for the link when it is down and trying again when it drops; the caller
        holds the notice (`holding`). UNANSWERED when the time is up or the plugin stops."""
        loop = asyncio.get_running_loop()
        while self._active():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            answer = await self._send(entry, preimage, remaining)
            if answer.outcome is not Outcome.UNANSWERED:
                return answer
            await asyncio.sleep(min(RETRY_PAUSE, max(deadline - loop.time(), 0.0)))
        return _UNANSWERED

    async def _send(self, entry: Entry, preimage: bytes | None, wait: float | None) -> Answer:
        """One request (`wait`: its deadline in seconds, None for `requestTimeout`)."""
        packet, kind = self._packet(entry, preimage)
        try:
            response = await self._request(packet, kind, wait)
        except PeerError as error:
            return await self._refused(entry, kind, error)
        except (PeerTimeoutError, UnreachableError, NotConnectedError) as error:
            log.info("%s of %s not acknowledged (%s)", kind, entry.id, type(error).__name__)
            return _UNANSWERED
        await self._acknowledged(entry, kind, response)
        return _ACKNOWLEDGED

    async def _acknowledged(self, entry: Entry, kind: str, response: Response | None) -> None:
        await self._clear(entry.id)
        if kind != "fulfill":
            return
        if response is not None and response.protocol_data:
            claim = entries_by_name(response.protocol_data).get("claim")
            if claim is not None:
                try:
                    await self._on_claim(decode_entry(claim))
                except Exception:
                    log.exception("handle_incoming_claim failed for %s", entry.id)
        events = self._events
        if events.has_listeners("incoming_fulfill_confirmed"):
            events.emit("incoming_fulfill_confirmed", entry.record, entry.fulfillment)

    async def _refused(self, entry: Entry, kind: str, error: PeerError) -> Answer:
        tid = entry.id
        if error.code.startswith("T"):
            # Temporary (the peer is starting, stopping, or its store is down): it decided
            # nothing, so this is no answer; the notice is sent again.
            log.info("%s of %s: peer answered %s %s; will retry", kind, tid, error.code, error.name)
            return _UNANSWERED
        if kind == "fulfill" and error.code == _ALREADY_CANCELLED:
            if sender_record_state(error) == FULFILLED:
                log.info("peer answered F05 to our fulfill of %s, yet holds it fulfilled", tid)
                await self._acknowledged(entry, kind, None)
                return _ACKNOWLEDGED
            return await self._revert(entry, error)
        log.warning("peer refused our %s of %s: %s %s", kind, tid, error.code, error.name)
        await self._clear(tid)
        return Answer(Outcome.REFUSED, error)

    async def _revert(self, entry: Entry, error: PeerError) -> Answer:
        """The sender cancelled the transfer before our Fulfill reached it: roll ours back."""
        tid = entry.id
        transfer_log = self._transfer_log()
        if transfer_log is None:
            return _UNANSWERED
        try:
            changed = await transfer_log.revert_fulfillment(tid)
        except (NotAcceptedError, TransferNotFoundError) as refusal:
            # The ledger's own refusal (not an incoming fulfilled transfer): trying again
            # cannot help.
            log.error("cannot revert the fulfillment of %s: %s; notice dropped", tid, refusal)
            await self._clear(tid)
            return Answer(Outcome.REFUSED, error)
        except Exception:
            # The store failed (it may be down for a while): keep the notice, ask again later.
            log.exception("reverting the fulfillment of %s failed; will retry", tid)
            return _UNANSWERED
        log.warning(
            "the peer had already cancelled %s (it answered %s %s): our fulfillment is reverted",
            tid,
            error.code,
            error.name,
        )
        entry.state = CANCELLED
        entry.fulfillment = None
        events = self._events
        if changed and events.has_listeners("incoming_fulfill_reverted"):
            reason = reverted_reason(
                self._peer_account(), error.code, error.name, str(error), error.triggered_at
            )
            events.emit("incoming_fulfill_reverted", entry.record, reason)
        return Answer(Outcome.REVERTED, error)

    async def _clear(self, transfer_id: str) -> None:
        transfer_log = self._transfer_log()
        if transfer_log is not None:
            try:
                await transfer_log.clear_peer_notice(transfer_id)
            except Exception:
                log.exception("could not clear the peer notice of %s", transfer_id)

    # ------------------------------------------------------------------ re-delivery

    def kick(self) -> None:
        """Re-deliver the stored notices now: start the background task, or wake it from its
        back-off (the link came back, a new notice was stored)."""
        if not self._active():
            return
        self._wake.set()
        if self._worker is None:
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
                self._wake.clear()  # a kick from here on means: go round again
                try:
                    answered = await self._round()
                except Exception:
                    log.exception("re-delivery of peer notices failed; will retry")
                    answered = False
                if answered is None:  # nothing left to send
                    if self._wake.is_set():
                        continue
                    return
                if answered:
                    backoff = NOTICE_BACKOFF_MIN
                    continue
                if not self._link_open():
                    await self._link_back()
                    backoff = NOTICE_BACKOFF_MIN
                elif await self._woken_within(backoff):
                    backoff = NOTICE_BACKOFF_MIN
                else:
                    backoff = min(backoff * 2, NOTICE_BACKOFF_MAX)
        finally:
            if self._worker is asyncio.current_task():
                self._worker = None

    async def _link_back(self) -> None:
        """Wait until the link is open again or a kick comes. Ending here instead would strand
        the notices: a socket that replaces one still closing (its handlers not done) becomes
        the active one without the link ever being reported down, so no "up" follows."""
        while self._active() and not self._link_open():
            if await self._woken_within(LINK_RECHECK):
                return

    async def _woken_within(self, seconds: float) -> bool:
        """True when `kick()` came within `seconds` (or before, since the round began)."""
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    async def _round(self) -> bool | None:
        """Send every stored notice nobody else is sending: None when there is none, else
        whether all were answered."""
        transfer_log = self._transfer_log()
        if transfer_log is None:
            return None
        stored = await transfer_log.list_peer_notices()
        pending = [n for n in stored if n["transfer"]["id"] not in self._delivering]
        if not pending:
            return None
        return await self._deliver_round(pending)

    async def _deliver_round(self, pending: list[dict[str, Any]]) -> bool:
        """One pass over the stored notices; False as soon as one goes unanswered."""
        for stored in pending:
            try:
                entry = Entry.from_stored(stored)
            except (KeyError, ValueError, TypeError):
                log.error("stored notice %r cannot be read; dropped", stored.get("transfer"))
                await self._clear(str(stored.get("transfer", {}).get("id", "")))
                continue
            if entry.id in self._delivering:
                continue  # a caller is delivering it right now
            if entry.state != FULFILLED and time.time() > entry.expires_at + NOTICE_GRACE:
                log.warning("giving up telling the peer about cancelled %s: expired", entry.id)
                await self._clear(entry.id)
                continue
            if not self._link_open():
                return False
            with self.holding(entry.id):
                answer = await self._send(entry, None, None)
            if answer.outcome is Outcome.UNANSWERED:
                return False
        return True
