"""The trustline survives SIGKILL: a listener child process is killed under load and restarted
on the same SQLite store; in the end both sides agree on every packet and nothing stays held.
And a PostgreSQL store shared by two listener processes keeps one `balance.maximum`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ilp_paychan.codec import ilp4
from ilp_paychan.ledger import open_backend
from ilp_paychan.v2.plugin import BtpPlugin
from pgserver import postgres_url  # noqa: F401  (session fixture: a real PostgreSQL database)

from .conftest import LOOPBACK, SECRET, eventually, prepare
from .trustline_helpers import balance_of, trustline_of

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent


def free_port() -> int:
    """A port nobody listens on now (the child binds it, and binds it again after a restart)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class Child:
    """The worker process; always killed at the end."""

    def __init__(self, port: int, store: str, maximum: str) -> None:
        self.args = [sys.executable, "-m", "v2.trustline_worker", str(port), store, maximum]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            self.args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == b"ready", f"the worker did not start: {line!r}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    try:
        yield made
    finally:
        for child in made:
            child.kill()


async def store_totals(url: str) -> tuple[int, int, int]:
    """(balance, incoming held, outgoing held) of the default log of a store, read directly."""
    backend = await open_backend(url)
    try:
        log = backend.get_transfer_log("")
        incoming = int(await log.get_incoming_fulfilled())
        outgoing = int(await log.get_outgoing_fulfilled())
        ifap = int(await log.get_incoming_fulfilled_and_prepared())
        ofap = int(await log.get_outgoing_fulfilled_and_prepared())
    finally:
        await backend.close()
    return incoming - outgoing, ifap - incoming, ofap - outgoing


async def test_sigkill_under_load_then_both_sides_agree(
    tmp_path: Path, children: list[Child]
) -> None:
    port = free_port()
    server_store = f"sqlite:///{tmp_path / 'server.db'}"
    child = Child(port, server_store, "1000000")
    children.append(child)
    child.start()
    client = BtpPlugin(
        {
            "server": f"btp+ws://:{SECRET}@{LOOPBACK}:{port}",
            "reconnectInterval": 100,
            "responseTimeout": 1500,
            "store": f"sqlite:///{tmp_path / 'client.db'}",
        }
    )
    await client.connect()
    fulfilled = 0
    sent = 0
    paid = 0

    async def sender(worker: int) -> None:
        nonlocal fulfilled, sent, paid
        for index in range(40):
            sent += 1
            amount = 1 + (worker * 40 + index) % 7
            reply = await client.send_data(prepare(amount, seconds=3.0, data=os.urandom(8)))
            if reply[0] == ilp4.TYPE_FULFILL:
                fulfilled += 1
                paid += amount
            else:
                await asyncio.sleep(0.02)

    try:
        load = asyncio.gather(*(sender(w) for w in range(20)))
        await eventually(lambda: fulfilled >= 150, "150 packets fulfilled before the kill", 60)
        child.kill()
        await asyncio.sleep(0.3)
        child.start()
        await asyncio.wait_for(load, 60)
        assert sent == 800
        trustline = trustline_of(client)
        for _ in range(300):
            state = await balance_of(client)
            if state["outgoingPrepared"] == "0" and not trustline._unresolved:
                break
            await asyncio.sleep(0.05)
        state = await balance_of(client)
        assert state["outgoingPrepared"] == "0", state
        for _ in range(300):
            balance, held_in, _ = await store_totals(server_store)
            if held_in == 0:
                break
            await asyncio.sleep(0.05)
        for _ in range(100):  # the child answers the last questions within a maintenance pass
            if not trustline._tell:
                break
            await asyncio.sleep(0.05)
        child.kill()
        balance, held_in, held_out = await store_totals(server_store)
        assert (held_in, held_out) == (0, 0)
        assert int(state["balance"]) == -balance, (state, balance)
        assert balance >= paid, "every Fulfill the caller saw is in the balance"
        print(f"fulfilled {fulfilled} of {sent}; balance {balance}, {balance - paid} resolved late")
    finally:
        await client.disconnect()


@pytest.fixture
def pg_store(request: pytest.FixtureRequest) -> str:
    """The session's PostgreSQL database (its fixture must start outside the event loop)."""
    url: str = request.getfixturevalue("postgres_url")
    schema = f"trustline_{uuid.uuid4().hex[:12]}"  # a fresh balance, whatever ran before
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


async def test_postgresql_store_shared_by_two_processes_keeps_the_maximum(
    pg_store: str, children: list[Child]
) -> None:
    store = pg_store
    ports = [free_port(), free_port()]
    for port in ports:
        child = Child(port, store, "1000")
        children.append(child)
        child.start()
    clients = [
        BtpPlugin({"server": f"btp+ws://:{SECRET}@{LOOPBACK}:{port}", "reconnectInterval": 100})
        for port in ports
    ]
    codes: list[str] = []
    try:
        for client in clients:
            await client.connect()

        async def send(client: BtpPlugin) -> None:
            for _ in range(15):
                reply = ilp4.decode_reply(
                    await client.send_data(prepare(50, seconds=10.0, data=os.urandom(8)))
                )
                codes.append("fulfill" if isinstance(reply, ilp4.IlpFulfill) else reply.code)

        await asyncio.gather(*(send(c) for c in clients for _ in range(2)))
    finally:
        for client in clients:
            await client.disconnect()
    assert codes.count("fulfill") == 20, codes
    assert codes.count("T04") == 40, codes
    assert await store_totals(store) == (1000, 0, 0)
