"""The unconditional-payment example module (examples/payment_channel) as real code: the
simulated ledger, and two Python plugins settling by txid over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from payment_channel import module as payment_module
from payment_channel.ledger import InsufficientFunds, PaymentLedger

from ilp_paychan import Plugin, make_payment_channel_plugin
from ilp_paychan.errors import InvalidFieldsError, NotAcceptedError

from .helpers import (
    client_options,
    listener_port,
    module_variant,
    pay,
    pay_many,
    server_options,
    wait_until,
)


def variant(**overrides: Any) -> SimpleNamespace:
    return module_variant(payment_module, **overrides)


class Setup:
    """Listener "alice" and client "bob" settling on one simulated ledger."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.ledger = PaymentLedger(tmp_path / "bank")
        self.plugins: list[Plugin] = []

    def _options(self, own: str, peer: str, **extra: Any) -> dict[str, Any]:
        options = {
            "ledgerPath": str(self.tmp / "bank"),
            "ledgerAccount": own,
            "peerLedgerAccount": peer,
            "maxUnsecured": "100",
            "store": f"sqlite:///{self.tmp / (own + '.db')}",
        }
        options.update(extra)
        return options

    async def start_alice(self, module: Any = payment_module, **extra: Any) -> Plugin:
        plugin = make_payment_channel_plugin(module)(
            server_options(**self._options("alice", "bob", **extra))
        )
        await plugin.connect()
        self.plugins.append(plugin)
        self.alice = plugin
        return plugin

    async def start_bob(self, module: Any = payment_module, **extra: Any) -> Plugin:
        plugin = make_payment_channel_plugin(module)(
            client_options(listener_port(self.alice), **self._options("bob", "alice", **extra))
        )
        await plugin.connect()
        self.plugins.append(plugin)
        self.bob = plugin
        return plugin

    async def close(self) -> None:
        for plugin in reversed(self.plugins):
            await plugin.disconnect()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    s = Setup(tmp_path)
    await s.ledger.fund("alice", 10_000)
    await s.ledger.fund("bob", 10_000)
    try:
        yield s
    finally:
        await s.close()


async def received(plugin: Plugin) -> int:
    backend = plugin.backend
    assert backend is not None
    log = backend.get_transfer_log("incoming_settlements")
    return int(await log.get_incoming_fulfilled_and_prepared())


async def settled(plugin: Plugin) -> int:
    backend = plugin.backend
    assert backend is not None
    return int((await backend.get_max_value_tracker("amount_settled").get_max())["value"])


# --- the simulated ledger ------------------------------------------------------------------------


async def test_the_ledger_moves_money_once_per_reference(tmp_path: Path) -> None:
    ledger = PaymentLedger(tmp_path)
    await ledger.fund("a", 100)
    first = await ledger.pay("a", "b", 30, "r1")
    assert await ledger.pay("a", "b", 30, "r1") == first
    await ledger.pay("a", "b", 20, "r2")
    assert (await ledger.balance("a"), await ledger.balance("b")) == (50, 50)
    with pytest.raises(InsufficientFunds):
        await ledger.pay("a", "b", 51, "r3")
    payment = await PaymentLedger(tmp_path).get_payment(first)
    assert payment is not None
    assert (payment.source, payment.destination, payment.amount) == ("a", "b", 30)
    assert [p.amount for p in await ledger.payments("a", "b")] == [30, 20]
    assert await ledger.get_payment("no-such-txid") is None


def test_bad_options_are_named(tmp_path: Path) -> None:
    cls = make_payment_channel_plugin(payment_module)
    good = server_options(
        ledgerPath=str(tmp_path), ledgerAccount="a", peerLedgerAccount="b", maxUnsecured="10"
    )
    for key, value in [("ledgerAccount", ""), ("maxUnsecured", "ten"), ("ledgerPath", None)]:
        with pytest.raises(InvalidFieldsError, match=key):
            cls({**good, key: value})


# --- two plugins settling ------------------------------------------------------------------------


async def test_the_payer_pays_exactly_what_it_owes(setup: Setup) -> None:
    alice = await setup.start_alice()
    bob = await setup.start_bob()
    await pay_many(bob, alice, 40, amount=10, concurrency=10)
    payments = await setup.ledger.payments("bob", "alice")
    assert sum(p.amount for p in payments) == 400
    assert len({p.id for p in payments}) == len(payments)
    assert await settled(bob) == 400
    assert await received(alice) == 400
    assert await setup.ledger.balance("alice") == 10_400


async def test_a_txid_counts_once_however_often_it_is_announced(setup: Setup) -> None:
    alice = await setup.start_alice()
    bob = await setup.start_bob()
    await pay(bob, alice, 60)
    (payment,) = await setup.ledger.payments("bob", "alice")
    claim = {"txid": payment.id}
    await asyncio.gather(*(alice._hooks.handle_incoming_claim(claim) for _ in range(10)))
    assert await received(alice) == 60


async def test_payments_not_to_us_or_unknown_are_ignored(setup: Setup) -> None:
    alice = await setup.start_alice()
    await setup.start_bob()
    await setup.ledger.fund("carol", 500)
    elsewhere = await setup.ledger.pay("carol", "alice", 500, "gift")
    wrong_way = await setup.ledger.pay("alice", "bob", 5, "x")
    for claim in ({"txid": elsewhere}, {"txid": wrong_way}, {"txid": "nope"}, "junk", {}):
        await alice._hooks.handle_incoming_claim(claim)
    assert await received(alice) == 0


@pytest.mark.parametrize("direction", ["client pays listener", "listener pays client"])
async def test_an_unpaid_balance_beyond_max_unsecured_is_refused(
    setup: Setup, direction: str
) -> None:
    alice = await setup.start_alice()
    bob = await setup.start_bob()
    sender, receiver = (bob, alice) if direction == "client pays listener" else (alice, bob)
    with pytest.raises(NotAcceptedError, match="exceeds max unsecured"):
        await pay(sender, receiver, 101)
    await pay(sender, receiver, 100)
    assert await received(receiver) == 100


async def test_a_payer_without_funds_is_cut_off_at_max_unsecured(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    try:
        alice = await setup.start_alice()
        bob = await setup.start_bob()
        for _ in range(4):
            await pay(bob, alice, 25)
        with pytest.raises(NotAcceptedError, match="exceeds max unsecured"):
            await pay(bob, alice, 1)
        assert await received(alice) == 0
        await setup.ledger.fund("bob", 1000)
        await bob.disconnect()
        await setup.start_bob()
        await wait_until(lambda: _received_is(alice, 100), "the payment made on reconnect")
        await pay(setup.bob, alice, 50)
        assert await received(alice) == 150
    finally:
        await setup.close()


async def test_a_payer_that_crashed_after_paying_neither_pays_twice_nor_goes_unheard(
    tmp_path: Path,
) -> None:
    """Bob pays on the ledger and crashes before recording it or answering the Fulfill."""
    setup = Setup(tmp_path)
    await setup.ledger.fund("bob", 1000)

    async def crash_after_paying(ctx: Any, balance: str) -> None:
        s = ctx.state
        paid = int((await s.amount_settled.get_max())["value"])
        await s.ledger.pay(s.own, s.peer, int(balance) - paid, reference=f"settle-to-{balance}")
        raise ConnectionResetError("crashed after paying")

    try:
        alice = await setup.start_alice()
        bob = await setup.start_bob(variant(create_outgoing_claim=crash_after_paying))
        await pay(bob, alice, 70)
        assert await received(alice) == 0
        await bob.disconnect()
        await setup.start_bob()
        await wait_until(lambda: _received_is(alice, 70), "the announced payment")
        assert sum(p.amount for p in await setup.ledger.payments("bob", "alice")) == 70
        await pay(setup.bob, alice, 5)
        assert sum(p.amount for p in await setup.ledger.payments("bob", "alice")) == 75
    finally:
        await setup.close()


async def test_a_payee_restarted_after_missing_an_announcement_finds_it(setup: Setup) -> None:
    async def deaf(ctx: Any, claim: Any) -> None:
        return None

    alice = await setup.start_alice()
    bob = await setup.start_bob(variant(handle_incoming_claim=deaf))
    await pay(alice, bob, 40)
    assert await received(bob) == 0
    await bob.disconnect()
    bob2 = await setup.start_bob()
    assert await received(bob2) == 40


async def _received_is(plugin: Plugin, value: int) -> bool:
    return await received(plugin) == value
