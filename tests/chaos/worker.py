"""One side of a chaos run: a real Plugin on a durable store, paying and being paid, until told.

    python -m chaos.worker CONFIG.json        (with tests/ on PYTHONPATH)

The driver SIGKILLs and restarts this process at random moments; every start reads the same
config and the journal it appends to, so it resumes sending where the last life stopped (a
transfer whose `try` line was written is never sent again under the same id; if the kill came
between its prepare and its send, the expiry cancels it). SIGTERM ends it gracefully.

It writes to its journal (see `common.Journal`): `start`, `ready`, `try` before each send and
the send's outcome, each answer it gives to an incoming transfer, every transfer event, and a
`status` line every STATUS_EVERY seconds (prepared transfers and pending peer notices in its
store) that the driver reads to know when both sides have settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chaos.common import (
    INFO,
    MAX_BALANCE,
    PREFIX,
    SECRET,
    Decision,
    Journal,
    WorkerConfig,
    amount_of,
    b64url,
    condition_of,
    decision_of,
    delay_fraction,
    preimage_of,
    read_journal,
    transfer_id,
)
from ilp_paychan import Plugin
from ilp_paychan.errors import PluginError

STATUS_EVERY = 0.25
#: Events journalled; names the plugin does not emit are simply never seen.
JOURNALLED_EVENTS = (
    "outgoing_prepare",
    "outgoing_fulfill",
    "outgoing_reject",
    "outgoing_cancel",
    "incoming_fulfill",
    "incoming_reject",
    "incoming_cancel",
    "incoming_fulfill_reverted",
    "incoming_fulfill_confirmed",
)


def plugin_options(config: WorkerConfig) -> dict[str, Any]:
    common: dict[str, Any] = {
        "store": config.store,
        "maxBalance": str(MAX_BALANCE),
        "requestTimeout": config.request_timeout,
        "shutdownTimeout": 2.0,
    }
    if config.role == "server":
        return {
            **common,
            "listener": {"port": config.port, "host": "127.0.0.1"},
            "incomingSecret": SECRET,
            "prefix": PREFIX,
            "info": dict(INFO),
        }
    return {**common, "server": f"btp+ws://:{SECRET}@127.0.0.1:{config.port}"}


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        previous = read_journal(Path(config.journal))
        self.next_index = 1 + max(
            (line["i"] for line in previous if line["ev"] == "try"), default=-1
        )
        self.life = 1 + sum(1 for line in previous if line["ev"] == "start")
        self.journal = Journal(config.journal)
        self.rng = random.Random(f"{config.seed}/{config.role}/{self.life}")
        self.plugin = Plugin(plugin_options(config))
        self.stopping = asyncio.Event()
        self.answers: set[asyncio.Task[None]] = set()
        self.answered: set[str] = set()
        self.sends: set[asyncio.Task[None]] = set()

    def log(self, ev: str, **fields: Any) -> None:
        self.journal.write(ev=ev, t=round(time.time(), 3), **fields)

    # ------------------------------------------------------------------ answering

    def on_incoming_prepare(self, transfer: dict[str, Any]) -> None:
        self.schedule_answer(transfer["id"], transfer["expiresAt"])

    def schedule_answer(self, tid: str, expires_at: str) -> None:
        if tid in self.answered:
            return
        self.answered.add(tid)
        task = asyncio.get_running_loop().create_task(self.answer(tid, expires_at))
        self.answers.add(task)
        task.add_done_callback(self.answers.discard)

    async def answer(self, tid: str, expires_at: str) -> None:
        secret = self.config.run_secret
        decision = decision_of(secret, tid)
        if decision is Decision.IGNORE:
            self.log("ignore", id=tid)
            return
        left = datetime.fromisoformat(expires_at).timestamp() - time.time()
        delay = delay_fraction(secret, tid) * max(left, 0.0)
        if delay:
            await asyncio.sleep(delay)
        try:
            if decision is Decision.FULFILL:
                await self.plugin.fulfill_condition(tid, b64url(preimage_of(secret, tid)))
            else:
                await self.plugin.reject_incoming_transfer(
                    tid, {"code": "F99", "name": "Application Error", "message": "chaos"}
                )
        except PluginError as error:
            self.log(decision.value + "_error", id=tid, error=type(error).__name__)
        else:
            self.log(decision.value + "_ok", id=tid)

    async def answer_left_over(self) -> None:
        """Incoming transfers still prepared from an earlier life never got their answer."""
        for stored in await self.plugin.transfer_log.list_prepared():
            if stored["isIncoming"]:
                record = stored["transfer"]
                self.schedule_answer(record["id"], record["expiresAt"])

    # ------------------------------------------------------------------ sending

    async def send_all(self) -> None:
        config = self.config
        gate = asyncio.Semaphore(config.in_flight)
        pace = 1.0 / config.rate
        next_at = time.monotonic()
        while self.next_index < config.budget and not self.stopping.is_set():
            await gate.acquire()
            index, self.next_index = self.next_index, self.next_index + 1
            task = asyncio.get_running_loop().create_task(self.send_one(index))
            self.sends.add(task)
            task.add_done_callback(self.sends.discard)
            task.add_done_callback(lambda _: gate.release())
            next_at += pace
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = time.monotonic()
        if self.sends:
            await asyncio.wait(list(self.sends))

    async def send_one(self, index: int) -> None:
        config = self.config
        secret = config.run_secret
        tid = transfer_id(secret, config.role, index)
        amount = amount_of(secret, tid)
        expires_in = self.rng.uniform(config.expiry_min, config.expiry_max)
        transfer = {
            "id": tid,
            "to": self.plugin.get_peer_account(),
            "amount": str(amount),
            "executionCondition": b64url(condition_of(secret, tid)),
            "expiresAt": (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat(),
        }
        self.log("try", i=index, id=tid, amount=amount)
        try:
            await self.plugin.send_transfer(transfer)
        except PluginError as error:
            self.log("send_error", id=tid, error=type(error).__name__)
        else:
            self.log("sent", id=tid)

    # ------------------------------------------------------------------ status

    async def report_status(self, sending: asyncio.Task[None]) -> None:
        transfer_log = self.plugin.transfer_log
        while True:
            try:
                prepared = len(await transfer_log.list_prepared())
                notices = len(await transfer_log.list_peer_notices())
            except Exception as error:  # a store outage must not end the worker
                self.log("status_error", error=type(error).__name__)
            else:
                self.log(
                    "status",
                    prepared=prepared,
                    notices=notices,
                    answering=len(self.answers),
                    done=sending.done(),
                )
            await asyncio.sleep(STATUS_EVERY)

    # ------------------------------------------------------------------ life

    async def connect(self) -> None:
        """Connect, retrying while the peer is down (a client cannot start without its server)."""
        while True:
            try:
                await self.plugin.connect()
                return
            except PluginError as error:
                self.log("connect_error", error=type(error).__name__)
                await asyncio.sleep(0.1)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        self.log("start", life=self.life, pid=os.getpid())
        plugin = self.plugin
        plugin.on("incoming_prepare", self.on_incoming_prepare)
        for name in JOURNALLED_EVENTS:
            plugin.on(name, self._journaller(name))
        await self.connect()
        self.log("ready")
        await self.answer_left_over()
        sending = loop.create_task(self.send_all())
        status = loop.create_task(self.report_status(sending))
        await self.stopping.wait()
        pending = [status, sending, *self.sends, *self.answers]
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)
        await plugin.disconnect()
        self.log("stopped")

    def _journaller(self, name: str) -> Any:
        def record(transfer: dict[str, Any], *_: Any) -> None:
            self.log(name, id=transfer["id"])

        return record


def main(argv: list[str]) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format=f"%(asctime)s {os.getpid()} %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    config = WorkerConfig.load(Path(argv[1]))
    asyncio.run(Worker(config).run())


if __name__ == "__main__":
    main(sys.argv)
