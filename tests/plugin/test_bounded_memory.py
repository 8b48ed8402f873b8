"""Memory stays bounded by the transfers of the retention window, not by all transfers ever made.

No timing and no RSS here: the sizes of the structures that hold something per transfer are
checked after many transfers — on a fake clock for the retention window, and over a real
loopback pair for everything a transfer passes through (book, expiry scheduler, notices, tasks).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.ledger import Backend, MemoryStore
from ilp_paychan.plugin import forgotten, retention
from ilp_paychan.plugin.expiry import ExpiryScheduler
from ilp_paychan.plugin.transfers import Entry, TransferBook

from .conftest import WAIT, b64url, client_options, make_transfer, server_options

START = 2_000_000_000.0
TRANSFERS = 5_000
RATE = 100.0  # transfers per simulated second
LIFETIME = 2.0  # seconds from a transfer's prepare to its expiry
RETENTION = 3.0
PRUNE_EVERY = 50  # transfers between two pruning passes


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def new_entry(incoming: bool, expires: float) -> tuple[Entry, bytes]:
    preimage = os.urandom(32)
    condition = hashlib.sha256(preimage).digest()
    record = {
        "id": str(uuid.uuid4()),
        "amount": "1",
        "executionCondition": b64url(condition),
        "expiresAt": at(expires).isoformat().replace("+00:00", "Z"),
        "to": "example.red.server",
        "from": "example.red.client",
        "ledger": "example.red.",
    }
    return Entry(record["id"], record, incoming, 1, condition, expires), preimage


def sizes(store: MemoryStore) -> tuple[int, int]:
    """(full records, packed settled records and digests) of the default log."""
    index = store._settled.get("")
    paid = store._paid.get("")
    packed = (0 if index is None else len(index)) + (0 if paid is None else len(paid))
    return len(store._transfers.get("", {})), packed


def digests(store: MemoryStore) -> int:
    """The fulfilled outgoing transfers kept as 12-byte digests."""
    paid = store._paid.get("")
    return 0 if paid is None else len(paid)


async def test_retained_records_are_those_of_the_window_on_a_fake_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(forgotten, "CANCELLED_KEPT_MAX", 200)
    clock = [START]
    scheduler = ExpiryScheduler(lambda ids: None, clock=lambda: clock[0])
    store = MemoryStore(compact_settled=True)
    book = TransferBook(Backend(store).get_transfer_log("", None, None), prunes=True)
    expiries: list[float] = []
    try:
        for number in range(TRANSFERS):
            now = clock[0] = START + number / RATE
            kind = number % 10  # 8 paid to us, 1 paid by us, 1 of ours cancelled at expiry
            entry, preimage = new_entry(incoming=kind < 8, expires=now + LIFETIME)
            await book.prepare(entry)
            scheduler.arm(entry.id, entry.expires_at)
            if kind < 8:
                await book.fulfill_incoming(entry.id, preimage, now)
                await book.log.clear_peer_notice(entry.id)  # the sender acknowledged
            elif kind == 8:
                await book.fulfill_outgoing(entry.id, preimage, now)
            else:
                assert (await book.expire(entry.id))[1] is True
            scheduler.disarm(entry.id)
            expiries.append(entry.expires_at)
            if number % PRUNE_EVERY == PRUNE_EVERY - 1:
                await retention.prune_pass(book, RETENTION, now=at(now))

        cutoff = clock[0] - RETENTION  # the last pass forgot what expired before this
        kept_at_most = sum(1 for expiry in expiries if expiry >= cutoff - 1e-3)
        kept_at_least = sum(1 for expiry in expiries if expiry > cutoff + 1e-3)
        full, packed = sizes(store)
        assert full == 0
        # A digest goes with its table, once the table's latest expiry (rounded up to the
        # second) is past: up to a second and a quarter of its window (5 s) later than a
        # packed record (a table takes transfers for three passes of 0.5 s here).
        paid = digests(store)
        slack = sum(
            1
            for number, expiry in enumerate(expiries)
            if number % 10 == 8 and cutoff - 2.5 - 1e-3 <= expiry < cutoff - 1e-3
        )
        assert kept_at_least <= packed <= kept_at_most + slack
        assert (
            0
            < paid
            <= sum(1 for n, e in enumerate(expiries) if n % 10 == 8 and e >= cutoff - 2.5 - 1e-3)
        )
        assert kept_at_most <= (LIFETIME + RETENTION) * RATE + 2  # about 500 of 5,000
        index = store._settled[""]
        assert len(index._by_second) <= LIFETIME + RETENTION + 2
        assert book.prepared == {}
        assert len(scheduler) == 0
        assert len(scheduler._heap) == 0
        assert len(book.forgotten) == 200  # 500 cancelled, bounded by the (lowered) maximum
        assert await book.log.get_incoming_fulfilled() == str(TRANSFERS * 8 // 10)
        assert await book.log.get_outgoing_fulfilled() == str(TRANSFERS // 10)
    finally:
        scheduler.stop()


async def test_a_loopback_pair_keeps_nothing_per_transfer_but_its_packed_records() -> None:
    """A memory listener fulfilling everything a stateless client sends: once settled, each
    transfer is one packed record per side, and the pruning pass removes those too."""
    server = Plugin(server_options(maxBalance="1000000"))
    await server.connect()
    assert server.listener_port is not None
    client = Plugin(client_options(server.listener_port))
    await client.connect()
    fulfilling: set[asyncio.Task[Any]] = set()
    settled: dict[str, asyncio.Future[None]] = {}

    def fulfil(transfer: dict[str, Any]) -> None:
        task = asyncio.ensure_future(
            server.fulfill_condition(transfer["id"], preimages.pop(transfer["id"]))
        )
        fulfilling.add(task)
        task.add_done_callback(fulfilling.discard)

    def done(transfer: dict[str, Any], *_: Any) -> None:
        settled.pop(transfer["id"]).set_result(None)

    server.on("incoming_prepare", fulfil)
    client.on("outgoing_fulfill", done)
    preimages: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    count = 2_000
    try:

        async def pay() -> None:
            transfer, fulfillment = make_transfer(client.get_peer_account(), "1")
            preimages[transfer["id"]] = fulfillment
            settled[transfer["id"]] = loop.create_future()
            future = settled[transfer["id"]]
            await client.send_transfer(transfer)
            await future

        async with asyncio.timeout(WAIT * 6):
            for _ in range(count // 20):  # 20 in flight
                await asyncio.gather(*(pay() for _ in range(20)))
            while fulfilling:
                await asyncio.wait(list(fulfilling))
        assert await server.get_balance() == str(count)

        for plugin in (server, client):
            book = plugin._book
            assert book is not None
            assert book.prepared == {}
            assert len(plugin._scheduler) == 0
            assert len(plugin._scheduler._heap) <= 64
            assert plugin._notices._delivering == {}
            assert plugin._incoming.running == 0
            assert len(plugin._tasks) <= 1  # the pruning task
            assert plugin._backend is not None
            store = plugin._backend.store
            assert isinstance(store, MemoryStore)
            assert sizes(store) == (0, count)
            after_every_expiry = at(datetime.now(UTC).timestamp() + 31)  # they expire in 30 s
            assert await retention.prune_pass(book, 0, now=after_every_expiry) == count
            assert sizes(store) == (0, 0)
        assert settled == {}
        assert preimages == {}
    finally:
        await client.disconnect()
        await server.disconnect()
