"""Fixtures of the plugin tests: real plugin pairs on loopback WebSockets, and small helpers.

Every plugin listens on 127.0.0.1 port 0; every wait is bounded (WAIT seconds) so a broken
behaviour fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import os
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.plugin.events import EVENT_NAMES
from testkit.trustline import (  # noqa: F401  (the plugin tests import these from here)
    INFO,
    PREFIX,
    SECRET,
    client_options,
    server_options,
)
from testkit.waiting import wait_until as poll_until

#: tests/vectors (as tests/conftest.py's VECTORS; imported from here because the bare module
#: name `conftest` is ambiguous when several test folders are collected together).
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
WAIT = 10.0


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def preimage_pair(seed: bytes | None = None) -> tuple[str, str]:
    """(fulfillment, condition) as base64url strings."""
    preimage = seed if seed is not None else os.urandom(32)
    return b64url(preimage), b64url(hashlib.sha256(preimage).digest())


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def make_transfer(
    to: str, amount: str = "10", expires_in: float = 30.0, **extra: Any
) -> tuple[dict[str, Any], str]:
    """(an outgoing LPI transfer, its fulfillment)."""
    fulfillment, condition = preimage_pair()
    transfer = {
        "id": str(uuid.uuid4()),
        "to": to,
        "amount": amount,
        "executionCondition": condition,
        "expiresAt": iso_in(expires_in),
    }
    transfer.update(extra)
    return transfer, fulfillment


class Recorder:
    """Records a plugin's events; `wait(name, count)` waits (bounded) until enough arrived."""

    def __init__(self, plugin: Plugin, *names: str) -> None:
        self.events: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self._changed = asyncio.Event()
        for name in names:
            plugin.on(name, self._listener(name))

    def _listener(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.events[name].append(args)
            self._changed.set()

        return record

    def __getitem__(self, name: str) -> list[tuple[Any, ...]]:
        return self.events[name]

    async def wait(self, name: str, count: int = 1) -> list[tuple[Any, ...]]:
        async with asyncio.timeout(WAIT):
            while len(self.events[name]) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events[name]


async def wait_until(predicate: Callable[[], Any], what: str = "condition") -> None:
    """Poll an (a)sync predicate until true, bounded by WAIT."""
    await poll_until(predicate, what, WAIT)


class Pair:
    def __init__(self, server: Plugin, client: Plugin) -> None:
        self.server = server
        self.client = client
        self.server_events = Recorder(server, *EVENT_NAMES)
        self.client_events = Recorder(client, *EVENT_NAMES)

    async def close(self) -> None:
        await self.client.disconnect()
        await self.server.disconnect()


async def start_pair(
    server_overrides: dict[str, Any] | None = None,
    client_overrides: dict[str, Any] | None = None,
) -> Pair:
    server = Plugin(server_options(**(server_overrides or {})))
    await server.connect()
    assert server.listener_port is not None
    client = Plugin(client_options(server.listener_port, **(client_overrides or {})))
    pair = Pair(server, client)
    await client.connect()
    return pair


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    """A stateful listener (memory store) and a stateless client, connected."""
    p = await start_pair()
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def stateful_pair() -> AsyncIterator[Pair]:
    """Both plugins stateful (memory stores); the client may owe up to 1000 too."""
    p = await start_pair(client_overrides={"store": "memory:", "maxBalance": "1000"})
    try:
        yield p
    finally:
        await p.close()


# ---------------------------------------------------------------------- a raw BTP peer


from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

from ilp_paychan.codec import btp  # noqa: E402
from ilp_paychan.codec.btp import Message, Packet, ProtocolData  # noqa: E402

AUTH = (
    ProtocolData("auth", 0, b""),
    ProtocolData("auth_username", 1, b""),
    ProtocolData("auth_token", 1, SECRET.encode()),
)


class RawPeer:
    """A hand-driven BTP peer over a real WebSocket: frames in and out, nothing automatic."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.requests: asyncio.Queue[Packet] = asyncio.Queue()
        self._answers: dict[int, asyncio.Future[Packet]] = {}
        self._next_id = 1000
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, port: int, *, auth: tuple[ProtocolData, ...] | None = AUTH) -> RawPeer:
        ws = await connect(f"ws://127.0.0.1:{port}", compression=None)
        peer = cls(ws)
        if auth is not None:
            answer = await peer.request(Message(0, auth))
            assert isinstance(answer, btp.Response), answer
        return peer

    async def _read(self) -> None:
        async for frame in self.ws:
            if isinstance(frame, str):
                continue
            packet = btp.decode(frame)
            future = self._answers.pop(packet.request_id, None)
            if isinstance(packet, btp.Response | btp.Error) and future is not None:
                future.set_result(packet)
            else:
                self.requests.put_nowait(packet)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def send(self, packet: Packet) -> asyncio.Future[Packet]:
        """Send a request; the returned future gets the answer."""
        request_id = packet.request_id or self.new_id()
        packet = dataclasses.replace(packet, request_id=request_id)
        future: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = future
        await self.ws.send(btp.encode(packet))
        return future

    async def request(self, packet: Packet) -> Packet:
        future = await self.send(packet)
        async with asyncio.timeout(WAIT):
            return await future

    async def request_frame(self, frame: bytes) -> Packet:
        """Send hand-made request bytes (their request id is replaced) and wait for the answer."""
        request_id = self.new_id()
        future: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = future
        await self.ws.send(frame[:1] + request_id.to_bytes(4, "big") + frame[5:])
        async with asyncio.timeout(WAIT):
            return await future

    async def send_frame(self, frame: bytes | str) -> None:
        await self.ws.send(frame)

    async def next_request(self) -> Packet:
        async with asyncio.timeout(WAIT):
            return await self.requests.get()

    async def answer(self, request: Packet, protocol_data: tuple[ProtocolData, ...] = ()) -> None:
        await self.ws.send(btp.encode(btp.Response(request.request_id, protocol_data)))

    async def still_usable(self) -> None:
        """The connection still answers: a balance query round-trips."""
        answer = await self.request(Message(0, (ProtocolData("balance", 0, b"\x00"),)))
        assert isinstance(answer, btp.Response), answer

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


@pytest.fixture
async def listener() -> AsyncIterator[Plugin]:
    """A stateful listener (memory store, maxBalance 1000) whose peer tests drive by hand."""
    plugin = Plugin(server_options())
    await plugin.connect()
    try:
        yield plugin
    finally:
        await plugin.disconnect()


@pytest.fixture
async def raw(listener: Plugin) -> AsyncIterator[RawPeer]:
    assert listener.listener_port is not None
    peer = await RawPeer.open(listener.listener_port)
    try:
        yield peer
    finally:
        await peer.close()


def prepare_packet(
    amount: int = 10,
    expires_in: float = 30.0,
    condition: bytes | None = None,
    protocol_data: tuple[ProtocolData, ...] = (),
    transfer_id: str | None = None,
) -> tuple[btp.Prepare, bytes]:
    """(a Prepare from the raw peer, its preimage)."""
    preimage = os.urandom(32)
    return (
        btp.Prepare(
            0,
            transfer_id or str(uuid.uuid4()),
            amount,
            condition or hashlib.sha256(preimage).digest(),
            datetime.now(UTC) + timedelta(seconds=expires_in),
            protocol_data,
        ),
        preimage,
    )
