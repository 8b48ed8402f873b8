"""The claim-based example module (examples/claim_channel) as real code: claims, the simulated
channel ledger, and two Python plugins settling with it over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from claim_channel import module as claim_module
from claim_channel.claims import (
    channel_id,
    claim_is_signed_by,
    parse_claim,
    private_key,
    public_bytes,
    sign_claim,
)
from claim_channel.ledger import ChannelLedger

from ilp_paychan import Plugin, make_payment_channel_plugin
from ilp_paychan.errors import FulfillmentPendingError, InvalidFieldsError, NotAcceptedError

from .helpers import (
    client_options,
    listener_port,
    module_variant,
    pay,
    pay_many,
    server_options,
    wait_until,
)

SEED_A = "a1" * 32
SEED_B = "b2" * 32
PUB_A = public_bytes(private_key(SEED_A))
PUB_B = public_bytes(private_key(SEED_B))
FORGER = private_key("ee" * 32)


def variant(**overrides: Any) -> SimpleNamespace:
    """The example module with some hooks replaced (to simulate forgery or a crash)."""
    return module_variant(claim_module, **overrides)


def side_options(seed: str, peer: bytes, ledger: Path, **extra: Any) -> dict[str, Any]:
    options = {
        "secret": seed,
        "peerPublicKey": peer.hex(),
        "ledgerPath": str(ledger),
        "channelAmount": "100000",
        "maxUnsecured": "100",
    }
    options.update(extra)
    return options


class Setup:
    """Listener A and client B with the claim module; either may be replaced (restart)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.ledger_path = tmp_path / "chain"
        self.ledger = ChannelLedger(self.ledger_path)
        self.plugins: list[Plugin] = []

    async def start_a(self, module: Any = claim_module, **extra: Any) -> Plugin:
        options = server_options(**side_options(SEED_A, PUB_B, self.ledger_path, **extra))
        options.setdefault("store", f"sqlite:///{self.tmp / 'a.db'}")
        plugin = make_payment_channel_plugin(module)(options)
        await plugin.connect()
        self.plugins.append(plugin)
        self.a = plugin
        return plugin

    async def start_b(self, module: Any = claim_module, **extra: Any) -> Plugin:
        options = client_options(
            listener_port(self.a), **side_options(SEED_B, PUB_A, self.ledger_path, **extra)
        )
        options["store"] = f"sqlite:///{self.tmp / 'b.db'}"
        plugin = make_payment_channel_plugin(module)(options)
        await plugin.connect()
        self.plugins.append(plugin)
        self.b = plugin
        await wait_until(lambda: _exchanged(self.a) and _exchanged(plugin), "claim exchange")
        return plugin

    async def close(self) -> None:
        for plugin in reversed(self.plugins):
            await plugin.disconnect()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    s = Setup(tmp_path)
    try:
        yield s
    finally:
        await s.close()


async def best_claim(plugin: Plugin) -> int:
    backend = plugin.backend
    assert backend is not None
    return int((await backend.get_max_value_tracker("incoming_claim").get_max())["value"])


async def unsecured(plugin: Plugin) -> int:
    incoming = int(await plugin.transfer_log.get_incoming_fulfilled_and_prepared())
    return incoming - await best_claim(plugin)


# --- claims and the simulated ledger ----------------------------------------------------------


def test_a_claim_verifies_with_the_signers_key_only() -> None:
    channel = channel_id(PUB_A, PUB_B)
    claim = parse_claim(sign_claim(private_key(SEED_A), channel, 500))
    assert claim.balance == 500
    assert claim_is_signed_by(PUB_A, claim)
    assert not claim_is_signed_by(PUB_B, claim)
    forged = parse_claim(sign_claim(FORGER, channel, 500))
    assert not claim_is_signed_by(PUB_A, forged)
    tampered = parse_claim({**claim.to_json(), "balance": "501"})
    assert not claim_is_signed_by(PUB_A, tampered)


@pytest.mark.parametrize(
    ("claim", "field"),
    [
        ("text", "object"),
        ({"channel": "xyz", "balance": "1", "signature": ""}, "claim.channel"),
        ({"channel": "0" * 32, "balance": "-1", "signature": ""}, "claim.balance"),
        ({"channel": "0" * 32, "balance": "1", "signature": "!!"}, "claim.signature"),
        ({"channel": "0" * 32, "balance": "1", "signature": "AAAA"}, "64 bytes"),
    ],
)
def test_malformed_claims_are_refused_naming_the_field(claim: Any, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        parse_claim(claim)


async def test_the_ledger_opens_tops_up_and_pays_each_claim_once(tmp_path: Path) -> None:
    ledger = ChannelLedger(tmp_path)
    channel = await ledger.open_channel(PUB_A, PUB_B, 1000)
    assert (channel.capacity, channel.claimed) == (1000, 0)
    assert (await ledger.open_channel(PUB_A, PUB_B, 500)).capacity == 1000
    assert (await ledger.open_channel(PUB_A, PUB_B, 1500)).capacity == 1500
    key = private_key(SEED_A)
    assert await ledger.submit_claim(parse_claim(sign_claim(key, channel.id, 300))) == 300
    assert await ledger.submit_claim(parse_claim(sign_claim(key, channel.id, 300))) == 0
    assert await ledger.submit_claim(parse_claim(sign_claim(key, channel.id, 200))) == 0
    assert await ledger.submit_claim(parse_claim(sign_claim(FORGER, channel.id, 900))) == 0
    assert await ledger.submit_claim(parse_claim(sign_claim(key, channel.id, 9999))) == 1200
    reopened = await ChannelLedger(tmp_path).get_channel(channel.id)
    assert reopened is not None
    assert (reopened.capacity, reopened.claimed) == (1500, 1500)


async def test_concurrent_ledger_writers_do_not_lose_updates(tmp_path: Path) -> None:
    ledger = ChannelLedger(tmp_path)
    channel = await ledger.open_channel(PUB_A, PUB_B, 10_000)
    key = private_key(SEED_A)
    paid = await asyncio.gather(
        *(
            ChannelLedger(tmp_path).submit_claim(parse_claim(sign_claim(key, channel.id, n)))
            for n in range(1, 41)
        )
    )
    assert sum(paid) == 40


def test_bad_options_are_named() -> None:
    module = make_payment_channel_plugin(claim_module)
    good = server_options(**side_options(SEED_A, PUB_B, Path("/nonexistent")))
    for key, value, name in [
        ("secret", "zz", "secret"),
        ("peerPublicKey", None, "peerPublicKey"),
        ("maxUnsecured", "-5", "maxUnsecured"),
        ("ledgerPath", "", "ledgerPath"),
    ]:
        with pytest.raises(InvalidFieldsError, match=name):
            module({**good, key: value})


# --- two plugins settling ----------------------------------------------------------------------


async def test_concurrent_payments_are_secured_by_the_best_claim(setup: Setup) -> None:
    a = await setup.start_a()
    b = await setup.start_b()
    worst = 0

    async def watch() -> None:
        nonlocal worst
        while True:
            worst = max(worst, await unsecured(a))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        await pay_many(b, a, 60, amount=10, concurrency=20)
    finally:
        watcher.cancel()
    assert await a.transfer_log.get_incoming_fulfilled() == "600"
    assert await best_claim(a) == 600
    assert worst <= 100
    await pay_many(a, b, 10, amount=7, concurrency=5)
    assert await best_claim(b) == 70


@pytest.mark.parametrize("direction", ["client pays listener", "listener pays client"])
async def test_a_transfer_beyond_max_unsecured_is_refused(setup: Setup, direction: str) -> None:
    a = await setup.start_a()
    b = await setup.start_b()
    sender, receiver = (b, a) if direction == "client pays listener" else (a, b)
    with pytest.raises(NotAcceptedError, match="exceeds max unsecured"):
        await pay(sender, receiver, 101)
    assert await receiver.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
    await pay(sender, receiver, 100)
    assert await best_claim(receiver) == 100


@pytest.mark.parametrize("direction", ["client pays listener", "listener pays client"])
async def test_forged_claims_are_ignored_and_credit_stops_at_max_unsecured(
    setup: Setup, direction: str
) -> None:
    def forger_constructor(ctx: Any, opts: Any) -> None:
        claim_module.constructor(ctx, opts)
        ctx.state.key = FORGER

    forger = variant(constructor=forger_constructor)
    if direction == "client pays listener":
        receiver, sender = await setup.start_a(), await setup.start_b(forger)
    else:
        receiver = await setup.start_a(forger)
        sender = await setup.start_b()
        receiver, sender = sender, receiver
    for _ in range(5):
        await pay(sender, receiver, 20)
    with pytest.raises(NotAcceptedError, match="exceeds max unsecured"):
        await pay(sender, receiver, 1)
    assert await best_claim(receiver) == 0
    assert await receiver.transfer_log.get_incoming_fulfilled() == "100"


async def test_stale_and_repeated_claims_change_nothing(setup: Setup) -> None:
    a = await setup.start_a()
    b = await setup.start_b()
    await pay(b, a, 50)
    channel = channel_id(PUB_B, PUB_A)
    key = private_key(SEED_B)
    older = sign_claim(key, channel, 20)
    newer = sign_claim(key, channel, 50)
    hooks = a._hooks
    for claim in (older, newer, newer, older):
        await hooks.handle_incoming_claim(claim)
    assert await best_claim(a) == 50
    wrong_channel = sign_claim(key, channel_id(PUB_A, PUB_B), 90)
    await hooks.handle_incoming_claim(wrong_channel)
    await hooks.handle_incoming_claim({"garbage": True})
    assert await best_claim(a) == 50


async def test_a_receiver_restarted_before_its_claim_arrived_gets_it_again(
    setup: Setup,
) -> None:
    """B crashes after its Fulfills were acknowledged but before it kept their claims."""

    async def drop(ctx: Any, claim: Any) -> None:
        return None

    async def crash(ctx: Any) -> None:
        return None

    a = await setup.start_a()
    b = await setup.start_b(variant(handle_incoming_claim=drop, disconnect=crash))
    for _ in range(3):
        await pay(a, b, 30)
    assert await best_claim(b) == 0
    await b.disconnect()
    b2 = await setup.start_b()
    await wait_until(lambda: _best_is(b2, 90), "the re-issued claim")
    assert await unsecured(b2) == 0


async def test_a_sender_restarted_after_a_lost_claim_issues_it_again(tmp_path: Path) -> None:
    """A's claims never left (its claim hook failed, as in a crash before the Response)."""
    setup = Setup(tmp_path)

    async def lost(ctx: Any, balance: str) -> None:
        raise ConnectionResetError("crashed before the Response")

    try:
        a = await setup.start_a()
        b = await setup.start_b(variant(create_outgoing_claim=lost))
        for _ in range(4):
            await pay(b, a, 25)
        assert await best_claim(a) == 0
        await b.disconnect()
        await setup.start_b()
        await wait_until(lambda: _best_is(a, 100), "the re-issued claim")
    finally:
        await setup.close()


async def test_the_best_claim_is_cashed_in_on_disconnect(setup: Setup) -> None:
    a = await setup.start_a()
    b = await setup.start_b()
    for _ in range(6):
        await pay(b, a, 15)
    await a.disconnect()
    channel = await setup.ledger.get_channel(channel_id(PUB_B, PUB_A))
    assert channel is not None
    assert channel.claimed == 90
    assert channel.capacity == 100000


async def test_claims_above_the_channel_capacity_secure_only_the_capacity(setup: Setup) -> None:
    a = await setup.start_a(maxUnsecured="1000")
    b = await setup.start_b(channelAmount="50")
    await pay(b, a, 80)
    assert await best_claim(a) == 50
    assert await unsecured(a) == 30


def _exchanged(plugin: Plugin) -> bool:
    """True once the plugin's claim exchange after connect has finished."""
    task = plugin._hooks.ctx.state.resync  # type: ignore[attr-defined]
    return task is None or bool(task.done())


async def _best_is(plugin: Plugin, value: int) -> bool:
    return await best_claim(plugin) == value


async def test_a_claim_lost_with_a_timed_out_fulfill_comes_with_its_redelivery(
    setup: Setup,
) -> None:
    """B's Fulfill times out (A's claim comes too late), B restarts; the re-sent Fulfill's
    Response carries the claim again. B2 does no claim exchange, so only that path can heal."""
    first = [True]

    async def slow_first_claim(ctx: Any, balance: str) -> Any:
        if first[0]:
            first[0] = False
            await asyncio.sleep(1.0)
        return await claim_module.create_outgoing_claim(ctx, balance)

    async def crash(ctx: Any) -> None:
        return None

    async def connect_without_exchange(ctx: Any) -> None:
        ctx.state.resync = None

    a = await setup.start_a(variant(create_outgoing_claim=slow_first_claim))
    b = await setup.start_b(variant(disconnect=crash), requestTimeout=0.5)
    with pytest.raises(FulfillmentPendingError):  # the Fulfill's answer came too late
        await pay(a, b, 40)
    assert await b.transfer_log.get_incoming_fulfilled() == "40"
    assert await best_claim(b) == 0
    await b.disconnect()
    b2 = await setup.start_b(variant(connect=connect_without_exchange))
    await wait_until(lambda: _best_is(b2, 40), "the claim of the re-sent Fulfill")
