"""`TransferLog.revert_fulfillment` on every store (memory, key/value adapter, SQLite, PostgreSQL).

The receiver of a transfer reverts its fulfilment when the sender answers the Fulfill with
"already cancelled": state, sums and peer notice change together, in one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from ilp_paychan.errors import (
    AlreadyRolledBackError,
    InvalidFieldsError,
    NotAcceptedError,
    TransferNotFoundError,
)
from ilp_paychan.ledger import Backend, PrepareOutcome, TransferLog

Reopen = Callable[[], Awaitable[Backend]]

ID1 = "1857d460-2a46-4545-8311-5539d99e78c0"
ID2 = "2857d460-2a46-4545-8311-5539d99e78c0"
ID3 = "3857d460-2a46-4545-8311-5539d99e78c0"


def transfer(tid: str, amount: str) -> dict[str, str]:
    return {"id": tid, "amount": amount, "expiresAt": "2030-01-01T00:00:00.000Z"}


async def sums(log: TransferLog) -> dict[str, str]:
    return {
        "if": await log.get_incoming_fulfilled(),
        "ifap": await log.get_incoming_fulfilled_and_prepared(),
        "of": await log.get_outgoing_fulfilled(),
        "ofap": await log.get_outgoing_fulfilled_and_prepared(),
        "balance": await log.get_balance(),
    }


@pytest.fixture
def log(backend: Backend) -> TransferLog:
    return backend.get_transfer_log("rev", maximum="1000", minimum="-1000")


async def _fulfilled_with_notice(log: TransferLog, tid: str, amount: str) -> None:
    assert await log.prepare(transfer(tid, amount), True) is PrepareOutcome.NEW
    assert await log.fulfill(tid, "ful", notify_peer=True, notice=b"\x01ilp") is True


async def test_revert_moves_state_sums_and_notice_together(
    log: TransferLog, reopen: Reopen
) -> None:
    await _fulfilled_with_notice(log, ID1, "30")
    await _fulfilled_with_notice(log, ID2, "5")
    await log.prepare(transfer(ID3, "7"), False)
    await log.fulfill(ID3, "out")
    assert await sums(log) == {"if": "35", "ifap": "35", "of": "7", "ofap": "7", "balance": "28"}

    assert await log.revert_fulfillment(ID1) is True

    for opened in (log, (await reopen()).get_transfer_log("rev")):
        assert await sums(opened) == {
            "if": "5",
            "ifap": "5",
            "of": "7",
            "ofap": "7",
            "balance": "-2",
        }
        record = await opened.get(ID1)
        assert (record["state"], record["fulfillment"]) == ("cancelled", None)
        assert [n["transfer"]["id"] for n in await opened.list_peer_notices()] == [ID2]
        assert (await opened.get(ID2))["state"] == "fulfilled"


async def test_revert_is_idempotent(log: TransferLog) -> None:
    await _fulfilled_with_notice(log, ID1, "30")
    assert await log.revert_fulfillment(ID1) is True
    assert await log.revert_fulfillment(ID1) is False
    assert await sums(log) == {"if": "0", "ifap": "0", "of": "0", "ofap": "0", "balance": "0"}


async def test_concurrent_reverts_count_once(log: TransferLog) -> None:
    await _fulfilled_with_notice(log, ID1, "30")
    await _fulfilled_with_notice(log, ID2, "4")
    results = await asyncio.gather(*(log.revert_fulfillment(ID1) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert await log.get_incoming_fulfilled() == "4"
    assert await log.get_incoming_fulfilled_and_prepared() == "4"


async def test_a_cancelled_transfer_reverts_to_no_change(log: TransferLog) -> None:
    await log.prepare(transfer(ID1, "9"), True)
    await log.cancel(ID1, notify_peer=True, notice=b"reason")
    assert await log.revert_fulfillment(ID1) is False
    assert [n["transfer"]["id"] for n in await log.list_peer_notices()] == [ID1]
    assert await log.get_incoming_fulfilled_and_prepared() == "0"


async def test_only_an_incoming_fulfilled_transfer_can_be_reverted(log: TransferLog) -> None:
    await log.prepare(transfer(ID1, "9"), True)
    await log.prepare(transfer(ID2, "3"), False)
    await log.prepare(transfer(ID3, "2"), False)
    await log.fulfill(ID3, "out")
    before = await sums(log)
    with pytest.raises(NotAcceptedError, match="prepared"):
        await log.revert_fulfillment(ID1)
    with pytest.raises(NotAcceptedError, match="outgoing"):
        await log.revert_fulfillment(ID2)
    with pytest.raises(NotAcceptedError, match="outgoing"):
        await log.revert_fulfillment(ID3)
    with pytest.raises(TransferNotFoundError):
        await log.revert_fulfillment("00000000-0000-4000-8000-000000000000")
    with pytest.raises(InvalidFieldsError, match="id"):
        await log.revert_fulfillment(7)  # type: ignore[arg-type]
    assert await sums(log) == before
    assert [(await log.get(t))["state"] for t in (ID1, ID2, ID3)] == [
        "prepared",
        "prepared",
        "fulfilled",
    ]


async def test_a_reverted_transfer_stays_cancelled(log: TransferLog) -> None:
    """Afterwards it behaves as any cancelled transfer: no fulfil, no re-prepare, prunable."""
    await _fulfilled_with_notice(log, ID1, "30")
    await log.revert_fulfillment(ID1)
    with pytest.raises(AlreadyRolledBackError):
        await log.fulfill(ID1, "ful")
    assert await log.cancel(ID1) is False
    assert await log.prepare(transfer(ID1, "30"), True) is PrepareOutcome.REPEAT_CANCELLED
    assert await log.get_incoming_fulfilled_and_prepared() == "0"
    assert await log.prune_settled(datetime(2031, 1, 1, tzinfo=UTC)) == 1
