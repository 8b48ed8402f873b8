"""The plugin on uvloop, which the CLI and benches run on when it is installed.

The rest of the suite runs on asyncio's default loop; this module proves the same code paths
(WebSocket listener and client, the SQLite store's helper thread, the expiry scheduler) work on
uvloop too: transfers fulfilled, rejected and expired between two Python plugins.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.shell.event_loop import loop_factory, loop_name

from .conftest import WAIT, client_options, make_transfer, server_options

uvloop = pytest.importorskip("uvloop")


def run_on_uvloop(main: Any) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def exchange(store: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    assert type(loop).__module__.startswith("uvloop")
    server = Plugin(server_options(store=store, maxBalance="1000000"))
    await server.connect()
    assert server.listener_port is not None
    client = Plugin(client_options(server.listener_port))
    await client.connect()
    # An expired transfer ends as the client's own outgoing_cancel or, if the server's expiry
    # Reject arrives first, as an outgoing_reject: either way it ends once.
    seen: dict[str, list[str]] = {"fulfilled": [], "ended": []}
    all_done = asyncio.Event()
    fulfillments: dict[str, str] = {}
    expected = 23

    def counted(kind: str) -> Any:
        def record(transfer: dict[str, Any], *_: Any) -> None:
            seen[kind].append(transfer["id"])
            if sum(len(v) for v in seen.values()) == expected:
                all_done.set()

        return record

    settling: list[asyncio.Task[None]] = []

    def on_prepare(transfer: dict[str, Any]) -> None:
        tid = transfer["id"]
        if tid in fulfillments:
            settling.append(loop.create_task(server.fulfill_condition(tid, fulfillments[tid])))
        elif transfer["amount"] == "2":
            reason = {"message": "no thanks"}
            settling.append(loop.create_task(server.reject_incoming_transfer(tid, reason)))

    server.on("incoming_prepare", on_prepare)
    client.on("outgoing_fulfill", counted("fulfilled"))
    client.on("outgoing_reject", counted("ended"))
    client.on("outgoing_cancel", counted("ended"))
    try:
        to = client.get_peer_account()
        sends = []
        for _ in range(20):  # fulfilled, many in flight on one socket
            transfer, fulfillment = make_transfer(to, amount="1")
            fulfillments[transfer["id"]] = fulfillment
            sends.append(client.send_transfer(transfer))
        rejected, _ = make_transfer(to, amount="2")
        sends.append(client.send_transfer(rejected))
        for _ in range(2):  # neither fulfilled nor rejected: the scheduler expires them
            left, _ = make_transfer(to, amount="3", expires_in=0.5)
            sends.append(client.send_transfer(left))
        await asyncio.wait_for(asyncio.gather(*sends), WAIT)
        await asyncio.wait_for(all_done.wait(), WAIT)
        await asyncio.wait_for(asyncio.gather(*settling), WAIT)
        return {
            "seen": {k: len(v) for k, v in seen.items()},
            "server_balance": await server.get_balance(),
            "client_balance": await client.get_balance(),
        }
    finally:
        await client.disconnect()
        await server.disconnect()


@pytest.mark.parametrize("store", ["memory:", "sqlite"])
def test_transfers_on_uvloop(store: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/uv.db" if store == "sqlite" else store
    result = run_on_uvloop(exchange(url))
    assert result == {
        "seen": {"fulfilled": 20, "ended": 3},
        "server_balance": "20",
        "client_balance": "-20",
    }


def test_event_loop_helper_picks_uvloop_when_installed_unless_declined(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ILP_PAYCHAN_LOOP", raising=False)
    assert loop_factory() is uvloop.new_event_loop
    assert loop_name() == "uvloop"
    monkeypatch.setenv("ILP_PAYCHAN_LOOP", "uvloop")
    assert loop_factory() is uvloop.new_event_loop
    monkeypatch.setenv("ILP_PAYCHAN_LOOP", "asyncio")
    assert loop_factory() is None
    assert loop_name() == "asyncio"
