"""Both sides agree on every transfer, whatever the timing of crashes and expiries.

The deterministic reproduction of "receiver fulfilled, sender cancelled": the sender (a listener
on an SQLite file, in a child process) sends 100 expiring soon; the receiver (a client on its own
SQLite file, here) gets the Prepare; the sender is SIGKILLed; the receiver fulfils; the sender
comes back on its store. Whether the Fulfill reached the sender before the expiry decides, and
both must end in the same state with mirrored balances. Real loopback sockets throughout.

Also, in one process: `fulfill_condition` reports a refusal as a revert, and a sender answers a
late Fulfill with F05 and then cancels the transfer even if its expiry timer has not fired.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest

from ilp_paychan import FulfillmentPendingError, Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.condition import b64url_decode
from ilp_paychan.errors import AlreadyRolledBackError
from testkit.waiting import wait_until as poll_until

from .conftest import (
    PREFIX,
    WAIT,
    RawPeer,
    Recorder,
    b64url,
    client_options,
    make_transfer,
    prepare_packet,
    server_options,
)

SERVER = Path(__file__).with_name("agreement_server.py")
#: Bound on waits that include a process start or a reconnect (the machine may be busy).
SLOW_WAIT = 60.0
# (The receiver here has a store, which makes it "stateful": it names itself PREFIX + "server",
# as the reference does, while the sender calls it PREFIX + "client". Accounts are names only.)


class ServerProcess:
    """The sender in a child process (see agreement_server.py), killed with SIGKILL."""

    def __init__(self, process: asyncio.subprocess.Process, log: IO[bytes]) -> None:
        self.process = process
        self._log = log
        self.events: list[tuple[str, str]] = []
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def standby(cls, options: dict[str, Any], log_path: Path) -> ServerProcess:
        """A process with everything imported, waiting for `start()`."""
        log = log_path.open("ab")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SERVER),
            json.dumps(options),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        server = cls(process, log)
        assert await server._next() == {"standby": True}
        return server

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            if "event" in message:
                self.events.append((message["event"], message["id"]))
            else:
                self._replies.put_nowait(message)

    async def _next(self) -> dict[str, Any]:
        async with asyncio.timeout(SLOW_WAIT):
            return await self._replies.get()

    async def _send_line(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def start(self) -> int:
        """Connect (open the store, bind the port); the bound port."""
        await self._send_line("start")
        message = await self._next()
        port = message.get("ready")
        assert isinstance(port, int), message
        return port

    async def call(self, op: str, **fields: Any) -> Any:
        await self._send_line(json.dumps({"op": op, **fields}))
        message = await self._next()
        assert "reply" in message, message
        return message["reply"]

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        async with asyncio.timeout(SLOW_WAIT):
            await self.process.wait()
        self._reader.cancel()
        self._log.close()


class Scenario:
    """A sender process, its replacement on standby, and the receiver plugin here."""

    def __init__(self, tmp_path: Path, request_timeout: float) -> None:
        self.tmp_path = tmp_path
        self.request_timeout = request_timeout
        self.servers: list[ServerProcess] = []
        self.port = 0
        self.client: Plugin | None = None
        self.events: Recorder | None = None

    def server_options(self) -> dict[str, Any]:
        return server_options(
            store=f"sqlite:///{self.tmp_path}/server.db",
            listener={"port": self.port, "host": "127.0.0.1"},
        )

    async def start(self) -> tuple[ServerProcess, Plugin, Recorder]:
        first = await ServerProcess.standby(self.server_options(), self.tmp_path / "server.log")
        self.servers.append(first)
        self.port = await first.start()
        client = Plugin(
            client_options(
                self.port,
                store=f"sqlite:///{self.tmp_path}/client.db",
                maxBalance="1000",
                requestTimeout=self.request_timeout,
            )
        )
        self.client = client
        self.events = Recorder(
            client,
            "incoming_prepare",
            "incoming_fulfill",
            "incoming_fulfill_confirmed",
            "incoming_fulfill_reverted",
        )
        await client.connect()
        return first, client, self.events

    async def replacement(self) -> ServerProcess:
        """The next sender process over the same store and port, on standby."""
        server = await ServerProcess.standby(self.server_options(), self.tmp_path / "server.log")
        self.servers.append(server)
        return server

    async def close(self) -> None:
        if self.client is not None:
            await self.client.disconnect()
        for server in self.servers:
            await server.kill()


@pytest.fixture
async def scenario(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Scenario]:
    made = Scenario(tmp_path, request.param)
    try:
        yield made
    finally:
        await made.close()


async def _sleep_until(instant: float) -> None:
    """Let wall-clock time pass `instant` (a schedule, not an assertion)."""
    await asyncio.sleep(max(instant - time.time(), 0.0))
    await poll_until(lambda: time.time() > instant, "the clock", SLOW_WAIT)


@pytest.mark.parametrize("scenario", [1.0], indirect=True)
async def test_a_fulfilment_the_sender_never_got_before_its_expiry_is_reverted(
    scenario: Scenario,
) -> None:
    """The issue's reproduction: it used to end receiver fulfilled (100), sender cancelled."""
    server, client, events = await scenario.start()
    transfer, fulfillment = make_transfer(PREFIX + "client", "100", expires_in=2.0)
    expires_at = datetime.fromisoformat(transfer["expiresAt"]).timestamp()
    assert await server.call("send", transfer=transfer) is True
    await events.wait("incoming_prepare")
    standby = await scenario.replacement()
    await server.kill()

    # No sender: the fulfilment is stored, but "paid" is not what the caller hears.
    with pytest.raises(FulfillmentPendingError):
        await client.fulfill_condition(transfer["id"], fulfillment)
    assert events["incoming_fulfill_confirmed"] == []

    await _sleep_until(expires_at + 0.5)
    await standby.start()  # cancels the transfer that expired while it was down

    await poll_until(lambda: events["incoming_fulfill_reverted"], "the revert", SLOW_WAIT)
    ((record, reason),) = events["incoming_fulfill_reverted"]
    assert record["id"] == transfer["id"]
    assert reason["code"] == "R00"
    assert reason["additional_info"]["code"] == "F05"
    assert events["incoming_fulfill_confirmed"] == []
    assert (await client.transfer_log.get(transfer["id"]))["state"] == "cancelled"
    assert await client.transfer_log.list_peer_notices() == []
    assert await client.get_balance() == "0"
    assert await standby.call("get", id=transfer["id"]) == "cancelled"
    assert await standby.call("balance") == "0"
    assert ("outgoing_cancel", transfer["id"]) in standby.events
    assert ("outgoing_fulfill", transfer["id"]) not in standby.events


@pytest.mark.parametrize("scenario", [SLOW_WAIT], indirect=True)
async def test_a_fulfilment_that_reaches_the_restarted_sender_in_time_is_paid(
    scenario: Scenario,
) -> None:
    """The sender is back before the expiry: the same Fulfill is accepted, and fulfill_condition
    returns only then. (The expiry is far away: the test ends as soon as both agree.)"""
    server, client, events = await scenario.start()
    transfer, fulfillment = make_transfer(PREFIX + "client", "100", expires_in=120.0)
    assert await server.call("send", transfer=transfer) is True
    await events.wait("incoming_prepare")
    standby = await scenario.replacement()
    await server.kill()

    fulfilling = asyncio.ensure_future(client.fulfill_condition(transfer["id"], fulfillment))
    await events.wait("incoming_fulfill")
    assert not fulfilling.done()  # committed locally, not acknowledged: still waiting
    await standby.start()

    async with asyncio.timeout(SLOW_WAIT):
        await fulfilling
    ((record, confirmed),) = await events.wait("incoming_fulfill_confirmed")
    assert (record["id"], confirmed) == (transfer["id"], fulfillment)
    assert events["incoming_fulfill_reverted"] == []
    assert (await client.transfer_log.get(transfer["id"]))["state"] == "fulfilled"
    assert await client.transfer_log.list_peer_notices() == []
    assert await client.get_balance() == "100"
    assert await standby.call("get", id=transfer["id"]) == "fulfilled"
    assert await standby.call("balance") == "-100"
    assert ("outgoing_fulfill", transfer["id"]) in standby.events


async def test_fulfill_condition_raises_already_rolled_back_when_the_sender_refuses(
    listener: Plugin, raw: RawPeer
) -> None:
    """The sender answers F05 within the wait: the caller hears it, after the revert."""
    events = Recorder(listener, "incoming_fulfill", "incoming_fulfill_reverted")
    packet, preimage = prepare_packet(amount=6)
    assert isinstance(await raw.request(packet), btp.Response)
    fulfilling = asyncio.ensure_future(
        listener.fulfill_condition(packet.transfer_id, b64url(preimage))
    )
    fulfill = await raw.next_request()
    assert isinstance(fulfill, btp.Fulfill)
    refusal = btp.Error(
        fulfill.request_id,
        "F05",
        "AlreadyRolledBackError",
        datetime.now(UTC),
        json.dumps({"message": f"{packet.transfer_id} has already expired"}),
    )
    await raw.ws.send(btp.encode(refusal))
    with pytest.raises(AlreadyRolledBackError, match="reverted"):
        async with asyncio.timeout(WAIT):
            await fulfilling
    assert len(events["incoming_fulfill"]) == 1
    assert len(events["incoming_fulfill_reverted"]) == 1
    assert (await listener.transfer_log.get(packet.transfer_id))["state"] == "cancelled"
    assert await listener.get_balance() == "0"
    assert await listener.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
    # A repeated call sees the transfer cancelled.
    with pytest.raises(AlreadyRolledBackError):
        await listener.fulfill_condition(packet.transfer_id, b64url(preimage))


async def test_a_repeated_fulfill_condition_waits_for_the_pending_answer(
    listener: Plugin, raw: RawPeer
) -> None:
    """A repeat while the Fulfill is unacknowledged re-sends it (with its ilp data) and returns
    only on the answer; once acknowledged, a repeat returns at once."""
    packet, preimage = prepare_packet(amount=6)
    assert isinstance(await raw.request(packet), btp.Response)
    first = asyncio.ensure_future(
        listener.fulfill_condition(packet.transfer_id, b64url(preimage), b64url(b"\x07data"))
    )
    sent = await raw.next_request()
    assert isinstance(sent, btp.Fulfill)
    repeat = asyncio.ensure_future(listener.fulfill_condition(packet.transfer_id, b64url(preimage)))
    again = await raw.next_request()
    assert isinstance(again, btp.Fulfill)
    assert again.protocol_data == sent.protocol_data
    assert again.protocol_data[0].data == b"\x07data"
    assert not first.done()
    assert not repeat.done()
    await raw.answer(again)
    await raw.answer(sent)
    async with asyncio.timeout(WAIT):
        await asyncio.gather(first, repeat)
    async with asyncio.timeout(WAIT):
        await listener.fulfill_condition(packet.transfer_id, b64url(preimage))
    assert await listener.get_balance() == "6"


async def test_a_late_fulfill_is_refused_and_cancelled_before_the_timer_fires() -> None:
    """The sender's side: a Fulfill after the expiry (by the sender's clock) gets F05, and the
    transfer then ends cancelled even though the expiry timer has not fired (here: disarmed, as
    on a loop too busy to run it yet), so the F05 is what the sender's ledger ends up saying."""
    sender = Plugin(server_options())
    events = Recorder(sender, "outgoing_cancel", "outgoing_fulfill")
    await sender.connect()
    try:
        assert sender.listener_port is not None
        receiver = await RawPeer.open(sender.listener_port)
        try:
            transfer, fulfillment = make_transfer(sender.get_peer_account(), "9", expires_in=0.5)
            sending = asyncio.ensure_future(sender.send_transfer(transfer))
            prepare = await receiver.next_request()
            assert isinstance(prepare, btp.Prepare)
            await receiver.answer(prepare)
            async with asyncio.timeout(WAIT):
                await sending
            sender._scheduler.disarm(transfer["id"])
            await _sleep_until(datetime.fromisoformat(transfer["expiresAt"]).timestamp() + 0.1)
            assert (await sender.transfer_log.get(transfer["id"]))["state"] == "prepared"

            late = btp.Fulfill(0, transfer["id"], b64url_decode(fulfillment))
            answer = await receiver.request(late)
            assert isinstance(answer, btp.Error)
            assert (answer.code, answer.name) == ("F05", "AlreadyRolledBackError")
            ((cancelled, _),) = await events.wait("outgoing_cancel")
            assert cancelled["id"] == transfer["id"]
            assert (await sender.transfer_log.get(transfer["id"]))["state"] == "cancelled"
            assert events["outgoing_fulfill"] == []
            assert await sender.get_balance() == "0"
            # Asked again, the answer stays the same: decided by the ledger now.
            again = await receiver.request(late)
            assert isinstance(again, btp.Error)
            assert again.code == "F05"
        finally:
            await receiver.close()
    finally:
        await sender.disconnect()


async def test_a_receiver_refusing_a_late_fulfilment_cancels_before_its_timer_fires(
    listener: Plugin, raw: RawPeer
) -> None:
    """The receiver's side of the same rule: fulfill_condition after the expiry raises
    AlreadyRolledBackError, and the transfer then ends cancelled (the sender told with R00)
    even though the expiry timer has not fired (disarmed here)."""
    events = Recorder(listener, "incoming_cancel")
    packet, preimage = prepare_packet(amount=4, expires_in=0.5)
    assert isinstance(await raw.request(packet), btp.Response)
    listener._scheduler.disarm(packet.transfer_id)
    assert packet.expires_at is not None
    await _sleep_until(packet.expires_at.timestamp() + 0.1)
    with pytest.raises(AlreadyRolledBackError, match="expired"):
        await listener.fulfill_condition(packet.transfer_id, b64url(preimage))
    ((cancelled, reason),) = await events.wait("incoming_cancel")
    assert cancelled["id"] == packet.transfer_id
    assert reason["code"] == "R00"
    reject = await raw.next_request()
    assert isinstance(reject, btp.Reject)
    assert reject.transfer_id == packet.transfer_id
    await raw.answer(reject)
    assert (await listener.transfer_log.get(packet.transfer_id))["state"] == "cancelled"
    assert await listener.get_balance() == "0"
