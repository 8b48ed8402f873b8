"""A transfer whose expiry falls while connect() is still recovering the store is expired.

On restart, `connect()` arms the expiry of every stored prepared transfer, then cancels those
already overdue; a timer that fired before connect() was done used to be dropped, leaving its
transfer prepared until the next restart (found by the chaos run on PostgreSQL, where the
recovery takes longest). Here the overdue transfer's cancel is slowed down so that the other
transfer's expiry certainly falls inside connect().
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec.btp import Response
from ilp_paychan.ledger import TransferLog

from .conftest import RawPeer, Recorder, prepare_packet, server_options

SLOW_CANCEL = 2.0


async def test_an_expiry_that_fires_during_connect_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = server_options(store=f"sqlite:///{tmp_path}/plugin.db")
    first = Plugin(options)
    await first.connect()
    try:
        assert first.listener_port is not None
        options["listener"] = {"port": first.listener_port, "host": "127.0.0.1"}
        peer = await RawPeer.open(first.listener_port)
        overdue, _ = prepare_packet(amount=1, expires_in=1.0)
        later, _ = prepare_packet(amount=2, expires_in=3.0)
        for packet in (overdue, later):
            assert isinstance(await peer.request(packet), Response)
        await peer.close()
    finally:
        await first.disconnect()
    assert later.expires_at is not None
    # Restart once the first has expired and the second is due within the slow recovery.
    restart_at = later.expires_at.timestamp() - SLOW_CANCEL / 2
    await asyncio.sleep(max(0.0, restart_at - time.time()))

    real: Callable[..., Awaitable[Any]] = TransferLog.cancel

    async def slow_cancel(self: TransferLog, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(SLOW_CANCEL)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(TransferLog, "cancel", slow_cancel)
    second = Plugin(options)
    events = Recorder(second, "incoming_cancel")
    await second.connect()
    try:
        assert time.time() > later.expires_at.timestamp()  # it fell inside connect()
        await events.wait("incoming_cancel", 2)
        for packet in (overdue, later):
            record = await second.transfer_log.get(packet.transfer_id)
            assert record["state"] == "cancelled"
    finally:
        await second.disconnect()
