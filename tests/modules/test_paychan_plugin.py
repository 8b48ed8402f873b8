"""make_payment_channel_plugin with a small module, two real plugins on loopback WebSockets.

The reference's channelSpec.js tests plus ours: hooks that raise or hang
never break the transfer flow, `ctx.rpc` both ways, module keys honoured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from ilp_paychan import Plugin, make_payment_channel_plugin
from ilp_paychan.errors import (
    InvalidFieldsError,
    NotAcceptedError,
    PeerError,
)
from ilp_paychan.ledger.on_demand import OnDemandStore
from ilp_paychan.plugin.module_hooks import PluginContext

from .helpers import (
    INFO,
    PREFIX,
    client_options,
    listener_port,
    make_transfer,
    pay,
    server_options,
)


class Dummy:
    """A module as a class instance; every call is recorded, behaviour switchable per test."""

    plugin_name = "dummy"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.claims: list[Any] = []
        self.refuse: Exception | None = None
        self.claim_error: Exception | None = None
        self.hang_claim = False
        self.hang_prepare = False
        self.hang_incoming_claim = False
        self.ctx: PluginContext | None = None
        self.opts: Any = None

    def constructor(self, ctx: PluginContext, opts: Any) -> None:
        self.ctx, self.opts = ctx, opts
        ctx.state.me, ctx.state.peer = opts["me"], opts["peer"]
        ctx.rpc.add_method("echo-protocol", lambda value: value + " back")
        ctx.rpc.add_method("nothing", lambda value: None)

    def get_info(self, ctx: PluginContext) -> dict[str, Any]:
        return dict(INFO)

    def get_account(self, ctx: PluginContext) -> str:
        return PREFIX + ctx.state.me

    def get_peer_account(self, ctx: PluginContext) -> str:
        return PREFIX + ctx.state.peer

    def get_auth_token(self, ctx: PluginContext) -> str:
        return "module-token"

    async def connect(self, ctx: PluginContext) -> None:
        self.calls.append(("connect", None))

    async def disconnect(self, ctx: PluginContext) -> None:
        self.calls.append(("disconnect", None))

    async def handle_incoming_prepare(self, ctx: PluginContext, transfer: dict[str, Any]) -> None:
        ifap = await ctx.transfer_log.get_incoming_fulfilled_and_prepared()
        self.calls.append(("prepare", (transfer, ifap)))
        if self.hang_prepare:
            await asyncio.Event().wait()
        if self.refuse is not None:
            raise self.refuse

    async def create_outgoing_claim(self, ctx: PluginContext, balance: str) -> Any:
        self.calls.append(("claim", balance))
        if self.claim_error is not None:
            raise self.claim_error
        if self.hang_claim:
            await asyncio.Event().wait()
        return {"foo": "bar", "balance": balance}

    async def handle_incoming_claim(self, ctx: PluginContext, claim: Any) -> None:
        if self.hang_incoming_claim:
            await asyncio.Event().wait()
        self.claims.append(claim)


@dataclass
class Pair:
    server: Plugin
    client: Plugin
    server_module: Dummy
    client_module: Dummy


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    server_module, client_module = Dummy(), Dummy()
    server = make_payment_channel_plugin(server_module)(
        server_options(me="server", peer="client", hookTimeout=0.3)
    )
    await server.connect()
    client = make_payment_channel_plugin(client_module)(
        client_options(listener_port(server), me="client", peer="server", hookTimeout=0.3)
    )
    await client.connect()
    try:
        yield Pair(server, client, server_module, client_module)
    finally:
        await client.disconnect()
        await server.disconnect()


def test_the_class_is_named_after_the_module_and_is_a_plugin() -> None:
    cls = make_payment_channel_plugin(Dummy())
    assert cls.__name__ == "PluginDummy"
    assert issubclass(cls, Plugin)


def test_a_module_without_a_store_is_refused_before_it_runs() -> None:
    module = Dummy()
    options = server_options(me="a", peer="b")
    del options["store"]
    with pytest.raises(InvalidFieldsError, match="stateless"):
        make_payment_channel_plugin(module)(options)
    assert module.ctx is None


def test_missing_hooks_are_named() -> None:
    module = SimpleNamespace(plugin_name="broken", get_info=lambda ctx: {})
    with pytest.raises(InvalidFieldsError, match="get_account, get_peer_account"):
        make_payment_channel_plugin(module)


def test_constructor_runs_inside_the_plugin_constructor_with_the_options() -> None:
    module = Dummy()
    options = server_options(me="a", peer="b", custom_option=[1])
    plugin = make_payment_channel_plugin(module)(options)
    assert module.ctx is not None
    assert module.opts["custom_option"] == [1]
    assert module.ctx.plugin is plugin
    assert vars(module.ctx.state) == {"me": "a", "peer": "b"}
    assert plugin.get_account() == PREFIX + "a"
    assert plugin.is_authorized("module-token")


@pytest.mark.parametrize("value", [0, -1, "soon", True])
def test_hook_timeouts_must_be_positive_numbers(value: object) -> None:
    with pytest.raises(InvalidFieldsError, match="hookTimeout"):
        make_payment_channel_plugin(Dummy())(server_options(me="a", peer="b", hookTimeout=value))


async def test_connect_and_disconnect_hooks_run_once(pair: Pair) -> None:
    await pair.client.connect()
    assert pair.client_module.calls.count(("connect", None)) == 1
    await pair.client.disconnect()
    await pair.client.disconnect()
    assert pair.client_module.calls.count(("disconnect", None)) == 1


async def test_a_failing_connect_hook_fails_connect_and_a_retry_works() -> None:
    module = Dummy()
    attempts: list[int] = []

    async def connect(ctx: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("no")

    module.connect = connect  # type: ignore[method-assign]
    plugin = make_payment_channel_plugin(module)(server_options(me="a", peer="b"))
    with pytest.raises(RuntimeError, match="no"):
        await plugin.connect()
    assert not plugin.is_connected()
    await plugin.connect()
    assert plugin.is_connected()
    await plugin.disconnect()


async def test_incoming_prepare_sees_the_transfer_already_counted(pair: Pair) -> None:
    transfer, _ = make_transfer(pair.server.get_account(), 5)
    await pair.client.send_transfer(transfer)
    ((_name, (seen, ifap)),) = [c for c in pair.server_module.calls if c[0] == "prepare"]
    assert seen["id"] == transfer["id"]
    assert seen["amount"] == "5"
    assert seen["from"] == PREFIX + "client"
    assert ifap == "5"


async def test_a_refused_prepare_is_cancelled_and_the_peer_gets_the_message(pair: Pair) -> None:
    pair.server_module.refuse = ValueError("no")
    transfer, _ = make_transfer(pair.server.get_account(), 5)
    with pytest.raises(PeerError) as refused:
        await pair.client.send_transfer(transfer)
    assert isinstance(refused.value, NotAcceptedError)
    assert "no" in str(refused.value)
    assert await pair.server.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
    assert await pair.client.transfer_log.get_outgoing_fulfilled_and_prepared() == "0"


async def test_a_hanging_prepare_hook_refuses_within_the_time_limit(pair: Pair) -> None:
    pair.server_module.hang_prepare = True
    transfer, _ = make_transfer(pair.server.get_account(), 5)
    with pytest.raises(NotAcceptedError, match="did not decide"):
        await pair.client.send_transfer(transfer)
    assert await pair.server.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
    await pay(pair.server, pair.client, 3)


async def test_claims_travel_with_the_fulfill_response(pair: Pair) -> None:
    await pay(pair.client, pair.server, 5)
    await pay(pair.client, pair.server, 7)
    claims = [c for c in pair.client_module.calls if c[0] == "claim"]
    assert claims == [("claim", "5"), ("claim", "12")]
    assert pair.server_module.claims == [
        {"foo": "bar", "balance": "5"},
        {"foo": "bar", "balance": "12"},
    ]


@pytest.mark.parametrize("failure", ["raises", "hangs"])
async def test_a_bad_claim_hook_never_breaks_the_fulfill(
    pair: Pair, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    if failure == "raises":
        pair.client_module.claim_error = RuntimeError("signer offline")
    else:
        pair.client_module.hang_claim = True
    with caplog.at_level(logging.ERROR):
        tid = await pay(pair.client, pair.server, 5)
    assert await pair.client.transfer_log.get_outgoing_fulfilled() == "5"
    assert (await pair.server.transfer_log.get(tid))["state"] == "fulfilled"
    assert pair.server_module.claims == []
    assert tid in caplog.text
    pair.client_module.claim_error, pair.client_module.hang_claim = None, False
    await pay(pair.client, pair.server, 1)
    assert pair.server_module.claims == [{"foo": "bar", "balance": "6"}]


async def test_a_hanging_incoming_claim_handler_is_cut_off_and_logged(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    pair.server_module.hang_incoming_claim = True
    with caplog.at_level(logging.ERROR):
        tid = await pay(pair.client, pair.server, 5)
    assert tid in caplog.text
    pair.server_module.hang_incoming_claim = False
    await pay(pair.client, pair.server, 1)
    assert pair.server_module.claims == [{"foo": "bar", "balance": "6"}]


async def test_rpc_calls_reach_the_peer_module_both_ways(pair: Pair) -> None:
    assert pair.client_module.ctx is not None
    assert pair.server_module.ctx is not None
    rpc_client, rpc_server = pair.client_module.ctx.rpc, pair.server_module.ctx.rpc
    assert await rpc_client.call("echo-protocol", PREFIX, "hello there") == "hello there back"
    assert await rpc_server.call("echo-protocol", PREFIX, "hi") == "hi back"
    assert await rpc_client.call("nothing", PREFIX, {}) is None
    with pytest.raises(PeerError, match="Unrecognized side protocol: nope"):
        await rpc_client.call("nope", PREFIX, {})


async def test_module_logs_have_their_own_key(pair: Pair) -> None:
    ctx = pair.server_module.ctx
    assert ctx is not None
    settlements = ctx.backend.get_transfer_log("incoming_settlements")
    await settlements.prepare({"id": "tx-1", "amount": "40"}, True)
    assert await settlements.get_incoming_fulfilled_and_prepared() == "40"
    assert await ctx.transfer_log.get_incoming_fulfilled_and_prepared() == "0"
    tracker = ctx.backend.get_max_value_tracker("best")
    await tracker.set_if_max({"value": "9", "data": {"x": 1}})
    assert await tracker.get_max() == {"value": "9", "data": {"x": 1}}
    with pytest.raises(ValueError, match="invalid key"):
        ctx.backend.get_transfer_log("not a key!")


def test_a_hook_timeout_the_peer_would_not_wait_for_is_refused() -> None:
    with pytest.raises(InvalidFieldsError, match="below requestTimeout"):
        make_payment_channel_plugin(Dummy())(
            server_options(me="a", peer="b", hookTimeout=5, requestTimeout=5)
        )


async def test_ledger_objects_from_the_constructor_follow_the_store(tmp_path: Any) -> None:
    """Handles taken in the constructor work before connect() (the durable store opens on their
    first call), while connected, and after disconnect() and connect() reopened the store."""
    module = Dummy()
    handles: dict[str, Any] = {}
    constructor = module.constructor

    def keep_handles(ctx: PluginContext, opts: Any) -> None:
        constructor(ctx, opts)
        handles["tracker"] = ctx.backend.get_max_value_tracker("best")
        handles["log"] = ctx.backend.get_transfer_log({"key": "side", "maximum": "10"})

    module.constructor = keep_handles  # type: ignore[method-assign]
    plugin = make_payment_channel_plugin(module)(
        server_options(me="a", peer="b", store=f"sqlite:///{tmp_path / 'a.db'}")
    )
    assert (await handles["tracker"].get_max())["value"] == "0"
    await handles["tracker"].set_if_max({"value": "3", "data": None})
    assert await module.ctx.transfer_log.get_balance() == "0"  # type: ignore[union-attr]
    await plugin.connect()
    assert (await handles["tracker"].get_max())["value"] == "3"
    await handles["tracker"].set_if_max({"value": "7", "data": None})
    await handles["log"].prepare({"id": "x", "amount": "10"}, True)
    with pytest.raises(NotAcceptedError):
        await handles["log"].prepare({"id": "y", "amount": "1"}, True)
    await plugin.disconnect()
    assert await handles["log"].get_incoming_fulfilled_and_prepared() == "10"
    await plugin.connect()
    assert (await handles["tracker"].get_max())["value"] == "7"
    assert await handles["log"].get_incoming_fulfilled_and_prepared() == "10"
    assert await module.ctx.transfer_log.get_balance() == "0"  # type: ignore[union-attr]
    await plugin.disconnect()


async def test_ctx_backend_works_in_a_module_that_never_connects(tmp_path: Any) -> None:
    """The module's ledger objects read and write before connect(); the durable store opened by
    that first use stays open until disconnect(), which closes it without a connect()."""
    module = Dummy()
    plugin = make_payment_channel_plugin(module)(
        server_options(me="a", peer="b", store=f"sqlite:///{tmp_path / 'a.db'}")
    )
    ctx = module.ctx
    assert ctx is not None
    store = plugin.backend.store
    assert isinstance(store, OnDemandStore)
    assert not store.is_open
    side = ctx.backend.get_transfer_log("side")
    await side.prepare({"id": "x", "amount": "4"}, True)
    await ctx.backend.get_max_value_tracker("best").set_if_max({"value": "9", "data": None})
    assert await ctx.transfer_log.get_balance() == "0"
    assert store.is_open
    await plugin.disconnect()
    assert not store.is_open
    assert module.calls == []  # the module's disconnect hook runs only after a connect()
    assert await side.get_incoming_fulfilled_and_prepared() == "4"
    tracker = ctx.backend.get_max_value_tracker("best")
    assert (await tracker.get_max())["value"] == "9"
    await plugin.disconnect()
    assert not store.is_open


async def test_a_failing_disconnect_hook_fails_disconnect_after_closing() -> None:
    module = Dummy()

    async def disconnect(ctx: Any) -> None:
        raise RuntimeError("could not cash in")

    module.disconnect = disconnect  # type: ignore[method-assign]
    plugin = make_payment_channel_plugin(module)(server_options(me="a", peer="b"))
    await plugin.connect()
    with pytest.raises(RuntimeError, match="could not cash in"):
        await plugin.disconnect()
    assert not plugin.is_connected()
    await plugin.connect()
    assert plugin.is_connected()
    with pytest.raises(RuntimeError):
        await plugin.disconnect()


def test_hook_timeouts_take_snake_case_keywords_too() -> None:
    cls = make_payment_channel_plugin(Dummy())
    plugin = cls(server_options(me="a", peer="b"), hook_timeout=0.5, lifecycle_hook_timeout=3)
    hooks = plugin._hooks  # type: ignore[attr-defined]
    assert (hooks.hook_timeout, hooks.lifecycle_timeout) == (0.5, 3.0)
