"""1,000 transfers in a row against the JS reference, final balances equal.

Transfers go both ways at once (even ones client → server, odd ones server → client, amounts
varying), 50 in flight per sender; each receiver fulfils every prepare as it arrives. At the end
each side's own balance, its view of the peer's balance and the event counts must agree exactly.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import pytest

from .conftest import Pair, SideFactory
from .sides import JsSide, PySide, Side, SideError, make_transfer, new_fulfillment

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

TRANSFERS = 1000
IN_FLIGHT = 50
BIG = "1000000000"


async def _py_js(f: SideFactory, store: str, stateful_client: bool) -> Pair:
    server = await f.py_server(store, max_balance=BIG, min_balance=None)
    client = await f.js_client(server.port, stateful=stateful_client)
    return Pair(server, client, f"py-{store} server + js client")


async def _js_py(f: SideFactory, store: str | None) -> Pair:
    server = await f.js_server(max_balance=BIG, min_balance=None)
    client = await f.py_client(server.port, store=store)
    return Pair(server, client, "js server + py client")


MAKERS: dict[str, Callable[[SideFactory], Awaitable[Pair]]] = {
    "pyserver-memory+jsclient": lambda f: _py_js(f, "memory", False),
    "pyserver-sqlite+jsclient": lambda f: _py_js(f, "sqlite", False),
    "jsserver+pyclient": lambda f: _js_py(f, None),
    "pyserver-sqlite+jsclient-stateful": lambda f: _py_js(f, "sqlite", True),
    "jsserver+pyclient-sqlite": lambda f: _js_py(f, "sqlite"),
    "pyserver-postgres+jsclient": lambda f: _py_js(f, "postgres", False),
}
if os.environ.get("INTEROP_SELFTEST"):
    MAKERS = {"jsserver+jsclient": lambda f: _js_js(f)}


async def _js_js(f: SideFactory) -> Pair:
    server = await f.js_server(max_balance=BIG, min_balance=None)
    return Pair(server, await f.js_client(server.port), "js server + js client")


async def _count(side: Side, name: str, wanted: int, wait: float = 60.0) -> None:
    try:
        await side.until(lambda: len(side.events_named(name)) >= wanted, wait=wait)
    except TimeoutError:
        raise AssertionError(
            f"{side.kind} {side.role}: {len(side.events_named(name))} {name} of {wanted}"
        ) from None


async def _quiet(side: Side) -> None:
    """Keep the JS driver from printing events nobody reads (it still counts what we need)."""
    if isinstance(side, JsSide):
        await side.peer.call("events", ["outgoing_fulfill", "incoming_fulfill", "incoming_prepare"])


@pytest.mark.parametrize("pairing", list(MAKERS))
async def test_thousand_transfers_balances_agree(pairing: str, sides: SideFactory) -> None:
    pair = await MAKERS[pairing](sides)
    server, client = pair.sides()
    to_server_f, to_server_c = new_fulfillment()
    to_client_f, to_client_c = new_fulfillment()
    await server.auto_fulfill([to_server_f])
    await client.auto_fulfill([to_client_f])
    for side in (server, client):
        await _quiet(side)

    plan: list[tuple[Side, dict[str, str]]] = []
    expected = 0
    for i in range(TRANSFERS):
        if i % 2 == 0:
            amount = i % 7 + 1
            plan.append((client, make_transfer(client.peer_account, str(amount), to_server_c)))
            expected += amount
        else:
            amount = i % 5 + 1
            plan.append((server, make_transfer(server.peer_account, str(amount), to_client_c)))
            expected -= amount

    limits = {id(server): asyncio.Semaphore(IN_FLIGHT), id(client): asyncio.Semaphore(IN_FLIGHT)}
    failures: list[BaseException] = []

    async def send(sender: Side, transfer: dict[str, str]) -> None:
        async with limits[id(sender)]:
            try:
                await sender.send_transfer(transfer)
            except Exception as exc:
                failures.append(exc)

    await asyncio.gather(*(send(s, t) for s, t in plan))
    assert not failures, failures[:5]

    half = TRANSFERS // 2
    await _count(client, "outgoing_fulfill", half)
    await _count(server, "outgoing_fulfill", half)
    await _count(server, "incoming_fulfill", half)
    await _count(client, "incoming_fulfill", half)

    for side in (server, client):
        if isinstance(side, PySide):
            assert not side.auto_failures, side.auto_failures[:5]
        else:
            assert isinstance(side, JsSide)
            stats = await side.peer.call("autoFulfillStats")
            assert stats["failed"] == 0, stats

    assert int(await server.balance()) == expected
    assert int(await client.balance()) == -expected
    assert int(await server.peer_balance()) == expected
    assert int(await client.peer_balance()) == -expected
    assert len(server.events_named("incoming_prepare")) == half
    assert len(client.events_named("incoming_prepare")) == half


@pytest.mark.parametrize("server_kind", ["py-memory", "py-sqlite", "py-postgres", "js"])
async def test_concurrent_payments_stop_exactly_at_max_balance(
    sides: SideFactory, server_kind: str
) -> None:
    """400 payments of 1 race for a maxBalance of 200: exactly 200 land, the rest are refused
    with the reference's error, and both sides agree on the result."""
    limit = 200
    if server_kind == "js":
        server: Side = await sides.js_server(max_balance=str(limit), min_balance=None)
        client: Side = await sides.py_client(server.port)
    else:
        store = server_kind.removeprefix("py-")
        server = await sides.py_server(store, max_balance=str(limit), min_balance=None)
        client = await sides.js_client(server.port)
    fulfillment, condition = new_fulfillment()
    await server.auto_fulfill([fulfillment])
    await _quiet(server)
    await _quiet(client)
    slots = asyncio.Semaphore(IN_FLIGHT)
    refusals: list[SideError] = []

    async def pay() -> None:
        async with slots:
            try:
                await client.send_transfer(make_transfer(client.peer_account, "1", condition))
            except SideError as exc:
                refusals.append(exc)

    await asyncio.gather(*(pay() for _ in range(2 * limit)))
    await _count(client, "outgoing_fulfill", limit)
    assert len(refusals) == limit
    assert {(e.code, e.name) for e in refusals} == {("F00", "NotAcceptedError")}
    assert all(
        e.message.startswith("balanceIncomingFulfilledAndPrepared exceeds") for e in refusals
    )
    assert await server.balance() == str(limit)
    assert int(await client.balance()) == -limit
    assert int(await server.peer_balance()) == limit
    assert len(server.events_named("incoming_fulfill")) == limit
