"""Before connect() and after disconnect(): a stateful plugin reads its own ledger (its durable
store opens on the first read, once however many reads arrive together, and disconnect() closes
it), and every call that needs the peer is refused with NotConnectedError naming the call."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.errors import InvalidFieldsError, NotConnectedError, TransferNotFoundError
from ilp_paychan.ledger import Backend, open_backend
from ilp_paychan.ledger import on_demand as on_demand_module
from ilp_paychan.ledger.on_demand import OnDemandStore

from .conftest import client_options, make_transfer, server_options


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'plugin.db'}"


async def seed_fulfilled(url: str, amount: str) -> str:
    """Store one fulfilled incoming transfer under the plugin's log key, as a past run would."""
    backend = await open_backend(url)
    try:
        log = backend.get_transfer_log()
        transfer_id = str(uuid.uuid4())
        await log.prepare({"id": transfer_id, "amount": amount}, True)
        await log.fulfill(transfer_id, "earlier-fulfillment")
    finally:
        await backend.close()
    return transfer_id


def store_of(plugin: Plugin) -> OnDemandStore:
    store = plugin.backend.store
    assert isinstance(store, OnDemandStore)
    return store


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every store the plugin's on-demand store opens, in order."""
    opened: list[object] = []

    async def counting_open(source: object) -> Backend:
        opened.append(source)
        return await open_backend(source)

    monkeypatch.setattr(on_demand_module, "open_backend", counting_open)
    return opened


async def test_a_stateful_plugin_reads_its_store_without_connecting(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    transfer_id = await seed_fulfilled(url, "25")
    plugin = Plugin(server_options(store=url))
    store = store_of(plugin)
    assert not store.is_open  # the constructor opens nothing
    assert await plugin.get_balance() == "25"
    assert store.is_open
    log = plugin.transfer_log
    assert (await log.get_maximum(), await log.get_minimum()) == ("1000", "-Infinity")
    assert await log.get_incoming_fulfilled() == "25"
    assert (await log.get(transfer_id))["state"] == "fulfilled"
    with pytest.raises(TransferNotFoundError):
        await log.get(str(uuid.uuid4()))
    assert (plugin.is_connected(), plugin.listener_port) == (False, None)
    await plugin.disconnect()
    assert not store.is_open


async def test_concurrent_first_reads_and_connect_open_the_store_once(
    tmp_path: Path, opens: list[object]
) -> None:
    plugin = Plugin(server_options(store=sqlite_url(tmp_path)))
    log = plugin.transfer_log
    results = await asyncio.gather(
        plugin.get_balance(),
        log.get_maximum(),
        log.get_incoming_fulfilled_and_prepared(),
        plugin.connect(),
        plugin.get_balance(),
    )
    assert results == ["0", "1000", "0", None, "0"]
    assert len(opens) == 1
    assert plugin.is_connected()
    await plugin.disconnect()
    assert not store_of(plugin).is_open


async def test_calls_that_need_the_peer_are_refused_before_connect(tmp_path: Path) -> None:
    plugin = Plugin(server_options(store=sqlite_url(tmp_path)))
    transfer, fulfillment = make_transfer(plugin.get_peer_account())
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "send_transfer": lambda: plugin.send_transfer(transfer),
        "fulfill_condition": lambda: plugin.fulfill_condition(transfer["id"], fulfillment),
        "reject_incoming_transfer": lambda: plugin.reject_incoming_transfer(transfer["id"], {}),
        "send_request": lambda: plugin.send_request({"to": plugin.get_peer_account()}),
        "get_limit": plugin.get_limit,
        "get_peer_balance": plugin.get_peer_balance,
    }
    for name, call in calls.items():
        with pytest.raises(NotConnectedError, match=f"Must be connected before {name} can be"):
            await call()
    assert not store_of(plugin).is_open  # refused before touching the store
    stateless = Plugin(client_options(1))
    with pytest.raises(NotConnectedError, match="without a store asks its peer for the balance"):
        await stateless.get_balance()


async def test_disconnect_closes_the_store_and_connect_works_again(tmp_path: Path) -> None:
    server = Plugin(server_options(store=sqlite_url(tmp_path)))
    store = store_of(server)
    assert await server.get_balance() == "0"
    await server.connect()
    assert server.listener_port is not None
    client = Plugin(client_options(server.listener_port))
    await client.connect()
    try:
        transfer, fulfillment = make_transfer(client.get_peer_account(), amount="10")
        await client.send_transfer(transfer)
        await server.fulfill_condition(transfer["id"], fulfillment)
    finally:
        await client.disconnect()
    await server.disconnect()
    assert not store.is_open
    assert await server.get_balance() == "10"  # a read after disconnect() opens it again
    await server.disconnect()
    assert not store.is_open
    await server.connect()
    try:
        assert server.is_connected()
        assert (await server.transfer_log.get(transfer["id"]))["state"] == "fulfilled"
        assert await server.get_balance() == "10"
    finally:
        await server.disconnect()
    assert not store.is_open


async def test_a_failed_connect_keeps_a_store_a_read_opened(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    plugin = Plugin(
        server_options(store=sqlite_url(tmp_path), listener={"port": port, "host": "127.0.0.1"})
    )
    store = store_of(plugin)
    try:
        assert await plugin.get_balance() == "0"
        with pytest.raises(InvalidFieldsError, match=r"listener\.port"):
            await plugin.connect()
        assert store.is_open
        assert await plugin.transfer_log.get_maximum() == "1000"
    finally:
        blocker.close()
    await plugin.disconnect()
    assert not store.is_open


async def test_a_connect_that_opened_the_store_closes_it_when_it_fails(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    plugin = Plugin(
        server_options(store=sqlite_url(tmp_path), listener={"port": port, "host": "127.0.0.1"})
    )
    try:
        with pytest.raises(InvalidFieldsError, match=r"listener\.port"):
            await plugin.connect()
    finally:
        blocker.close()
    assert not store_of(plugin).is_open
