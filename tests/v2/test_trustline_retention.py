"""How long a trustline keeps settled packets, and what a repeat of a forgotten one gets.

On `memory:` a settled packet is kept packed (`ledger.packet_memory`) until its expiry plus
`settledRetention` (10 s by default): a repeat of its Prepare within that window gets the same
Fulfill without the data handler being asked again, an expired repeat is refused R00 before it
is looked up (never held again), and the kept packets are those of the window (structure
sizes, no RSS and no timing). Real BtpPlugin pairs on loopback.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ilp_paychan.codec import ilp4
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger.packet_memory import PacketMemoryStore
from ilp_paychan.v2.plugin import BtpPlugin
from ilp_paychan.v2.trustline import Trustline
from ilp_paychan.v2.trustline_options import (
    DEFAULT_DURABLE_RETENTION,
    DEFAULT_MEMORY_RETENTION,
    parse_trustline_settings,
)

from .conftest import CONDITION, Pair, fulfill
from .trustline_helpers import balance_of, trustline_of

BALANCE = {"maximum": "1000000", "minimum": "-1000000"}


def prepare_at(expires: datetime, amount: int = 10, data: bytes | None = None) -> bytes:
    """An encoded Prepare with a given expiry (random data unless given)."""
    return ilp4.encode_prepare(
        ilp4.IlpPrepare(amount, expires, CONDITION, "test.peer.bob", data or os.urandom(8))
    )


def counting_fulfiller(calls: list[bytes]) -> Any:
    async def handler(data: bytes) -> bytes:
        calls.append(data)
        return fulfill(b"first")

    return handler


def store_of(trustline: Trustline) -> PacketMemoryStore:
    backend = trustline._backend
    assert backend is not None
    store = backend.store
    assert isinstance(store, PacketMemoryStore)
    return store


def kept(trustline: Trustline) -> tuple[int, int]:
    """(full records, packed settled packets) of the trustline's packet log."""
    store = store_of(trustline)
    key = trustline.settings.store_key
    packed = store.packed(key)
    return len(store._transfers.get(key, {})), 0 if packed is None else len(packed)


async def wait_past(expires: datetime) -> None:
    """Sleep (bounded) until the wall clock is past `expires`."""
    for _ in range(500):
        if datetime.now(UTC) > expires:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the clock never passed the expiry")


def test_retention_defaults_and_refusals() -> None:
    memory = parse_trustline_settings({"balance": BALANCE})
    assert memory is not None
    assert memory.settled_retention == DEFAULT_MEMORY_RETENTION
    disk = parse_trustline_settings({"store": "sqlite:///tmp/x.db"})
    assert disk is not None
    assert disk.settled_retention == DEFAULT_DURABLE_RETENTION
    given = parse_trustline_settings({"balance": BALANCE, "settledRetention": 2})
    assert given is not None
    assert given.settled_retention == 2.0
    for bad in (-1, "10", True, float("nan"), float("inf"), 2e9):
        with pytest.raises(InvalidFieldsError, match="settledRetention"):
            parse_trustline_settings({"balance": BALANCE, "settledRetention": bad})
    with pytest.raises(InvalidFieldsError, match="settledRetention"):
        parse_trustline_settings({"settledRetention": 5})
    plugin = BtpPlugin(listener={"port": 0, "secret": "s"}, balance=BALANCE, settled_retention=30)
    assert trustline_of(plugin).settings.settled_retention == 30.0


async def test_a_repeat_within_the_window_gets_the_same_fulfill_from_the_packed_record(
    pair: Pair,
) -> None:
    await pair.start({"balance": BALANCE})
    calls: list[bytes] = []
    pair.server.register_data_handler(counting_fulfiller(calls))
    trustline = trustline_of(pair.server)
    packet = prepare_at(datetime.now(UTC) + timedelta(seconds=30), amount=7)
    first = await pair.client.send_data(packet)
    assert first == fulfill(b"first")
    assert kept(trustline) == (0, 1)  # packed once settled, nothing kept whole
    again = ilp4.decode_reply(await pair.client.send_data(packet))
    assert isinstance(again, ilp4.IlpFulfill)
    assert again.fulfillment == ilp4.decode_fulfill(first).fulfillment
    assert len(calls) == 1  # answered from the store, not by the handler
    assert (await balance_of(pair.server))["balance"] == "7"
    assert (await balance_of(pair.server))["incomingPrepared"] == "0"


async def test_an_expired_repeat_is_refused_and_never_held_again(pair: Pair) -> None:
    await pair.start({"balance": BALANCE})
    calls: list[bytes] = []
    pair.server.register_data_handler(counting_fulfiller(calls))
    server, client = trustline_of(pair.server), pair.client
    expires = datetime.now(UTC) + timedelta(seconds=0.5)
    packet = prepare_at(expires, amount=5)
    assert ilp4.decode_reply(await client.send_data(packet)) == ilp4.decode_fulfill(
        fulfill(b"first")
    )
    await wait_past(expires + timedelta(seconds=1))  # past its expiry's (1 s) table too
    # Forgotten by the listener (a pass with no retention, the link up long enough).
    server._up_since = asyncio.get_running_loop().time() - 3600
    assert await server._prune(0.0) == 1
    assert kept(server) == (0, 0)
    # The repeat reaches the listener as if its client had sent it (the client's own
    # send_data would refuse it before sending, being expired).
    reply = await pair.server._on_prepare(packet)
    refused = ilp4.decode_reply(reply)
    assert isinstance(refused, ilp4.IlpReject)
    assert refused.code == "R00"
    assert len(calls) == 1
    balance = await balance_of(pair.server)
    assert (balance["balance"], balance["incomingPrepared"]) == ("5", "0")
    assert kept(server) == (0, 0)


async def test_our_own_expired_repeat_is_refused_before_it_is_looked_up(pair: Pair) -> None:
    await pair.start(client_options={"balance": BALANCE})
    calls: list[bytes] = []
    pair.server.register_data_handler(counting_fulfiller(calls))
    ours = trustline_of(pair.client)
    expires = datetime.now(UTC) + timedelta(seconds=0.5)
    packet = prepare_at(expires, amount=3)
    assert (await pair.client.send_data(packet)) == fulfill(b"first")
    await wait_past(expires)
    refused = ilp4.decode_reply(await pair.client.send_data(packet))
    assert isinstance(refused, ilp4.IlpReject)
    assert refused.code == "R00"
    assert "expired before it was sent" in refused.message
    balance = await balance_of(pair.client)
    assert (balance["balance"], balance["outgoingPrepared"]) == ("-3", "0")
    assert ours._unresolved == {}
    assert ours._tell == {}
    assert len(calls) == 1


async def test_the_watermark_refuses_what_may_have_been_forgotten(pair: Pair) -> None:
    """Should the clock be set back, a Prepare expiring before the last pass's cutoff is still
    refused: its record may be gone, and it must not be held a second time."""
    await pair.start({"balance": BALANCE})
    calls: list[bytes] = []
    pair.server.register_data_handler(counting_fulfiller(calls))
    server = trustline_of(pair.server)
    server._pruned_before = datetime.now(UTC) + timedelta(seconds=20)
    reply = await pair.client.send_data(prepare_at(datetime.now(UTC) + timedelta(seconds=10)))
    refused = ilp4.decode_reply(reply)
    assert isinstance(refused, ilp4.IlpReject)
    assert refused.code == "R00"
    assert calls == []
    assert (await balance_of(pair.server))["incomingPrepared"] == "0"


async def test_nothing_is_forgotten_until_the_link_has_been_up_long_enough(pair: Pair) -> None:
    """A verdict the peer could not send while the link was down comes when it is back; the
    packet it is about must still be there."""
    await pair.start({"balance": BALANCE})
    pair.server.register_data_handler(counting_fulfiller([]))
    server = trustline_of(pair.server)
    expires = datetime.now(UTC) + timedelta(seconds=0.3)
    await pair.client.send_data(prepare_at(expires))
    await wait_past(expires + timedelta(seconds=1))
    loop = asyncio.get_running_loop()
    server._up_since = None  # the link is down
    assert await server._prune(0.0) == 0
    server._up_since = loop.time()  # just came back
    assert await server._prune(5.0) == 0
    assert kept(server) == (0, 1)
    server._up_since = loop.time() - 6.0
    assert await server._prune(0.0) == 1


async def test_memory_holds_only_the_packets_of_the_window(pair: Pair) -> None:
    """Many packets, most of them past their window: what the listener keeps per packet (its
    store's records, the trustline's tables) is what is still in the window, nothing else."""
    await pair.start({"balance": BALANCE})
    pair.server.register_data_handler(counting_fulfiller([]))
    server = trustline_of(pair.server)
    old_expiry = datetime.now(UTC) + timedelta(seconds=0.5)
    batch = 50
    for _ in range(6):
        await asyncio.gather(
            *(pair.client.send_data(prepare_at(old_expiry, amount=1)) for _ in range(batch))
        )
    young = 20
    await asyncio.gather(
        *(
            pair.client.send_data(prepare_at(datetime.now(UTC) + timedelta(seconds=60), amount=1))
            for _ in range(young)
        )
    )
    assert kept(server) == (0, 6 * batch + young)
    await wait_past(old_expiry + timedelta(seconds=1))  # past their (1 s) bucket too
    server._up_since = asyncio.get_running_loop().time() - 3600
    assert await server._prune(0.0) == 6 * batch
    assert kept(server) == (0, young)
    packed = store_of(server).packed(server.settings.store_key)
    assert packed is not None
    assert packed.tables() == 1
    assert server._handling == {}
    assert server._keys == {}
    assert server._unresolved == {}
    assert (await balance_of(pair.server))["balance"] == str(6 * batch + young)
