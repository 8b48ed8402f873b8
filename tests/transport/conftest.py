"""Fixtures for the transport tests: loopback listeners, clients, raw sockets, a TLS certificate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from ilp_paychan.codec.btp import ContentType, Message, ProtocolData
from ilp_paychan.transport import BtpClient, BtpListener
from testkit.lifetimes import ending_each
from testkit.tls import tls_files_fixture

SECRET = "shared_secret"
LOOPBACK = "127.0.0.1"


def auth_message(request_id: int, token: str = SECRET, username: str = "") -> Message:
    return Message(
        request_id,
        (
            ProtocolData("auth", ContentType.OCTET_STREAM, b""),
            ProtocolData("auth_username", ContentType.TEXT_PLAIN_UTF8, username.encode()),
            ProtocolData("auth_token", ContentType.TEXT_PLAIN_UTF8, token.encode()),
        ),
    )


async def eventually(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Wait (bounded) until `condition()` holds; a correctness check, not a speed check."""
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
async def listener() -> AsyncIterator[BtpListener]:
    server = BtpListener(0, LOOPBACK, incoming_secret=SECRET, auth_timeout=2.0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class ClientFactory:
    """Builds clients for a test and stops them all at its end."""

    def __init__(self) -> None:
        self.made: list[BtpClient] = []

    def __call__(
        self,
        port: int,
        token: str = SECRET,
        username: str = "",
        *,
        scheme: str = "btp+ws",
        ca: str | None = None,
        request_timeout: float = 5.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
    ) -> BtpClient:
        client = BtpClient(
            f"{scheme}://{username}:{token}@{LOOPBACK}:{port}",
            ca=ca,
            request_timeout=request_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            backoff_initial=0.02,
            backoff_max=0.2,
        )
        self.made.append(client)
        return client


@pytest.fixture
async def clients() -> AsyncIterator[ClientFactory]:
    factory = ClientFactory()
    async with ending_each(factory.made, lambda client: client.stop()):
        yield factory


tls_files = tls_files_fixture("tls", "ilp-paychan test")
