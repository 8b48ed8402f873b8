"""What `serve` logs of a receiver's fulfilments: pending is news, reverted is a warning.

A `receiverSecret` ledger fulfils on its own. When the sender has not answered the Fulfill in
time the fulfilment is still committed and re-sent (FulfillmentPendingError), which is not a
failure: INFO `receiver_pending`. A fulfilment the sender refused as too late (rolled back) loses
money we counted on: WARNING `incoming_fulfill_reverted`, whatever the log level. Unit tests of
the shell layer: the plugin is a stand-in that records listeners and scripts one answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import pytest

from ilp_paychan.codec.condition import b64url_encode
from ilp_paychan.errors import FulfillmentPendingError, PeerError
from ilp_paychan.shell.config import LedgerSettings, ServeSettings
from ilp_paychan.shell.serve import Server, _Ledger, _Receiver, receiver_fulfillment

SECRET = bytes(range(32))
ILP = b64url_encode(b"an ILP payment")
TID = "5857d460-2a46-4545-8311-5539d99e78c0"


class StandInPlugin:
    """Records `on` listeners; `fulfill_condition` raises the scripted error."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.listeners: dict[str, list[Callable[..., Any]]] = {}
        self.fulfilled: list[str] = []

    def on(self, name: str, callback: Callable[..., Any]) -> None:
        self.listeners.setdefault(name, []).append(callback)

    async def fulfill_condition(self, transfer_id: str, fulfillment: str) -> None:
        self.fulfilled.append(transfer_id)
        if self.failure is not None:
            raise self.failure


def ledger(plugin: StandInPlugin) -> _Ledger:
    settings = LedgerSettings("red", {"server": "btp+ws://:s@127.0.0.1:1"}, None, SECRET)
    return _Ledger(settings, plugin)


def events(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage().split(" ", 1)[0])
        for r in caplog.records
        if r.name == "ilp_paychan.serve"
    ]


async def settle(plugin: StandInPlugin) -> None:
    entry = ledger(plugin)
    fulfillment = receiver_fulfillment(SECRET, ILP)
    condition = b64url_encode(hashlib.sha256(fulfillment).digest())
    _Receiver(entry, SECRET)({"id": TID, "ilp": ILP, "executionCondition": condition})
    await asyncio.gather(*entry.tasks)
    assert plugin.fulfilled == [TID]


async def test_a_pending_fulfilment_is_logged_at_info_as_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ilp_paychan")
    await settle(StandInPlugin(FulfillmentPendingError(TID)))
    assert events(caplog) == [(logging.INFO, "receiver_pending")]


async def test_a_refused_fulfilment_is_still_a_receiver_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ilp_paychan")
    refusal = PeerError("no", code="F00", name="NotAcceptedError", data="", triggered_at=None)
    await settle(StandInPlugin(refusal))
    assert events(caplog) == [(logging.WARNING, "receiver_failed")]


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_a_reverted_fulfilment_is_a_warning_at_any_level(
    caplog: pytest.LogCaptureFixture, level: int
) -> None:
    caplog.set_level(level, logger="ilp_paychan")
    plugin = StandInPlugin()
    server = Server(ServeSettings(()), admin=None, shutdown_timeout=1.0)
    server._log_transfers(ledger(plugin))
    (reverted,) = plugin.listeners["incoming_fulfill_reverted"]  # registered once
    assert ("incoming_prepare" in plugin.listeners) == (level == logging.DEBUG)
    reverted({"id": TID, "amount": "9"}, {"code": "R00"})
    assert events(caplog) == [(logging.WARNING, "incoming_fulfill_reverted")]
    assert f"transfer={TID} amount=9" in caplog.records[-1].getMessage()
