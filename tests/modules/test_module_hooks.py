"""ModuleHooks: a user's module behind the plugin's SettlementHooks (sync or async hooks, time
limits, error isolation). Unit tests with a real in-memory backend and no plugin."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from ilp_paychan.codec.btp import ContentType, Message, ProtocolData
from ilp_paychan.errors import DuplicateIdError, InvalidFieldsError, NotAcceptedError
from ilp_paychan.ledger import Backend, open_backend
from ilp_paychan.plugin.module_hooks import (
    ModuleHooks,
    PluginContext,
    load_module,
    plugin_class_name,
)
from ilp_paychan.plugin.rpc import CustomRpc

TRANSFER = {"id": "5c8dd5a4-4c3b-4a5b-9c1e-0b36d8f6f2a1", "amount": "5"}


def minimal_module(**hooks: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "plugin_name": "dummy",
        "get_info": lambda ctx: {"prefix": "x.", "currencyScale": 2},
        "get_account": lambda ctx: "x.me",
        "get_peer_account": lambda ctx: "x.peer",
        "create_outgoing_claim": lambda ctx, balance: {"balance": balance},
        "handle_incoming_claim": lambda ctx, claim: None,
    }
    base.update(hooks)
    return SimpleNamespace(**base)


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    backend = await open_backend("memory:")
    yield backend
    await backend.close()


def make_hooks(module: object, backend: Backend, timeout: float = 2.0) -> ModuleHooks:
    ctx = PluginContext(
        SimpleNamespace(), CustomRpc(), backend, backend.get_transfer_log(), plugin=None
    )
    return ModuleHooks(load_module(module), ctx, hook_timeout=timeout, lifecycle_timeout=timeout)


async def hang(*_: Any) -> None:
    await asyncio.Event().wait()


def test_class_name_capitalises_each_word() -> None:
    assert plugin_class_name("xrp-paychan") == "PluginXrpPaychan"
    assert plugin_class_name("dummy") == "PluginDummy"
    assert plugin_class_name("ETH") == "PluginEth"


def test_missing_required_hooks_are_all_named() -> None:
    module = minimal_module()
    del module.get_account, module.handle_incoming_claim
    with pytest.raises(InvalidFieldsError, match="get_account, handle_incoming_claim"):
        load_module(module)


def test_javascript_style_names_get_a_hint() -> None:
    module = minimal_module()
    del module.create_outgoing_claim
    module.createOutgoingClaim = lambda ctx, balance: None
    with pytest.raises(InvalidFieldsError, match="createOutgoingClaim: use snake_case"):
        load_module(module)


@pytest.mark.parametrize("name", [None, "", 5])
def test_plugin_name_must_be_a_string(name: object) -> None:
    with pytest.raises(InvalidFieldsError, match="plugin_name"):
        load_module(minimal_module(plugin_name=name))


def test_a_mapping_is_a_module_too() -> None:
    spec = load_module(vars(minimal_module()))
    assert spec.class_name == "PluginDummy"


def test_a_hook_that_is_not_callable_is_refused() -> None:
    with pytest.raises(InvalidFieldsError, match="hook connect must be callable"):
        load_module(minimal_module(connect="yes"))


async def test_sync_hooks_must_not_be_async(backend: Backend) -> None:
    async def get_account(ctx: Any) -> str:
        return "x.me"

    hooks = make_hooks(minimal_module(get_account=get_account), backend)
    with pytest.raises(InvalidFieldsError, match="get_account must be synchronous"):
        hooks.get_account()


async def test_constructor_gets_the_context_and_the_options_as_given(backend: Backend) -> None:
    seen: list[Any] = []

    def constructor(ctx: PluginContext, opts: dict[str, Any]) -> None:
        ctx.state.ready = True
        seen.append(opts)

    hooks = make_hooks(minimal_module(constructor=constructor), backend)
    options = {"maxBalance": "10", "extra": object()}
    hooks.construct(options)
    assert seen[0] is options
    assert hooks.ctx.state.ready is True


async def test_get_info_is_a_copy_the_caller_may_change(backend: Backend) -> None:
    info = {"prefix": "x.", "connectors": ["x.a"]}
    hooks = make_hooks(minimal_module(get_info=lambda ctx: info), backend)
    copy = hooks.get_info()
    assert copy == info
    assert copy is not None
    copy["connectors"].append("x.b")
    assert info["connectors"] == ["x.a"]


async def test_connect_runs_once_and_its_error_fails_connect(backend: Backend) -> None:
    calls: list[int] = []

    async def connect(ctx: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("no")

    hooks = make_hooks(minimal_module(connect=connect), backend)
    with pytest.raises(RuntimeError, match="no"):
        await hooks.connect()
    await hooks.connect()
    await hooks.connect()
    assert len(calls) == 2


async def test_a_hanging_connect_fails_after_the_time_limit(backend: Backend) -> None:
    hooks = make_hooks(minimal_module(connect=hang), backend, timeout=0.05)
    with pytest.raises(NotAcceptedError, match="did not connect"):
        await hooks.connect()


async def test_disconnect_runs_once_per_connection_and_its_error_is_raised(
    backend: Backend,
) -> None:
    calls: list[int] = []

    def disconnect(ctx: Any) -> None:
        calls.append(1)
        raise RuntimeError("ledger down")

    hooks = make_hooks(minimal_module(disconnect=disconnect), backend)
    await hooks.disconnect()
    assert calls == []
    await hooks.connect()
    with pytest.raises(RuntimeError, match="ledger down"):
        await hooks.disconnect()
    await hooks.disconnect()
    assert calls == [1]


async def test_a_hanging_disconnect_fails_after_the_time_limit(backend: Backend) -> None:
    hooks = make_hooks(minimal_module(disconnect=hang), backend, timeout=0.05)
    await hooks.connect()
    with pytest.raises(NotAcceptedError, match="did not disconnect"):
        await hooks.disconnect()


async def test_incoming_prepare_refusal_keeps_the_message_not_the_class(backend: Backend) -> None:
    def refuse(ctx: Any, transfer: dict[str, Any]) -> None:
        raise ValueError("no")

    hooks = make_hooks(minimal_module(handle_incoming_prepare=refuse), backend)
    with pytest.raises(NotAcceptedError, match=r"^no$"):
        await hooks.handle_incoming_prepare(dict(TRANSFER))


async def test_incoming_prepare_refusal_keeps_a_plugin_error(backend: Backend) -> None:
    async def refuse(ctx: Any, transfer: dict[str, Any]) -> None:
        raise DuplicateIdError("dup")

    hooks = make_hooks(minimal_module(handle_incoming_prepare=refuse), backend)
    with pytest.raises(DuplicateIdError):
        await hooks.handle_incoming_prepare(dict(TRANSFER))


async def test_a_hanging_incoming_prepare_refuses_the_transfer(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = make_hooks(minimal_module(handle_incoming_prepare=hang), backend, timeout=0.05)
    with caplog.at_level(logging.WARNING), pytest.raises(NotAcceptedError, match="did not decide"):
        await hooks.handle_incoming_prepare(dict(TRANSFER))
    assert TRANSFER["id"] in caplog.text


async def test_incoming_prepare_gets_a_copy_of_the_transfer(backend: Backend) -> None:
    def mutate(ctx: Any, transfer: dict[str, Any]) -> None:
        transfer["amount"] = "999"

    hooks = make_hooks(minimal_module(handle_incoming_prepare=mutate), backend)
    transfer = dict(TRANSFER)
    await hooks.handle_incoming_prepare(transfer)
    assert transfer["amount"] == "5"


async def test_outgoing_claim_of_a_sync_or_async_hook(backend: Backend) -> None:
    async def create(ctx: Any, balance: str) -> dict[str, str]:
        return {"async": balance}

    assert await make_hooks(minimal_module(), backend).create_outgoing_claim("5") == {
        "balance": "5"
    }
    hooks = make_hooks(minimal_module(create_outgoing_claim=create), backend)
    assert await hooks.create_outgoing_claim("7") == {"async": "7"}


@pytest.mark.parametrize(
    ("kind", "why"),
    [("raises", "signer offline"), ("hangs", "longer than"), ("not-json", "not JSON")],
)
async def test_a_bad_outgoing_claim_becomes_a_clear_error(
    backend: Backend, kind: str, why: str
) -> None:
    async def raises(ctx: Any, balance: str) -> None:
        raise RuntimeError("signer offline")

    hook = {"raises": raises, "hangs": hang, "not-json": lambda ctx, b: {"x": object()}}[kind]
    hooks = make_hooks(minimal_module(create_outgoing_claim=hook), backend, timeout=0.05)
    with pytest.raises(NotAcceptedError, match=why):
        await hooks.create_outgoing_claim("5")


@pytest.mark.parametrize(("kind", "why"), [("raises", "bad claim"), ("hangs", "longer than")])
async def test_a_bad_incoming_claim_handler_becomes_a_clear_error(
    backend: Backend, kind: str, why: str
) -> None:
    def raises(ctx: Any, claim: Any) -> None:
        raise RuntimeError("bad claim")

    hook = {"raises": raises, "hangs": hang}[kind]
    hooks = make_hooks(minimal_module(handle_incoming_claim=hook), backend, timeout=0.05)
    with pytest.raises(NotAcceptedError, match=why):
        await hooks.handle_incoming_claim({"x": 1})


async def test_side_protocols_reach_the_module_methods(backend: Backend) -> None:
    hooks = make_hooks(minimal_module(), backend)
    hooks.ctx.rpc.add_method("echo-protocol", lambda value: value + " back")
    message = Message(
        9, (ProtocolData("echo-protocol", ContentType.APPLICATION_JSON, b'"hello there"'),)
    )
    response = await hooks.handle_side_protocols(message)
    assert response is not None
    assert json.loads(response.protocol_data[0].data) == "hello there back"


async def test_a_failing_or_hanging_rpc_method_is_a_clean_refusal(backend: Backend) -> None:
    hooks = make_hooks(minimal_module(), backend, timeout=0.05)

    def fails(value: Any) -> None:
        raise KeyError("boom")

    hooks.ctx.rpc.add_method("fails", fails)
    hooks.ctx.rpc.add_method("hangs", hang)
    for name in ("fails", "hangs"):
        message = Message(1, (ProtocolData(name, ContentType.APPLICATION_JSON, b"1"),))
        with pytest.raises(NotAcceptedError):
            await hooks.handle_side_protocols(message)


async def test_a_modules_own_timeout_error_is_not_taken_for_an_overrun(backend: Backend) -> None:
    async def own_timeout(ctx: Any, transfer: Any) -> None:
        raise TimeoutError("ledger timed out")

    hooks = make_hooks(minimal_module(handle_incoming_prepare=own_timeout), backend)
    with pytest.raises(NotAcceptedError, match="ledger timed out"):
        await hooks.handle_incoming_prepare(dict(TRANSFER))
