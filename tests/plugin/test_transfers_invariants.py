"""transfers.py: the state machine's invariants under random interleavings (hypothesis).

Whatever order prepares, fulfils, rejects and expiries of a few transfers arrive in — some of them
concurrently — every transfer ends in at most one final state, a final state never changes, and
the ledger's sums equal what the final states say.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ilp_paychan.errors import PluginError
from ilp_paychan.ledger import open_backend
from ilp_paychan.plugin.transfers import Entry, TransferBook

PREIMAGES = [bytes([n]) * 32 for n in range(4)]
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["fulfil", "fulfil_wrong", "reject", "expire", "peer_reject", "prepare"]),
        st.integers(0, 3),
        st.booleans(),  # run concurrently with the next operation
    ),
    max_size=25,
)


def entry_for(index: int, incoming: bool, ids: list[str]) -> Entry:
    record = {
        "id": ids[index],
        "amount": str(index + 1),
        "executionCondition": "c",
        "expiresAt": "2030-01-01T00:00:00.000Z",
    }
    return Entry(
        ids[index],
        record,
        incoming,
        index + 1,
        hashlib.sha256(PREIMAGES[index]).digest(),
        time.time() + 600,
    )


async def apply(book: TransferBook, name: str, index: int, ids: list[str], incoming: bool) -> None:
    transfer_id = ids[index]
    if name == "prepare":
        await book.prepare(entry_for(index, incoming, ids))
    elif name == "fulfil":
        if incoming:
            await book.fulfill_incoming(transfer_id, PREIMAGES[index], time.time())
        else:
            await book.fulfill_outgoing(transfer_id, PREIMAGES[index], time.time())
    elif name == "fulfil_wrong":
        await book.fulfill_incoming(transfer_id, PREIMAGES[(index + 1) % 4], time.time())
    elif name == "reject":
        await book.reject_incoming(transfer_id)
    elif name == "peer_reject":
        await book.reject_by_peer(transfer_id, time.time())
    else:
        await book.expire(transfer_id)


async def run(operations: list[tuple[str, int, bool]], incoming: bool) -> None:
    backend = await open_backend("memory:")
    book = TransferBook(backend.get_transfer_log())
    ids = [str(uuid.uuid4()) for _ in range(4)]
    for index in range(4):
        await book.prepare(entry_for(index, incoming, ids))
    finals: dict[str, str] = {}
    batch: list[tuple[str, int]] = []
    for name, index, concurrent in [*operations, ("expire", 0, False)]:
        batch.append((name, index))
        if concurrent:
            continue
        await asyncio.gather(
            *(apply(book, n, i, ids, incoming) for n, i in batch), return_exceptions=True
        )
        batch.clear()
        for transfer_id in ids:
            state = (await book.log.get(transfer_id))["state"]
            if transfer_id in finals:
                assert state == finals[transfer_id], "a final state changed"
            elif state != "prepared":
                finals[transfer_id] = state
    log = book.log
    fulfilled = sum(i + 1 for i, t in enumerate(ids) if finals.get(t) == "fulfilled")
    prepared = sum(i + 1 for i, t in enumerate(ids) if t not in finals)
    side = "incoming" if incoming else "outgoing"
    assert int(await getattr(log, f"get_{side}_fulfilled")()) == fulfilled
    assert int(await getattr(log, f"get_{side}_fulfilled_and_prepared")()) == fulfilled + prepared
    assert set(book.prepared) == {t for t in ids if t not in finals}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=OPERATIONS, incoming=st.booleans())
def test_every_transfer_settles_at_most_once_and_sums_agree(
    operations: list[tuple[str, int, bool]], incoming: bool
) -> None:
    asyncio.run(run(operations, incoming))


def test_plugin_errors_are_the_only_refusals() -> None:
    """The operations above refuse only with PluginError subclasses (never a crash)."""

    async def main() -> None:
        backend = await open_backend("memory:")
        book = TransferBook(backend.get_transfer_log())
        ids = [str(uuid.uuid4()) for _ in range(4)]
        await book.prepare(entry_for(0, True, ids))
        for name in ["fulfil_wrong", "peer_reject", "prepare"]:
            with contextlib.suppress(PluginError):
                await apply(book, name, 0, ids, True)

    asyncio.run(main())
