"""Fixtures for the v2 tests: BtpPlugin pairs on loopback, ILPv4 packets, a bounded wait."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ilp_paychan.codec import ilp4
from ilp_paychan.v2.plugin import BtpPlugin
from testkit.lifetimes import ending_each
from testkit.tls import tls_files_fixture

SECRET = "v2_secret"
LOOPBACK = "127.0.0.1"
FULFILLMENT = bytes(range(32))
CONDITION = hashlib.sha256(FULFILLMENT).digest()


def prepare(
    amount: int = 10,
    *,
    seconds: float = 30.0,
    condition: bytes = CONDITION,
    destination: str = "test.peer.bob",
    data: bytes = b"hello",
) -> bytes:
    """An encoded ILPv4 Prepare expiring `seconds` from now."""
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    return ilp4.encode_prepare(ilp4.IlpPrepare(amount, expires, condition, destination, data))


def fulfill(data: bytes = b"ok") -> bytes:
    """The Fulfill of `prepare()`'s default condition."""
    return ilp4.encode_fulfill(ilp4.IlpFulfill(FULFILLMENT, data))


async def eventually(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Wait (bounded) until `condition()` holds; a correctness check, not a speed check."""
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


class Pair:
    """A listener and a client BtpPlugin, connected; both are disconnected at the end."""

    def __init__(self) -> None:
        self.made: list[BtpPlugin] = []
        self.server: BtpPlugin
        self.client: BtpPlugin

    async def start(
        self,
        server_options: dict[str, Any] | None = None,
        client_options: dict[str, Any] | None = None,
        *,
        username: str = "",
        token: str = SECRET,
        scheme: str = "btp+ws",
    ) -> Pair:
        listener: dict[str, Any] = {"port": 0, "host": LOOPBACK, "secret": SECRET}
        extra = dict(server_options or {})
        listener.update(extra.pop("listener", {}))
        self.server = self.make({"listener": listener, **extra})
        await self.server.connect()
        port = self.server.listener_port
        self.client = self.make(
            {
                "server": f"{scheme}://{username}:{token}@{LOOPBACK}:{port}",
                "reconnectInterval": 100,
                **(client_options or {}),
            }
        )
        await self.client.connect()
        await eventually(self.server.is_connected, "the listener sees its client")
        return self

    def make(self, options: dict[str, Any], **kwargs: Any) -> BtpPlugin:
        plugin = BtpPlugin(options, **kwargs)
        self.made.append(plugin)
        return plugin


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    made = Pair()
    async with ending_each(made.made, lambda plugin: plugin.disconnect()):
        yield made


tls_files = tls_files_fixture("v2tls", "ilp-paychan v2 test")
