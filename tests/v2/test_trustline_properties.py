"""Hypothesis on the trustline's balance invariants (one layer: the `Accounting` seam driven
directly, a memory store): whatever Prepares arrive and leave, in any order of answers, the
balance plus what is held stays within the limits, a refusal happens only when the limit would
be passed, and the balance is exactly the fulfilled incoming minus the fulfilled outgoing."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ilp_paychan.codec import ilp4
from ilp_paychan.v2.trustline import Trustline
from ilp_paychan.v2.trustline_options import BalanceSettings, TrustlineSettings

from .conftest import CONDITION, FULFILLMENT


class FakePlugin:
    """What the trustline reads of its plugin; no link (nothing is asked or settled)."""

    class settings:
        address = "test.us"

    def on(self, event: str, callback: Any) -> None:
        """Nothing to emit."""

    def off(self, event: str, callback: Any) -> None:
        """Nothing to emit."""

    def is_connected(self) -> bool:
        """Never: nothing is sent."""
        return False


FULFIL = ilp4.encode_fulfill(ilp4.IlpFulfill(FULFILLMENT, b""))
REJECT = ilp4.encode_reject(ilp4.IlpReject("F99", "test.peer", "no"))

operations = st.lists(
    st.tuples(st.booleans(), st.integers(1, 60), st.booleans()), min_size=1, max_size=25
)


async def scenario(
    maximum: int, minimum: int, ops: list[tuple[bool, int, bool]], order: list[int]
) -> None:
    trustline = Trustline(
        TrustlineSettings(BalanceSettings(maximum, minimum, None, 0), "memory:", "")
    )
    await trustline.open(FakePlugin())
    try:
        expires = datetime.now(UTC) + timedelta(minutes=5)
        held_in = held_out = 0
        balance = 0
        accepted: list[tuple[int, ilp4.IlpPrepare, bool, bool]] = []
        for index, (incoming, amount, fulfils) in enumerate(ops):
            packet = ilp4.IlpPrepare(amount, expires, CONDITION, "test.x", os.urandom(4))
            if incoming:
                refused = await trustline.incoming_prepare(packet)
                fits = balance + held_in + amount <= maximum
            else:
                refused = await trustline.outgoing_prepare(packet)
                fits = balance - held_out - amount >= minimum
            assert (refused is None) == fits, (index, refused)
            if refused is not None:
                assert ilp4.decode_reject(refused).code == "T04"
                continue
            if incoming:
                held_in += amount
            else:
                held_out += amount
            accepted.append((amount, packet, incoming, fulfils))
            state = await trustline.get_balance()
            assert int(state["balance"]) + int(state["incomingPrepared"]) <= maximum
            assert int(state["balance"]) - int(state["outgoingPrepared"]) >= minimum
        for position in order:
            if position >= len(accepted):
                continue
            amount, packet, incoming, fulfils = accepted[position]
            accepted[position] = (0, packet, incoming, fulfils)
            if amount == 0:
                continue
            reply = FULFIL if fulfils else REJECT
            if incoming:
                await trustline.incoming_settled(packet, reply, fulfils)
                held_in -= amount
                balance += amount if fulfils else 0
            else:
                await trustline.outgoing_settled(packet, reply, fulfils, True)
                held_out -= amount
                balance -= amount if fulfils else 0
            state = await trustline.get_balance()
            assert int(state["balance"]) == balance
            assert (int(state["incomingPrepared"]), int(state["outgoingPrepared"])) == (
                held_in,
                held_out,
            )
    finally:
        await trustline.close()


@settings(max_examples=60, deadline=None)
@given(
    maximum=st.integers(0, 200),
    minimum=st.integers(-200, 0),
    ops=operations,
    order=st.permutations(list(range(25))),
)
def test_balance_stays_within_the_limits_and_counts_each_fulfil_once(
    maximum: int, minimum: int, ops: list[tuple[bool, int, bool]], order: list[int]
) -> None:
    asyncio.run(scenario(maximum, minimum, ops, order))
