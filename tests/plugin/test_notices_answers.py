"""`PeerNotices` alone: what each answer of the sender does to a stored Fulfill or Reject notice.

A unit test of one module: the ledger is a real memory TransferLog, the peer a scripted
requester (no sockets). The sender decides whether a Fulfill counts: a Response confirms it, F05
(already cancelled) reverts it, any other BTP Error only clears the notice, no answer keeps it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ilp_paychan.codec.btp import Fulfill, Packet, Reject, Response
from ilp_paychan.errors import PeerError, PeerTimeoutError, PluginError
from ilp_paychan.ledger import Backend, MemoryStore, TransferLog
from ilp_paychan.plugin import notices as notices_module
from ilp_paychan.plugin.events import EventEmitter
from ilp_paychan.plugin.notices import NOTICE_GRACE, Outcome, PeerNotices
from ilp_paychan.plugin.transfers import Entry
from ilp_paychan.transport.connection import ConnectionLostError
from testkit.waiting import wait_until as poll_until

from .conftest import WAIT, b64url

ACCOUNT = "example.red.client"
PEER = "example.red.server"


class StoreDownError(PluginError, ConnectionError):
    """A temporary store failure, as a store reports one (a PluginError, T00)."""

    ilp_code = "T00"


Script = Callable[[Packet], Response]


def peer_error(code: str, name: str, message: str) -> PeerError:
    return PeerError.from_btp_error(
        code=code,
        name=name,
        data=json.dumps({"message": message}),
        triggered_at=datetime(2030, 1, 2, tzinfo=UTC),
    )


class ScriptedPeer:
    """The requester: records each packet and answers with what `answers` says, in turn."""

    def __init__(self, *answers: Response | BaseException) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[Packet, str, float | None]] = []
        self.link_open = True

    async def __call__(
        self,
        packet: Packet,
        kind: str,
        timeout: float | None = None,  # noqa: ASYNC109 - recorded, as PeerLink's deadline
    ) -> Response:
        self.sent.append((packet, kind, timeout))
        await asyncio.sleep(0)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


class Setup:
    def __init__(self, peer: ScriptedPeer) -> None:
        self.peer = peer
        self.log: TransferLog = Backend(MemoryStore()).get_transfer_log("", 1000, -1000)
        self.events = EventEmitter()
        self.seen: dict[str, list[tuple[Any, ...]]] = {}
        for name in ("incoming_fulfill_confirmed", "incoming_fulfill_reverted"):
            self.events.on(name, self._recorder(name))
        self.claims: list[Any] = []
        self.notices = PeerNotices(
            peer,
            transfer_log=lambda: self.log,
            account=lambda: ACCOUNT,
            peer_account=lambda: PEER,
            active=lambda: True,
            link_open=lambda: peer.link_open,
            on_claim=self._claim,
            events=self.events,
        )

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.seen.setdefault(name, []).append(args)

        return record

    async def _claim(self, claim: Any) -> None:
        self.claims.append(claim)

    async def settled(
        self, amount: int, *, fulfil: bool = True, expires_in: float = 30.0
    ) -> tuple[Entry, bytes]:
        """An incoming transfer fulfilled (or rejected), its notice stored; (entry, preimage)."""
        preimage = os.urandom(32)
        tid = f"00000000-0000-4000-8000-{os.urandom(6).hex()}"
        record = {
            "id": tid,
            "amount": str(amount),
            "executionCondition": b64url(hashlib.sha256(preimage).digest()),
            "expiresAt": (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat(),
        }
        await self.log.prepare(record, True)
        if fulfil:
            await self.log.fulfill(tid, b64url(preimage), notify_peer=True, notice=b"\x01data")
        else:
            await self.log.cancel(tid, notify_peer=True, notice=None)
        (stored,) = [n for n in await self.log.list_peer_notices() if n["transfer"]["id"] == tid]
        return Entry.from_stored(stored), preimage

    async def notice_ids(self) -> list[str]:
        return [n["transfer"]["id"] for n in await self.log.list_peer_notices()]


async def test_a_response_confirms_the_fulfilment() -> None:
    setup = Setup(ScriptedPeer(Response(0)))
    entry, preimage = await setup.settled(7)
    answer = await setup.notices.deliver(entry)
    assert answer.outcome is Outcome.ACKNOWLEDGED
    ((packet, kind, _),) = setup.peer.sent
    assert isinstance(packet, Fulfill)
    assert (kind, packet.fulfillment, packet.protocol_data[0].data) == (
        "fulfill",
        preimage,
        b"\x01data",
    )
    assert await setup.notice_ids() == []
    assert (await setup.log.get(entry.id))["state"] == "fulfilled"
    assert await setup.log.get_balance() == "7"
    ((record, fulfillment),) = setup.seen["incoming_fulfill_confirmed"]
    assert (record["id"], fulfillment) == (entry.id, b64url(preimage))
    assert "incoming_fulfill_reverted" not in setup.seen


async def test_f05_reverts_the_fulfilment_in_the_ledger() -> None:
    setup = Setup(ScriptedPeer(peer_error("F05", "AlreadyRolledBackError", "expired")))
    entry, _ = await setup.settled(7)
    kept, _ = await setup.settled(3)
    answer = await setup.notices.deliver(entry)
    assert answer.outcome is Outcome.REVERTED
    assert answer.error is not None
    assert answer.error.code == "F05"
    record = await setup.log.get(entry.id)
    assert (record["state"], record["fulfillment"]) == ("cancelled", None)
    assert await setup.log.get_balance() == "3"
    assert await setup.log.get_incoming_fulfilled_and_prepared() == "3"
    assert await setup.notice_ids() == [kept.id]
    ((reverted, reason),) = setup.seen["incoming_fulfill_reverted"]
    assert reverted["id"] == entry.id
    assert (reason["code"], reason["name"], reason["triggered_by"]) == (
        "R00",
        "Transfer Timed Out",
        PEER,
    )
    assert reason["triggered_at"] == datetime(2030, 1, 2, tzinfo=UTC)
    info = reason["additional_info"]
    assert (info["code"], info["name"]) == ("F05", "AlreadyRolledBackError")
    assert "expired" in info["message"]
    assert "incoming_fulfill_confirmed" not in setup.seen


async def test_a_store_failing_during_the_revert_keeps_the_notice_for_a_later_try(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store outage must not lose the sender's verdict: nothing changes, the notice stays, and
    the next delivery (same F05) reverts."""
    setup = Setup(ScriptedPeer(peer_error("F05", "AlreadyRolledBackError", "expired")))
    entry, _ = await setup.settled(7)
    setup.notices._active = lambda: False  # no background re-delivery in this test
    store = setup.log._store

    async def store_down(key: str, transfer_id: str) -> bool:
        raise StoreDownError("the store is down")

    with monkeypatch.context() as patched:
        patched.setattr(store, "revert_fulfillment", store_down)
        assert (await setup.notices.deliver(entry)).outcome is Outcome.UNANSWERED
    assert await setup.notice_ids() == [entry.id]
    assert (await setup.log.get(entry.id))["state"] == "fulfilled"
    assert "incoming_fulfill_reverted" not in setup.seen

    assert (await setup.notices.deliver(entry)).outcome is Outcome.REVERTED
    assert (await setup.log.get(entry.id))["state"] == "cancelled"
    assert await setup.notice_ids() == []
    assert len(setup.seen["incoming_fulfill_reverted"]) == 1


async def test_f05_from_a_sender_that_holds_the_transfer_fulfilled_confirms_it() -> None:
    """An F05 worded as the JavaScript reference words it ("<id> has already expired: <record>")
    whose record says fulfilled: the sender holds it fulfilled, so that is an acknowledgement."""
    setup = Setup(ScriptedPeer(Response(0)))
    entry, _ = await setup.settled(7)
    record = {"transfer": {"id": entry.id}, "isIncoming": False, "state": "fulfilled"}
    setup.peer.answers = [
        peer_error(
            "F05",
            "AlreadyRolledBackError",
            f"{entry.id} has already expired: {json.dumps(record, separators=(',', ':'))}",
        )
    ]
    answer = await setup.notices.deliver(entry)
    assert answer.outcome is Outcome.ACKNOWLEDGED
    assert (await setup.log.get(entry.id))["state"] == "fulfilled"
    assert await setup.log.get_balance() == "7"
    assert await setup.notice_ids() == []
    assert len(setup.seen["incoming_fulfill_confirmed"]) == 1


async def test_f05_quoting_a_cancelled_record_reverts() -> None:
    setup = Setup(ScriptedPeer(Response(0)))
    entry, _ = await setup.settled(7)
    record = {"transfer": {"id": entry.id}, "isIncoming": False, "state": "prepared"}
    setup.peer.answers = [
        peer_error(
            "F05", "AlreadyRolledBackError", f"{entry.id} has already expired: {json.dumps(record)}"
        )
    ]
    assert (await setup.notices.deliver(entry)).outcome is Outcome.REVERTED
    assert (await setup.log.get(entry.id))["state"] == "cancelled"


@pytest.mark.parametrize(
    ("code", "name"),
    [("F00", "TypeError"), ("F02", "TransferNotFoundError"), ("F06", "AlreadyFulfilledError")],
)
async def test_another_refusal_clears_the_notice_and_reverts_nothing(code: str, name: str) -> None:
    setup = Setup(ScriptedPeer(peer_error(code, name, "no")))
    entry, _ = await setup.settled(7)
    answer = await setup.notices.deliver(entry)
    assert answer.outcome is Outcome.REFUSED
    assert answer.error is not None
    assert answer.error.code == code
    assert (await setup.log.get(entry.id))["state"] == "fulfilled"
    assert await setup.log.get_balance() == "7"
    assert await setup.notice_ids() == []
    assert setup.seen == {}


async def test_f05_to_a_reject_reverts_nothing() -> None:
    setup = Setup(ScriptedPeer(peer_error("F05", "AlreadyRolledBackError", "cancelled")))
    entry, _ = await setup.settled(7, fulfil=False)
    answer = await setup.notices.deliver(entry)
    assert answer.outcome is Outcome.REFUSED
    ((packet, kind, _),) = setup.peer.sent
    assert (isinstance(packet, Reject), kind) == (True, "reject")
    assert await setup.notice_ids() == []
    assert setup.seen == {}


@pytest.mark.parametrize(
    "error",
    [
        PeerTimeoutError("slow"),
        ConnectionLostError("dropped"),
        peer_error("T00", "UnreachableError", "the plugin is not connected"),
    ],
    ids=["timeout", "lost", "temporary-error"],
)
async def test_no_answer_keeps_the_notice(error: BaseException) -> None:
    """No answer, or a temporary error (the sender decided nothing): the notice stays."""
    setup = Setup(ScriptedPeer(error))
    entry, _ = await setup.settled(7)
    setup.notices._active = lambda: False  # no background re-delivery in this test
    assert (await setup.notices.deliver(entry)).outcome is Outcome.UNANSWERED
    assert await setup.notice_ids() == [entry.id]
    assert (await setup.log.get(entry.id))["state"] == "fulfilled"
    assert setup.seen == {}


async def test_with_the_link_down_deliver_sends_nothing() -> None:
    setup = Setup(ScriptedPeer(Response(0)))
    setup.peer.link_open = False
    entry, _ = await setup.settled(7)
    assert (await setup.notices.deliver(entry)).outcome is Outcome.UNANSWERED
    assert setup.peer.sent == []
    assert await setup.notice_ids() == [entry.id]


async def test_deliver_until_tries_again_after_a_dropped_connection() -> None:
    setup = Setup(ScriptedPeer(ConnectionLostError("dropped"), Response(0)))
    entry, _ = await setup.settled(7)
    deadline = asyncio.get_running_loop().time() + WAIT
    with setup.notices.holding(entry.id):
        answer = await setup.notices.deliver_until(entry, deadline)
    assert answer.outcome is Outcome.ACKNOWLEDGED
    assert len(setup.peer.sent) == 2
    # Each try is given what is left of the wait, not a fresh requestTimeout.
    assert all(timeout is not None and timeout <= WAIT for _, _, timeout in setup.peer.sent)
    assert await setup.notice_ids() == []


async def test_deliver_until_gives_up_at_its_deadline_and_keeps_the_notice() -> None:
    setup = Setup(ScriptedPeer(PeerTimeoutError("slow")))
    entry, _ = await setup.settled(7)
    deadline = asyncio.get_running_loop().time()  # already reached: nothing is sent
    answer = await setup.notices.deliver_until(entry, deadline)
    assert answer.outcome is Outcome.UNANSWERED
    assert setup.peer.sent == []
    assert await setup.notice_ids() == [entry.id]


async def _redelivered(setup: Setup) -> None:
    setup.notices.kick()
    worker = setup.notices._worker
    assert worker is not None
    async with asyncio.timeout(WAIT):
        await worker  # it ends once every notice is answered or given up


async def test_a_fulfill_notice_is_sent_after_the_expiry_too() -> None:
    """Long past its expiry (beyond the Reject grace even): still sent, the sender decides."""
    setup = Setup(ScriptedPeer(peer_error("F05", "AlreadyRolledBackError", "expired")))
    old = -2 * NOTICE_GRACE
    fulfilled, _ = await setup.settled(7, expires_in=old)
    await setup.settled(2, fulfil=False, expires_in=old)
    await _redelivered(setup)
    assert [packet.transfer_id for packet, _, _ in setup.peer.sent] == [fulfilled.id]
    assert await setup.notice_ids() == []  # the Reject given up, the Fulfill answered
    assert (await setup.log.get(fulfilled.id))["state"] == "cancelled"
    assert await setup.log.get_balance() == "0"
    assert len(setup.seen["incoming_fulfill_reverted"]) == 1


async def test_the_background_task_leaves_a_held_notice_to_its_holder() -> None:
    setup = Setup(ScriptedPeer(Response(0)))
    held, _ = await setup.settled(7)
    other, _ = await setup.settled(3)
    with setup.notices.holding(held.id):
        await _redelivered(setup)
    assert [packet.transfer_id for packet, _, _ in setup.peer.sent] == [other.id]
    assert await setup.notice_ids() == [held.id]


async def test_a_kick_wakes_the_background_task_from_its_back_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The link comes back (or a new notice is stored) while the task waits out a long back-off:
    it goes round again at once instead."""
    monkeypatch.setattr(notices_module, "NOTICE_BACKOFF_MIN", 3600.0)
    setup = Setup(ScriptedPeer(PeerTimeoutError("slow"), Response(0)))
    entry, _ = await setup.settled(7)
    setup.notices.kick()
    worker = setup.notices._worker
    assert worker is not None
    await poll_until(lambda: setup.peer.sent, "the first try", WAIT)
    for _ in range(10):
        await asyncio.sleep(0)  # the first try timed out; the task is backing off now
    assert not worker.done()
    assert await setup.notice_ids() == [entry.id]
    setup.notices.kick()  # e.g. the link came back up
    async with asyncio.timeout(WAIT):
        await worker
    assert len(setup.peer.sent) == 2
    assert await setup.notice_ids() == []
