"""Random prepare/fulfill/cancel/revert/set_maximum sequences against a model, on every store.

After every step the store's sums must equal the model's, and equal the sums recomputed from the
stored transfers by state; the limits must hold for every accepted prepare.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ilp_paychan.errors import (
    AlreadyFulfilledError,
    AlreadyRolledBackError,
    DuplicateIdError,
    NotAcceptedError,
    TransferNotFoundError,
)
from ilp_paychan.ledger import Backend, PrepareOutcome, open_backend

T = TypeVar("T")
IDS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(6)]
SETTINGS = settings(
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@dataclass
class ModelTransfer:
    amount: int
    incoming: bool
    variant: int
    state: str = "prepared"


class LedgerMachine(RuleBasedStateMachine):
    """Each run gets a fresh TransferLog key on one backend shared by the test's runs."""

    loop: asyncio.AbstractEventLoop
    backend: Backend

    def __init__(self) -> None:
        super().__init__()
        self.log = self.backend.get_transfer_log(uuid.uuid4().hex, maximum=60, minimum=-40)
        self.transfers: dict[str, ModelTransfer] = {}
        self.maximum: int | None = 60
        self.minimum: int | None = -40
        self.sums = {"if": 0, "of": 0, "ifap": 0, "ofap": 0}

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    @rule(
        tid=st.sampled_from(IDS),
        amount=st.one_of(st.sampled_from([0, 5, 10, 20, 30]), st.integers(0, 50)),
        incoming=st.booleans(),
        variant=st.integers(0, 1),
    )
    def prepare(self, tid: str, amount: int, incoming: bool, variant: int) -> None:
        body = {"id": tid, "amount": str(amount), "custom": {"v": variant}}
        if variant:
            body["expiresAt"] = "2031-02-03T04:05:06.789Z"
        existing = self.transfers.get(tid)
        if existing is not None:
            same = (existing.amount, existing.incoming, existing.variant) == (
                amount,
                incoming,
                variant,
            )
            if same:
                expected = {
                    "prepared": PrepareOutcome.REPEAT_PREPARED,
                    "fulfilled": PrepareOutcome.REPEAT_FULFILLED,
                    "cancelled": PrepareOutcome.REPEAT_CANCELLED,
                }[existing.state]
                assert self.run(self.log.prepare(body, incoming)) is expected
            else:
                with pytest.raises(DuplicateIdError):
                    self.run(self.log.prepare(body, incoming))
            return
        s = self.sums
        if incoming:
            refused = self.maximum is not None and s["ifap"] + amount - s["of"] > self.maximum
        else:
            refused = self.minimum is not None and s["ofap"] + amount - s["if"] > -self.minimum
        if refused:
            with pytest.raises(NotAcceptedError):
                self.run(self.log.prepare(body, incoming))
            return
        assert self.run(self.log.prepare(body, incoming)) is PrepareOutcome.NEW
        self.transfers[tid] = ModelTransfer(amount, incoming, variant)
        s["ifap" if incoming else "ofap"] += amount

    @rule(tid=st.sampled_from(IDS), notify=st.booleans())
    def fulfill(self, tid: str, notify: bool) -> None:
        found = self.transfers.get(tid)
        if found is None:
            with pytest.raises(TransferNotFoundError):
                self.run(self.log.fulfill(tid, "ful", notify_peer=notify))
        elif found.state == "cancelled":
            with pytest.raises(AlreadyRolledBackError):
                self.run(self.log.fulfill(tid, "ful", notify_peer=notify))
        elif found.state == "fulfilled":
            assert self.run(self.log.fulfill(tid, "ful", notify_peer=notify)) is False
        else:
            assert self.run(self.log.fulfill(tid, "ful", notify_peer=notify)) is True
            found.state = "fulfilled"
            self.sums["if" if found.incoming else "of"] += found.amount

    @rule(tid=st.sampled_from(IDS))
    def cancel(self, tid: str) -> None:
        found = self.transfers.get(tid)
        if found is None:
            with pytest.raises(TransferNotFoundError):
                self.run(self.log.cancel(tid))
        elif found.state == "fulfilled":
            with pytest.raises(AlreadyFulfilledError):
                self.run(self.log.cancel(tid))
        elif found.state == "cancelled":
            assert self.run(self.log.cancel(tid)) is False
        else:
            assert self.run(self.log.cancel(tid)) is True
            found.state = "cancelled"
            self.sums["ifap" if found.incoming else "ofap"] -= found.amount

    @rule(tid=st.sampled_from(IDS))
    def revert_fulfillment(self, tid: str) -> None:
        found = self.transfers.get(tid)
        if found is None:
            with pytest.raises(TransferNotFoundError):
                self.run(self.log.revert_fulfillment(tid))
        elif not found.incoming or found.state == "prepared":
            with pytest.raises(NotAcceptedError):
                self.run(self.log.revert_fulfillment(tid))
        elif found.state == "cancelled":
            assert self.run(self.log.revert_fulfillment(tid)) is False
        else:
            assert self.run(self.log.revert_fulfillment(tid)) is True
            found.state = "cancelled"
            self.sums["if"] -= found.amount
            self.sums["ifap"] -= found.amount

    @rule(value=st.sampled_from([None, 0, 10, 30, 60, 90]))
    def set_maximum(self, value: int | None) -> None:
        self.run(self.log.set_maximum(value))
        self.maximum = value

    @rule(value=st.sampled_from([None, 0, -10, -30, -40, -80]))
    def set_minimum(self, value: int | None) -> None:
        self.run(self.log.set_minimum(None if value is None else str(value)))
        self.minimum = value

    @invariant()
    def sums_match_the_model_and_the_stored_transfers(self) -> None:
        log = self.log

        async def read() -> tuple[list[int], list[dict[str, Any]], str, str]:
            sums = [
                int(await log.get_incoming_fulfilled()),
                int(await log.get_outgoing_fulfilled()),
                int(await log.get_incoming_fulfilled_and_prepared()),
                int(await log.get_outgoing_fulfilled_and_prepared()),
            ]
            records = [await log.get(tid) for tid in self.transfers]
            return sums, records, await log.get_maximum(), await log.get_balance()

        sums, records, maximum, balance = self.run(read())
        s = self.sums
        assert sums == [s["if"], s["of"], s["ifap"], s["ofap"]]
        assert int(balance) == s["if"] - s["of"]
        assert maximum == ("Infinity" if self.maximum is None else str(self.maximum))
        recomputed = {"if": 0, "of": 0, "ifap": 0, "ofap": 0}
        for record in records:
            amount = int(record["transfer"]["amount"])
            side = "i" if record["isIncoming"] else "o"
            model = self.transfers[record["transfer"]["id"]]
            assert record["state"] == model.state
            assert json.loads(json.dumps(record["transfer"]))["custom"] == {"v": model.variant}
            if record["state"] != "cancelled":
                recomputed[side + "fap"] += amount
            if record["state"] == "fulfilled":
                recomputed[side + "f"] += amount
        assert recomputed == s
        prepared = {r["transfer"]["id"] for r in self.run(log.list_prepared())}
        assert prepared == {t for t, m in self.transfers.items() if m.state == "prepared"}


@pytest.mark.slow
def test_ledger_model(store_spec: object, store_kind: str) -> None:
    # PostgreSQL steps cost network round trips: fewer runs keep the suite within its budget.
    budget = {"max_examples": 25} if store_kind == "postgres" else {}
    loop = asyncio.new_event_loop()
    try:
        backend = loop.run_until_complete(open_backend(store_spec))
        machine = type("Machine", (LedgerMachine,), {"loop": loop, "backend": backend})
        try:
            run_state_machine_as_test(machine, settings=settings(SETTINGS, **budget))
        finally:
            loop.run_until_complete(backend.close())
    finally:
        loop.close()
