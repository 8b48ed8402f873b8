"""The durable trustline on v2 (`BtpPlugin(balance=..., store=...)`) over real loopback links:
limits (T04 with the amounts), one balance move per fulfilled packet, identical Prepares
answered once, rejects releasing, settlement with `send_money`, options refused by name."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.codec import ilp4
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.v2.plugin import BtpPlugin
from ilp_paychan.v2.trustline import MAXIMUM_MESSAGE, Trustline

from .conftest import Pair, eventually, fulfill, prepare
from .trustline_helpers import balance_of, trustline_of


def packet(amount: int) -> bytes:
    """A Prepare of `amount` unlike any other (random data)."""
    return prepare(amount, data=os.urandom(8))


def fulfiller(calls: list[bytes]) -> Any:
    async def handler(data: bytes) -> bytes:
        calls.append(data)
        return fulfill()

    return handler


async def rejecter(data: bytes) -> bytes:
    return ilp4.encode_reject(ilp4.IlpReject("F99", "test.peer", "no thanks"))


def test_options_are_refused_by_name() -> None:
    base = {"listener": {"port": 0, "secret": "s"}}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"balance": {"minimum": "-5"}}, "balance.maximum"),
        ({"balance": {"maximum": 10}}, "balance.maximum"),
        ({"balance": {"maximum": "1.5"}}, "balance.maximum"),
        ({"balance": {"maximum": "10", "minimum": "20"}}, "balance.minimum"),
        (
            {"balance": {"maximum": "10", "settleThreshold": "5", "settleTo": "0"}},
            "settleThreshold",
        ),
        ({"balance": {"maximum": "10", "settleThreshold": "-5", "settleTo": "20"}}, "settleTo"),
        (
            {"balance": {"maximum": "10", "minimum": "-5", "settleThreshold": "-9"}},
            "settleThreshold",
        ),
        ({"balance": {"maximum": "10", "settle_limit": "1"}}, "balance.settle_limit"),
        ({"store": "redis://x"}, "store"),
        ({"store": 5}, "store"),
        ({"storeKey": "k"}, "storeKey"),
        ({"store": "memory:", "storeKey": "a b"}, "storeKey"),
        ({"store": "memory:", "settlement": object()}, "settlement"),
    ]
    for extra, field in cases:
        with pytest.raises(InvalidFieldsError, match=field):
            BtpPlugin({**base, **extra})


def test_options_snake_case_and_defaults(tmp_path: Path) -> None:
    plugin = BtpPlugin(
        listener={"port": 0, "secret": "s"},
        balance={"maximum": "Infinity", "settle_threshold": "-10", "settle_to": "5"},
        store=str(tmp_path / "t.db"),
        store_key="alice",
    )
    settings = plugin.settings.trustline
    assert settings is not None
    assert settings.balance is not None
    assert (settings.balance.maximum, settings.balance.minimum) == (None, None)
    assert (settings.balance.settle_threshold, settings.balance.settle_to) == (-10, 5)
    assert settings.store.startswith("sqlite:///")
    assert settings.store_key == "alice"
    assert isinstance(plugin.accounting, Trustline)
    assert BtpPlugin(listener={"port": 0, "secret": "s"}).accounting is None


async def test_incoming_over_maximum_is_t04_with_the_amounts(pair: Pair) -> None:
    await pair.start({"balance": {"maximum": "100"}}, {"store": "memory:"})
    calls: list[bytes] = []
    pair.server.register_data_handler(fulfiller(calls))
    first = await pair.client.send_data(packet(60))
    assert first[0] == ilp4.TYPE_FULFILL
    second = ilp4.decode_reply(await pair.client.send_data(packet(60)))
    assert isinstance(second, ilp4.IlpReject)
    assert second.code == "T04"
    assert second.message == MAXIMUM_MESSAGE
    assert json.loads(second.data) == {"balance": "60", "amount": "60", "maximum": "100"}
    assert len(calls) == 1
    assert (await balance_of(pair.server))["balance"] == "60"
    assert (await balance_of(pair.client))["balance"] == "-60"
    assert (await pair.client.send_data(packet(40)))[0] == ilp4.TYPE_FULFILL


async def test_outgoing_below_minimum_is_refused_locally(pair: Pair) -> None:
    await pair.start({"store": "memory:"}, {"balance": {"maximum": "0", "minimum": "-100"}})
    calls: list[bytes] = []
    pair.server.register_data_handler(fulfiller(calls))
    assert (await pair.client.send_data(packet(60)))[0] == ilp4.TYPE_FULFILL
    refused = ilp4.decode_reply(await pair.client.send_data(packet(60)))
    assert isinstance(refused, ilp4.IlpReject)
    assert refused.code == "T04"
    assert refused.message == "insufficient funds. oldBalance=-60 proposedBalance=-120"
    assert json.loads(refused.data)["minimum"] == "-100"
    assert len(calls) == 1, "a refused Prepare never reaches the peer"
    assert (await balance_of(pair.client))["outgoingPrepared"] == "0"


async def test_held_amounts_count_against_the_limit(pair: Pair) -> None:
    await pair.start({"balance": {"maximum": "100"}}, {"store": "memory:"})
    release = asyncio.Event()

    async def slow(data: bytes) -> bytes:
        await release.wait()
        return fulfill()

    pair.server.register_data_handler(slow)
    held = asyncio.ensure_future(pair.client.send_data(packet(70)))
    await eventually(lambda: bool(trustline_of(pair.server)._handling), "the first is held")
    assert (await balance_of(pair.server))["incomingPrepared"] == "70"
    refused = ilp4.decode_reply(await pair.client.send_data(packet(70)))
    assert isinstance(refused, ilp4.IlpReject)
    assert refused.code == "T04"
    release.set()
    assert (await held)[0] == ilp4.TYPE_FULFILL
    server = await balance_of(pair.server)
    assert (server["balance"], server["incomingPrepared"]) == ("70", "0")


async def test_identical_prepare_moves_the_balance_once(pair: Pair) -> None:
    await pair.start({"store": "memory:"}, {"store": "memory:"})
    calls: list[bytes] = []
    pair.server.register_data_handler(fulfiller(calls))
    same = packet(25)
    first = await pair.client.send_data(same)
    again = await pair.client.send_data(same)
    assert first[0] == again[0] == ilp4.TYPE_FULFILL
    assert ilp4.decode_fulfill(again).fulfillment == ilp4.decode_fulfill(first).fulfillment
    assert len(calls) == 1, "the repeat is answered from the ledger"
    assert (await balance_of(pair.server))["balance"] == "25"
    assert (await balance_of(pair.client))["balance"] == "-25"


async def test_identical_prepares_at_once_are_answered_alike(pair: Pair) -> None:
    await pair.start({"store": "memory:"}, None)
    calls: list[bytes] = []

    async def slow(data: bytes) -> bytes:
        calls.append(data)
        await asyncio.sleep(0.05)
        return fulfill()

    pair.server.register_data_handler(slow)
    same = packet(5)
    replies = await asyncio.gather(*(pair.client.send_data(same) for _ in range(3)))
    assert all(reply[0] == ilp4.TYPE_FULFILL for reply in replies)
    assert len(calls) == 1
    assert (await balance_of(pair.server))["balance"] == "5"


async def test_reject_releases_the_hold(pair: Pair) -> None:
    await pair.start(
        {"balance": {"maximum": "50"}}, {"balance": {"maximum": "0", "minimum": "-50"}}
    )
    pair.server.register_data_handler(rejecter)
    for _ in range(5):
        reply = ilp4.decode_reply(await pair.client.send_data(packet(50)))
        assert isinstance(reply, ilp4.IlpReject)
        assert reply.code == "F99"
    for plugin in (pair.server, pair.client):
        state = await balance_of(plugin)
        assert state == {
            "balance": "0",
            "incomingPrepared": "0",
            "outgoingPrepared": "0",
            "moneySent": "0",
            "moneyReceived": "0",
        }


async def test_zero_amounts_and_no_handler_keep_nothing(pair: Pair) -> None:
    await pair.start({"balance": {"maximum": "10"}}, {"store": "memory:"})
    reply = ilp4.decode_reply(await pair.client.send_data(packet(0)))
    assert isinstance(reply, ilp4.IlpReject)
    assert reply.code == "F02"
    assert (await balance_of(pair.server))["incomingPrepared"] == "0"
    assert (await balance_of(pair.client))["outgoingPrepared"] == "0"


async def test_settlement_at_the_threshold_with_send_money(pair: Pair) -> None:
    await pair.start(
        {"balance": {"maximum": "1000"}},
        {
            "balance": {
                "maximum": "100",
                "minimum": "-200",
                "settleThreshold": "-50",
                "settleTo": "0",
            }
        },
    )
    calls: list[bytes] = []
    pair.server.register_data_handler(fulfiller(calls))
    received: list[str] = []

    async def on_money(amount: str) -> None:
        received.append(amount)

    pair.server.register_money_handler(on_money)
    for _ in range(2):
        assert (await pair.client.send_data(packet(30)))[0] == ilp4.TYPE_FULFILL
    await eventually(lambda: received == ["60"], "the client settles its 60")
    client = await balance_of(pair.client)
    server = await balance_of(pair.server)
    assert client["balance"] == "0"
    assert server["balance"] == "0"
    assert client["moneySent"] == server["moneyReceived"] == "60"
    assert (await pair.client.send_data(packet(40)))[0] == ilp4.TYPE_FULFILL
    await asyncio.sleep(0.3)
    assert received == ["60"], "40 owed is above the threshold: no settlement"
    assert int((await balance_of(pair.client))["balance"]) == -int(
        (await balance_of(pair.server))["balance"]
    )


async def test_send_money_by_hand_moves_both_balances(pair: Pair) -> None:
    await pair.start({"store": "memory:"}, {"store": "memory:"})
    await pair.client.send_money("123")
    assert (await balance_of(pair.client))["balance"] == "123"
    assert (await balance_of(pair.server))["balance"] == "-123"


async def test_money_over_the_minimum_is_refused(pair: Pair) -> None:
    await pair.start({"balance": {"maximum": "10", "minimum": "-10"}}, {"store": "memory:"})
    with pytest.raises(Exception, match="exceeds"):
        await pair.client.send_money("11")
    for plugin in (pair.client, pair.server):
        state = await balance_of(plugin)
        assert (state["balance"], state["incomingPrepared"], state["outgoingPrepared"]) == (
            "0",
            "0",
            "0",
        )
