"""The trustline when a packet's task is cancelled: a `send_data` the caller gives up on (as
`asyncio.wait_for` does), and a data handler the listener cancels because the peer's socket
closed. What was held must not stay held for the life of the process."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from .conftest import Pair, eventually, fulfill, prepare
from .trustline_helpers import balance_of, trustline_of


def _sqlite(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


async def _never(data: bytes) -> bytes:
    await asyncio.Event().wait()
    return fulfill()


async def test_a_send_data_the_caller_cancels_is_released_at_its_expiry(
    pair: Pair, tmp_path: Path
) -> None:
    await pair.start(
        {"balance": {"maximum": "1000"}, "store": _sqlite(tmp_path, "server.db")},
        {"balance": {"maximum": "1000", "minimum": "-100"}, "store": _sqlite(tmp_path, "c.db")},
    )
    pair.server.register_data_handler(_never)
    client = trustline_of(pair.client)
    call = asyncio.create_task(pair.client.send_data(prepare(60, seconds=1.5)))
    await eventually(lambda: bool(client._sending), "the Prepare is in flight")
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await call
    assert (await balance_of(pair.client))["outgoingPrepared"] == "60"
    # The peer may hold it, so it stays held until its expiry, then it is released.
    for _ in range(600):
        if (await balance_of(pair.client))["outgoingPrepared"] == "0":
            break
        await asyncio.sleep(0.02)
    assert (await balance_of(pair.client))["outgoingPrepared"] == "0"
    assert not client._sending
    # and the room it held is there again
    pair.server.deregister_data_handler()

    async def fulfil(data: bytes) -> bytes:
        return fulfill()

    pair.server.register_data_handler(fulfil)
    reply = await pair.client.send_data(prepare(100, data=os.urandom(8)))
    assert reply[0] == 13


async def test_a_handler_cancelled_when_the_peer_left_releases_its_hold(
    pair: Pair, tmp_path: Path
) -> None:
    await pair.start({"balance": {"maximum": "100"}, "store": _sqlite(tmp_path, "server.db")})
    pair.server.register_data_handler(_never)
    server = trustline_of(pair.server)
    call = asyncio.create_task(pair.client.send_data(prepare(90, seconds=30)))
    await eventually(lambda: bool(server._handling), "the listener's handler is running")
    await pair.client.disconnect()
    reply = await call
    assert reply[0] == 14  # T01: the connection closed
    # The listener cancels the handler after its grace period; nothing may stay held.
    for _ in range(500):
        if not server._handling and (await balance_of(pair.server))["incomingPrepared"] == "0":
            break
        await asyncio.sleep(0.02)
    assert (await balance_of(pair.server))["incomingPrepared"] == "0"
    assert not server._handling
    # A new client can use the whole maximum again.
    client = pair.make(
        {"server": f"btp+ws://:v2_secret@127.0.0.1:{pair.server.listener_port}"},
    )
    await client.connect()
    pair.server.deregister_data_handler()

    async def fulfil(data: bytes) -> bytes:
        return fulfill()

    pair.server.register_data_handler(fulfil)
    assert (await client.send_data(prepare(100, data=os.urandom(8))))[0] == 13


async def test_a_send_data_cancelled_while_storing_its_hold_is_still_released(
    pair: Pair, tmp_path: Path
) -> None:
    await pair.start(
        {"balance": {"maximum": "1000"}, "store": _sqlite(tmp_path, "server.db")},
        {"balance": {"maximum": "1000", "minimum": "-100"}, "store": _sqlite(tmp_path, "c.db")},
    )
    client = trustline_of(pair.client)
    log = client.transfer_log
    stored = asyncio.Event()

    class Stalling:
        """The client's TransferLog, except that a prepare stalls after its commit."""

        def __getattr__(self, name: str) -> Any:
            return getattr(log, name)

        async def prepare(self, record: Any, is_incoming: bool) -> Any:
            outcome = await log.prepare(record, is_incoming)
            stored.set()
            await asyncio.Event().wait()  # the caller is cancelled here, after the commit
            return outcome

    client._log = Stalling()  # type: ignore[assignment]
    call = asyncio.create_task(pair.client.send_data(prepare(60, seconds=1.0)))
    await asyncio.wait_for(stored.wait(), 10)
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await call
    client._log = log
    assert (await balance_of(pair.client))["outgoingPrepared"] == "60"
    for _ in range(600):
        if (await balance_of(pair.client))["outgoingPrepared"] == "0":
            break
        await asyncio.sleep(0.02)
    assert (await balance_of(pair.client))["outgoingPrepared"] == "0"
