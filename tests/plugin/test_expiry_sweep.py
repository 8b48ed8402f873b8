"""Prepared transfers no timer of this process holds are cancelled at their expiry all the same.

A process arms the expiries of what it prepares and of what it finds prepared when it connects.
Two things escape that: a batch of a killed process that PostgreSQL commits after the restarted
process has read the store, and a transfer prepared by another process on the same store and key
that then dies. The periodic sweep (`plugin/sweep.py`, option `expirySweep`) finds them with one
query and expires them the usual way. Here: a transfer written into the SQLite store behind the
plugin's back after it connected (the late commit), a PostgreSQL store shared with a process that
is SIGKILLed, both processes alive racing to cancel (one event and one notice each), and the
sweep's choice of ids on a memory log.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Container
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger import Backend, MemoryStore, TransferLog, open_backend
from ilp_paychan.plugin import sweep as sweep_module
from ilp_paychan.plugin.options import DEFAULT_EXPIRY_SWEEP
from ilp_paychan.plugin.sweep import ExpirySweep
from ilp_paychan.plugin.transfers import Entry, TransferBook
from ilp_paychan.plugin.validate import b64url, format_timestamp
from pgserver import postgres_url  # noqa: F401  (the session fixture of tests/pgserver.py)
from testkit.waiting import wait_until as poll_until

from .conftest import (
    PREFIX,
    RawPeer,
    client_options,
    make_transfer,
    prepare_packet,
    server_options,
)
from .test_agreement import ServerProcess

#: Bound on waits that include an expiry, the sweep's margin and a busy machine.
SLOW_WAIT = 60.0


async def wait_until(predicate: Callable[[], Any], what: str) -> None:
    await poll_until(predicate, what, SLOW_WAIT)


def record_events(plugin: Plugin, names: tuple[str, ...], into: list[tuple[str, str]]) -> None:
    """Append (event name, transfer id) to `into` for each of the plugin's `names` events."""
    for name in names:

        def record(transfer: dict[str, Any], *_: Any, name: str = name) -> None:
            into.append((name, transfer["id"]))

        plugin.on(name, record)


class LinkWatcher:
    """A plugin observer that appends each link change (True: up) to a list."""

    def __init__(self, changes: list[bool]) -> None:
        self.changes = changes

    def link_changed(self, up: bool) -> None:
        self.changes.append(up)


def notices_cleared(plugin: Plugin) -> Callable[[], Any]:
    """A predicate: the plugin's store holds no peer notice."""

    async def cleared() -> bool:
        return await plugin.transfer_log.list_peer_notices() == []

    return cleared


def incoming_record(plugin: Plugin, amount: int, expires_in: float) -> dict[str, Any]:
    """An incoming transfer as the plugin stores one it received."""
    preimage = os.urandom(32)
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
    return {
        "id": str(uuid.uuid4()),
        "amount": str(amount),
        "executionCondition": b64url(hashlib.sha256(preimage).digest()),
        "expiresAt": format_timestamp(expires_at),
        "to": plugin.get_account(),
        "from": plugin.get_peer_account(),
        "ledger": PREFIX,
    }


# ---------------------------------------------------------------------- the option


def test_the_sweep_interval_is_an_option_checked_like_the_other_times() -> None:
    plugin = Plugin(server_options(store="sqlite:///unused.db"))
    assert plugin.settings.expiry_sweep == DEFAULT_EXPIRY_SWEEP
    assert Plugin(server_options(), expiry_sweep=0.5).settings.expiry_sweep == 0.5
    for bad in (0, -1, "30", True, float("nan"), 1e9):
        with pytest.raises(InvalidFieldsError, match="expirySweep"):
            Plugin(server_options(expirySweep=bad))


# ---------------------------------------------------------------------- which ids a pass takes


async def test_a_pass_hands_on_expired_prepared_transfers_no_timer_holds() -> None:
    backend = Backend(MemoryStore())
    book = TransferBook(backend.get_transfer_log("", None, None))
    now = datetime.now(UTC)
    long_ago = now - timedelta(seconds=60)
    ids: dict[str, str] = {}
    for name, expires in (
        ("armed", long_ago),
        ("cached", long_ago),
        ("stored only", long_ago),
        ("within the margin", now - timedelta(seconds=sweep_module.SWEEP_MARGIN / 2)),
        ("not expired", now + timedelta(seconds=60)),
        ("fulfilled", long_ago),
    ):
        transfer, fulfillment = make_transfer("example.red.client")
        transfer["expiresAt"] = format_timestamp(expires)
        ids[name] = transfer["id"]
        await book.log.prepare(transfer, False)
        if name == "cached":
            book.remember(Entry.from_stored(await book.log.get(transfer["id"])))
        if name == "fulfilled":
            await book.log.fulfill(transfer["id"], fulfillment)
    handed: list[tuple[set[str], set[str]]] = []

    async def expire(transfer_ids: list[str], *, adopted: Container[str] = ()) -> None:
        handed.append((set(transfer_ids), {tid for tid in transfer_ids if tid in adopted}))

    sweep = ExpirySweep(lambda: book, {ids["armed"]}, expire)
    assert await sweep.sweep(now) == 2
    assert handed == [({ids["cached"], ids["stored only"]}, {ids["stored only"]})]
    assert ids["stored only"] in book.prepared  # so the expiry path finds it
    assert await ExpirySweep(lambda: None, set(), expire).sweep(now) == 0


async def test_a_taken_up_transfer_another_process_fulfilled_leaves_its_notice_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep listed it prepared; another process fulfilled it before the cancel: no event,
    and no delivery round here, since the process that fulfilled it delivers its Fulfill. One of
    this process's own (not taken up) still starts a round, as before."""
    url = f"sqlite:///{tmp_path}/server.db"
    plugin = Plugin(server_options(store=url))
    events: list[tuple[str, str]] = []
    record_events(plugin, ("incoming_cancel",), events)
    await plugin.connect()
    kicks: list[None] = []
    monkeypatch.setattr(plugin._notices, "kick", lambda: kicks.append(None))
    try:
        transfers = [incoming_record(plugin, amount=3, expires_in=60.0) for _ in range(2)]
        for transfer in transfers:
            await plugin.transfer_log.prepare(transfer, True)
            plugin._book.remember(Entry.from_stored(await plugin.transfer_log.get(transfer["id"])))
        other = await open_backend(url)
        try:
            elsewhere = other.get_transfer_log("", 1000, None)
            for transfer in transfers:
                await elsewhere.fulfill(transfer["id"], "x" * 43, notify_peer=True)
        finally:
            await other.close()
        taken_up, own = (t["id"] for t in transfers)
        await plugin._expire([taken_up], adopted={taken_up})
        assert kicks == []
        await plugin._expire([own])
        assert kicks == [None]
        assert events == []
        assert plugin.in_flight_count() == 0
    finally:
        await plugin.disconnect()


# ---------------------------------------------------------------------- a late commit (SQLite)


async def test_a_transfer_committed_after_connect_is_cancelled_and_the_peer_told(
    tmp_path: Path,
) -> None:
    """What a restarted process sees when its predecessor's last batch commits after it read
    the store: the transfer is in the store, prepared, and no timer of this process holds it."""
    url = f"sqlite:///{tmp_path}/server.db"
    server = Plugin(server_options(store=url, expirySweep=0.2))
    await server.connect()
    assert server.listener_port is not None
    client = Plugin(client_options(server.listener_port, store="memory:", maxBalance="1000"))
    server_events: list[tuple[str, str]] = []
    client_events: list[tuple[str, str]] = []
    record_events(server, ("incoming_cancel",), server_events)
    record_events(client, ("outgoing_cancel", "outgoing_reject"), client_events)
    await client.connect()
    try:
        transfer = incoming_record(server, amount=7, expires_in=1.0)
        other = await open_backend(url)  # the predecessor's session, committing late
        try:
            late = other.get_transfer_log("", 1000, None)
            await late.prepare(transfer, True)
        finally:
            await other.close()
        # The sender holds it prepared without a timer of its own, so only the Reject ends it.
        await client.transfer_log.prepare(transfer, False)
        assert server.in_flight_count() == 0

        await wait_until(lambda: server_events, "the server's incoming_cancel")
        await wait_until(lambda: client_events, "the Reject at the client")
        assert server_events == [("incoming_cancel", transfer["id"])]
        assert client_events == [("outgoing_reject", transfer["id"])]
        assert (await server.transfer_log.get(transfer["id"]))["state"] == "cancelled"
        assert (await client.transfer_log.get(transfer["id"]))["state"] == "cancelled"
        await wait_until(notices_cleared(server), "the Reject acknowledged")
        assert await server.get_balance() == "0"
        assert await server.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
        assert await client.transfer_log.get_outgoing_fulfilled_and_prepared() == "0"
    finally:
        await client.disconnect()
        await server.disconnect()


# ---------------------------------------------------------------------- a shared store (PostgreSQL)


@pytest.mark.postgres
async def test_a_survivor_cancels_what_a_killed_process_prepared(
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    key = "sweep" + uuid.uuid4().hex[:8]
    doomed = await ServerProcess.standby(
        server_options(store=postgres_url, storeKey=key), tmp_path / "doomed.log"
    )
    survivor = Plugin(server_options(store=postgres_url, storeKey=key, expirySweep=0.2))
    events: list[tuple[str, str]] = []
    record_events(survivor, ("incoming_cancel", "incoming_prepare"), events)
    peer_doomed: RawPeer | None = None
    peer: RawPeer | None = None
    try:
        doomed_port = await doomed.start()
        await survivor.connect()
        assert survivor.listener_port is not None
        peer = await RawPeer.open(survivor.listener_port)
        peer_doomed = await RawPeer.open(doomed_port)
        packet, _ = prepare_packet(amount=9, expires_in=1.5)
        assert isinstance(await peer_doomed.request(packet), btp.Response)
        await doomed.kill()  # never cancels it: nothing but the store knows of it now
        assert (await survivor.transfer_log.get(packet.transfer_id))["state"] == "prepared"

        await wait_until(lambda: events, "the survivor's incoming_cancel")
        assert events == [("incoming_cancel", packet.transfer_id)]
        reject = await peer.next_request()
        assert isinstance(reject, btp.Reject)
        assert reject.transfer_id == packet.transfer_id
        await peer.answer(reject)
        await wait_until(notices_cleared(survivor), "the Reject acknowledged")
        assert (await survivor.transfer_log.get(packet.transfer_id))["state"] == "cancelled"
        assert await survivor.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
    finally:
        for raw in (peer, peer_doomed):
            if raw is not None:
                await raw.close()
        await survivor.disconnect()
        await doomed.kill()


@pytest.mark.postgres
async def test_two_live_processes_racing_to_expire_report_each_transfer_once(
    postgres_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No margin, a sweep every 50 ms on both, and every cancel delayed by up to 0.3 s before
    it reaches the store: the owner's timer, its own sweep and the other's sweep meet at the
    expiry, and either process may win. Whoever wins, each transfer is cancelled once, fires one
    event in one process, and its Reject reaches the peer once; nothing is logged as a warning
    or error."""
    monkeypatch.setattr(sweep_module, "SWEEP_MARGIN", 0.0)
    delays = random.Random(7)
    real_cancel: Callable[..., Awaitable[bool]] = TransferLog.cancel

    async def slow_cancel(self: TransferLog, *args: Any, **kwargs: Any) -> bool:
        await asyncio.sleep(delays.uniform(0.0, 0.3))
        return await real_cancel(self, *args, **kwargs)

    monkeypatch.setattr(TransferLog, "cancel", slow_cancel)
    key = "race" + uuid.uuid4().hex[:8]
    owner = Plugin(server_options(store=postgres_url, storeKey=key, expirySweep=0.05))
    other = Plugin(server_options(store=postgres_url, storeKey=key, expirySweep=0.05))
    names = ("incoming_cancel", "outgoing_cancel", "outgoing_reject")
    events: list[tuple[str, str]] = []
    record_events(owner, names, events)
    record_events(other, names, events)
    rejects: list[str] = []
    peer: RawPeer | None = None
    answering: asyncio.Task[None] | None = None
    link: list[bool] = []
    owner.add_observer(LinkWatcher(link))

    async def answer_everything(raw: RawPeer) -> None:
        while True:
            request = await raw.requests.get()
            if isinstance(request, btp.Reject):
                rejects.append(request.transfer_id)
            await raw.answer(request)

    with caplog.at_level(logging.INFO, logger="ilp_paychan"):
        try:
            await owner.connect()
            await other.connect()
            assert owner.listener_port is not None
            peer = await RawPeer.open(owner.listener_port)
            answering = asyncio.ensure_future(answer_everything(peer))
            incoming: list[str] = []
            for i in range(8):
                packet, _ = prepare_packet(amount=1, expires_in=1.0 + 0.1 * i)
                assert isinstance(await peer.request(packet), btp.Response)
                incoming.append(packet.transfer_id)
            outgoing: list[str] = []
            for i in range(4):
                transfer, _ = make_transfer(owner.get_peer_account(), "1", 1.0 + 0.1 * i)
                await owner.send_transfer(transfer)
                outgoing.append(transfer["id"])

            async def all_settled() -> bool:
                return await owner.transfer_log.list_prepared() == []

            expected = len(incoming) + len(outgoing)
            await wait_until(all_settled, "every transfer cancelled")
            await wait_until(lambda: len(events) >= expected, "an event for every transfer")
            await wait_until(
                lambda: owner.in_flight_count() == 0 and other.in_flight_count() == 0,
                "both processes done expiring",
            )
            # A Reject the other process stored waits for a delivery round over the owner's
            # link: the peer coming back starts one.
            answering.cancel()
            await peer.close()
            await wait_until(lambda: link and not link[-1], "the owner's link down")
            peer = await RawPeer.open(owner.listener_port)
            answering = asyncio.ensure_future(answer_everything(peer))
            await wait_until(lambda: set(rejects) == set(incoming), "every Reject delivered")
            await wait_until(notices_cleared(owner), "every Reject acknowledged")
            noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
        finally:
            if answering is not None:
                answering.cancel()
            if peer is not None:
                await peer.close()
            await other.disconnect()
            await owner.disconnect()
    by_id = Counter(tid for _, tid in events)
    assert sorted(by_id) == sorted(incoming + outgoing)
    assert set(by_id.values()) == {1}, by_id
    assert {tid for name, tid in events if name == "incoming_cancel"} == set(incoming)
    assert {tid for name, tid in events if name == "outgoing_cancel"} == set(outgoing)
    assert sorted(rejects) == sorted(incoming)  # each Reject once
    assert noisy == [], [r.getMessage() for r in noisy]
