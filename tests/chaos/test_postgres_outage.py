"""The PostgreSQL store stopped and restarted under load, the plugins left running.

A private throwaway cluster (tests/pgserver.py; never the shared server other tests use) holds
the listener's ledger; the client keeps its own in memory. Both pay each other continuously
while the cluster is stopped with `pg_ctl -m immediate` (as if it crashed) and started again.
During the outage every call that needs the store fails with StoreUnavailableError, locally
and, as a T00 refusal of that name, for the peer; nothing is half-written (the store's sums
equal the sums over its transfers); after the restart payments flow again without restarting
either plugin, and both sides agree about every transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chaos.common import b64url
from chaos.harness import StoreSpec
from ilp_paychan import Plugin
from ilp_paychan.errors import PeerError, PluginError, StoreUnavailableError, TransferNotFoundError
from pgserver import ThrowawayCluster
from testkit.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SECRET = "outage_secret"
EXPIRY = 3.0
RATE = 40.0  # transfers per second, each direction
LIMIT = 60.0  # bound of every wait
#: What a call may raise in this test: the store outage itself, a fulfilment that lost the race
#: with its expiry or was not acknowledged in time. Anything else is a failure.
ALLOWED = {"StoreUnavailableError", "AlreadyRolledBackError", "FulfillmentPendingError"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThrowawayCluster]:
    own = ThrowawayCluster()
    try:
        own.start()
        yield own
    finally:
        own.stop()


@dataclass
class Load:
    """Both plugins paying each other; every outcome is counted by the error's name."""

    server: Plugin
    client: Plugin
    preimages: dict[str, bytes] = field(default_factory=dict)
    tried: set[str] = field(default_factory=set)
    outcomes: Counter[str] = field(default_factory=Counter)
    fulfilled: Counter[str] = field(default_factory=Counter)
    #: Answers (fulfil or reject) begun while the store was down, per payee.
    answered_in_outage: Counter[str] = field(default_factory=Counter)
    outage: bool = False
    running: bool = True

    def name(self, plugin: Plugin) -> str:
        return "server" if plugin is self.server else "client"

    def record(self, where: str, error: PluginError) -> None:
        if isinstance(error, PeerError):
            self.outcomes[f"{where}: peer {error.code} {error.name}"] += 1
        else:
            self.outcomes[f"{where}: {type(error).__name__}"] += 1

    async def pay(self, payer: Plugin) -> None:
        preimage = os.urandom(32)
        tid = str(uuid.uuid4())
        self.preimages[tid] = preimage
        self.tried.add(tid)
        transfer = {
            "id": tid,
            "to": payer.get_peer_account(),
            "amount": str(1 + preimage[0]),
            "executionCondition": b64url(hashlib.sha256(preimage).digest()),
            "expiresAt": (datetime.now(UTC) + timedelta(seconds=EXPIRY)).isoformat(),
        }
        try:
            await payer.send_transfer(transfer)
        except PluginError as error:
            self.record(f"{self.name(payer)} send_transfer", error)

    async def answer(self, payee: Plugin, transfer: dict[str, Any]) -> None:
        """Fulfil or reject, at once or (half of them) up to 2 s later, so that some answers
        fall into the outage."""
        tid = transfer["id"]
        where = self.name(payee)
        delay = self.preimages[tid][2]
        if delay < 128:
            await asyncio.sleep(delay / 64)
        if self.outage:
            self.answered_in_outage[where] += 1
        try:
            if self.preimages[tid][1] < 26:  # about one in ten is rejected
                await payee.reject_incoming_transfer(tid, {"code": "F99", "name": "no"})
                where += " reject"
            else:
                await payee.fulfill_condition(tid, b64url(self.preimages[tid]))
                self.fulfilled[where] += 1
                where += " fulfill"
        except PluginError as error:
            self.record(f"{where} answer", error)

    def listen(self) -> None:
        for payee in (self.server, self.client):
            payee.on(
                "incoming_prepare",
                lambda transfer, payee=payee: asyncio.ensure_future(self.answer(payee, transfer)),
            )

    async def run(self, payer: Plugin) -> None:
        tasks: set[asyncio.Task[None]] = set()
        while self.running:
            task = asyncio.ensure_future(self.pay(payer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(1 / RATE)
        if tasks:
            await asyncio.wait(tasks)


@contextlib.asynccontextmanager
async def plugins(store: StoreSpec) -> AsyncIterator[tuple[Plugin, Plugin]]:
    server = Plugin(
        listener={"port": 0, "host": "127.0.0.1"},
        incomingSecret=SECRET,
        prefix="example.outage.",
        info={"currencyCode": "USD", "currencyScale": 2},
        store=store.url,
        maxBalance="1000000000",
        requestTimeout=1.0,
    )
    await server.connect()
    client = Plugin(
        server=f"btp+ws://:{SECRET}@127.0.0.1:{server.listener_port}",
        store="memory:",
        maxBalance="1000000000",
        requestTimeout=1.0,
    )
    try:
        await client.connect()
        yield server, client
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
        await server.disconnect()


async def state_of(plugin: Plugin, tid: str) -> str | None:
    try:
        return str((await plugin.transfer_log.get(tid))["state"])
    except TransferNotFoundError:
        return None


async def leftovers(server: Plugin, client: Plugin) -> dict[str, Any]:
    """What keeps the two sides from having settled: prepared transfers, pending notices."""
    left: dict[str, Any] = {}
    for name, plugin in (("server", server), ("client", client)):
        log = plugin.transfer_log
        try:
            prepared = [r["transfer"]["id"] for r in await log.list_prepared()]
            notices = [r["transfer"]["id"] for r in await log.list_peer_notices()]
        except StoreUnavailableError:
            prepared = notices = ["(store unavailable)"]
        if prepared:
            left[f"{name} prepared"] = prepared
        if notices:
            left[f"{name} notices"] = notices
    return left


async def wait_settled(server: Plugin, client: Plugin) -> None:
    try:
        await wait_until(lambda: _empty(leftovers(server, client)), "both sides to settle", LIMIT)
    except AssertionError:
        raise AssertionError(f"not settled: {await leftovers(server, client)}") from None


async def _empty(pending: Any) -> bool:
    return not await pending


async def test_store_stopped_and_restarted_under_load(cluster: ThrowawayCluster) -> None:
    store = StoreSpec.postgres(cluster.url, f"outage_{uuid.uuid4().hex[:10]}")
    async with plugins(store) as (server, client):
        load = Load(server, client)
        load.listen()
        flows = [asyncio.ensure_future(load.run(payer)) for payer in (server, client)]
        try:
            await wait_until(
                lambda: min(load.fulfilled["server"], load.fulfilled["client"]) >= 20,
                "payments both ways before the outage",
                LIMIT,
            )
            await asyncio.to_thread(cluster.halt)
            load.outage = True
            with pytest.raises(StoreUnavailableError):
                await server.get_balance()
            await wait_until(
                lambda: (
                    load.outcomes["server send_transfer: StoreUnavailableError"] >= 3
                    and load.outcomes["client send_transfer: peer T00 StoreUnavailableError"] >= 3
                    and min(load.answered_in_outage["server"], load.answered_in_outage["client"])
                    >= 3
                ),
                "calls refused during the outage, locally and for the peer, and answers given",
                LIMIT,
            )
            load.outage = False
            await asyncio.to_thread(cluster.resume)
            before = Counter(load.fulfilled)
            await wait_until(
                lambda: all(load.fulfilled[side] >= before[side] + 20 for side in before),
                "payments both ways after the restart, with the same plugins",
                LIMIT,
            )
        finally:
            load.running = False
            await asyncio.gather(*flows)
        await wait_settled(server, client)

        unexpected = {
            what: count
            for what, count in load.outcomes.items()
            if what.rsplit(" ", 1)[-1] not in ALLOWED
        }
        assert not unexpected, f"errors other than {sorted(ALLOWED)}: {unexpected}"

        disagreements = []
        for tid in sorted(load.tried):
            server_state, client_state = await state_of(server, tid), await state_of(client, tid)
            if server_state is None or client_state is None:
                if (server_state or client_state) not in (None, "cancelled"):
                    disagreements.append((tid, server_state, client_state))
            elif server_state != client_state:
                disagreements.append((tid, server_state, client_state))
        assert not disagreements, f"(id, server, client) states differ: {disagreements}"
        server_balance = int(await server.get_balance())
        assert server_balance == -int(await client.get_balance())

    rows = await store.rows()
    totals = await store.totals()
    fulfilled_in = sum(r.amount for r in rows.values() if r.incoming and r.state == "fulfilled")
    fulfilled_out = sum(
        r.amount for r in rows.values() if not r.incoming and r.state == "fulfilled"
    )
    assert (totals.incoming_fulfilled, totals.outgoing_fulfilled) == (fulfilled_in, fulfilled_out)
    assert totals.balance == server_balance == fulfilled_in - fulfilled_out
    assert all(row.state != "prepared" for row in rows.values())
