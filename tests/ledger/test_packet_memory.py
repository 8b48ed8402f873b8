"""PacketMemoryStore: settled transfers packed with their fulfillment in either direction, and
the same outcomes and sums as the plain memory store (hypothesis, the plain store as oracle)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilp_paychan.errors import PluginError
from ilp_paychan.ledger import Backend, MemoryStore, PrepareOutcome, TransferLog
from ilp_paychan.ledger.packet_memory import PacketMemoryStore

START = datetime(2030, 1, 1, tzinfo=UTC)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def preimage(n: int) -> bytes:
    return hashlib.sha256(b"p%d" % n).digest()


def record(n: int, *, condition: bool, seconds: float = 30.0, amount: int = 5) -> dict[str, Any]:
    body: dict[str, Any] = {"id": f"packet-{n}", "amount": str(amount)}
    if condition:
        body["executionCondition"] = b64(hashlib.sha256(preimage(n)).digest())
    expires = START + timedelta(seconds=seconds)
    body["expiresAt"] = expires.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return body


def log_of(store: Any) -> TransferLog:
    return Backend(store).get_transfer_log("", None, None)


async def test_settled_packets_read_back_with_their_fulfillment_and_repeat() -> None:
    store = PacketMemoryStore()
    log = log_of(store)
    for n, incoming, condition in ((1, True, False), (2, False, True), (3, True, True)):
        assert await log.prepare(record(n, condition=condition), incoming) is PrepareOutcome.NEW
        assert await log.fulfill(f"packet-{n}", b64(preimage(n)))
        found = await log.get(f"packet-{n}")
        assert (found["state"], found["fulfillment"]) == ("fulfilled", b64(preimage(n)))
        assert found["isIncoming"] is incoming
        assert ("executionCondition" in found["transfer"]) is condition
        again = await log.prepare(record(n, condition=condition), incoming)
        assert again is PrepareOutcome.REPEAT_FULFILLED
        with pytest.raises(PluginError, match="matches the id"):
            await log.prepare(record(n, condition=condition, amount=6), incoming)
        with pytest.raises(PluginError, match="matches the id"):
            await log.prepare(record(n, condition=condition), not incoming)
    assert len(store._transfers[""]) == 0
    packed = store.packed("")
    assert packed is not None
    assert len(packed) == 3
    assert await log.revert_fulfillment("packet-1")
    assert (await log.get("packet-1"))["state"] == "cancelled"
    assert await log.prepare(record(1, condition=False), True) is PrepareOutcome.REPEAT_CANCELLED
    assert await log.get_incoming_fulfilled() == "5"
    assert await log.prune_settled(START + timedelta(seconds=31)) == 3
    assert len(packed) == 0
    assert packed.tables() == 0


async def test_what_cannot_be_packed_stays_whole() -> None:
    store = PacketMemoryStore()
    log = log_of(store)
    await log.prepare({"id": "money:1", "amount": "4"}, True)  # no expiry
    await log.fulfill("money:1", "sent")
    await log.prepare(record(9, condition=True), True)
    await log.fulfill("packet-9", b64(preimage(9)), notify_peer=True)  # a notice pending
    assert set(store._transfers[""]) == {"money:1", "packet-9"}
    await log.clear_peer_notice("packet-9")
    assert set(store._transfers[""]) == {"money:1"}


async def test_memory_follows_the_window_on_a_fake_clock() -> None:
    """5,000 packets, 100 a simulated second, each expiring 2 s after it is sent, a pass every
    50 with a 3 s retention: at most the packets of the last 6 s (plus a table's second)."""
    store = PacketMemoryStore()
    log = log_of(store)
    for n in range(5_000):
        now = n / 100
        await log.prepare(record(n, condition=False, seconds=now + 2), True)
        await log.fulfill(f"packet-{n}", b64(preimage(n)))
        if n % 50 == 49:
            await log.prune_settled(START + timedelta(seconds=now - 3))
    packed = store.packed("")
    assert packed is not None
    assert len(store._transfers[""]) == 0
    assert len(packed) <= (2 + 3 + 1 + 0.5) * 100 + 1
    assert packed.tables() <= 8
    assert packed.memory() <= 64 * 3 * len(packed) + 64 * 16 * packed.tables()
    assert await log.get_incoming_fulfilled() == str(5 * 5_000)


operation = st.tuples(
    st.sampled_from(["prepare", "fulfill", "cancel", "revert", "prune"]),
    st.integers(0, 5),
    st.booleans(),
    st.integers(0, 40),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(operation, max_size=40))
async def test_the_same_outcomes_and_sums_as_the_plain_store(ops: list[Any]) -> None:
    logs = [log_of(MemoryStore()), log_of(PacketMemoryStore())]
    for name, n, flag, seconds in ops:
        results = []
        for log in logs:
            try:
                if name == "prepare":
                    body = record(n, condition=flag, seconds=10 + n % 3)
                    results.append(await log.prepare(body, n % 2 == 0))
                elif name == "fulfill":
                    proof = preimage(n) if flag else preimage(n + 100)
                    results.append(await log.fulfill(f"packet-{n}", b64(proof)))
                elif name == "cancel":
                    results.append(await log.cancel(f"packet-{n}"))
                elif name == "revert":
                    results.append(await log.revert_fulfillment(f"packet-{n}"))
                else:
                    cutoff = START + timedelta(seconds=seconds)
                    results.append(await log.prune_settled(cutoff))
            except PluginError as exc:
                results.append(type(exc).__name__)
        # Expiries and cutoffs fall on whole seconds, so dropping whole one-second tables
        # forgets exactly what the plain store forgets.
        assert results[0] == results[1], (name, n, flag)
        sums = [
            (await log.get_incoming_fulfilled(), await log.get_outgoing_fulfilled()) for log in logs
        ]
        assert sums[0] == sums[1]
