"""Options of a module plugin: the module's own keys reach its constructor; typos of the plugin's
keys do not; a module that declares `option_names` gets every other key refused."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from ilp_paychan import make_payment_channel_plugin
from ilp_paychan.errors import InvalidFieldsError

from .helpers import INFO, PREFIX, server_options


def module(seen: list[Any], **extra: Any) -> SimpleNamespace:
    def constructor(ctx: Any, opts: Any) -> None:
        seen.append(dict(opts))

    return SimpleNamespace(
        plugin_name="optioned",
        constructor=constructor,
        get_info=lambda ctx: dict(INFO),
        get_account=lambda ctx: PREFIX + "me",
        get_peer_account=lambda ctx: PREFIX + "peer",
        create_outgoing_claim=lambda ctx, balance: None,
        handle_incoming_claim=lambda ctx, claim: None,
        **extra,
    )


def test_undeclared_module_options_reach_the_constructor() -> None:
    seen: list[Any] = []
    make_payment_channel_plugin(module(seen))(server_options(maxUnsecured="5", channel="c1"))
    assert (seen[0]["maxUnsecured"], seen[0]["channel"]) == ("5", "c1")


def test_a_typo_of_a_plugin_option_is_refused_before_the_module_runs() -> None:
    seen: list[Any] = []
    with pytest.raises(InvalidFieldsError) as caught:
        make_payment_channel_plugin(module(seen))(server_options(minBalence="-5"))
    assert str(caught.value) == (
        "unknown option 'minBalence' (did you mean 'minBalance'?); a payment-channel module "
        "that reads 'minBalence' itself can declare it in its option_names"
    )
    assert seen == []


def test_declared_option_names_are_the_only_extra_keys() -> None:
    seen: list[Any] = []
    cls = make_payment_channel_plugin(module(seen, option_names=("maxUnsecured",)))
    cls(server_options(maxUnsecured="5", hookTimeout=1))
    assert seen[0]["maxUnsecured"] == "5"
    with pytest.raises(InvalidFieldsError) as caught:
        cls(server_options(maxUnsecure="5"))
    assert str(caught.value) == "unknown option 'maxUnsecure' (did you mean 'maxUnsecured'?)"


@pytest.mark.parametrize("names", ["maxUnsecured", [1, 2], 5])
def test_option_names_must_be_a_collection_of_strings(names: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="option_names must be a collection of strings"):
        make_payment_channel_plugin(module([], option_names=names))


def test_a_module_without_a_store_is_refused_with_one_message() -> None:
    options = server_options()
    del options["store"]
    with pytest.raises(InvalidFieldsError) as caught:
        make_payment_channel_plugin(module([]))(options)
    assert str(caught.value) == (
        'invalid "store": a payment-channel module needs a store, and without one the plugin '
        "is stateless; give one such as sqlite:///paychan.db"
    )


@pytest.mark.parametrize("value", [1e9, float("inf")])
def test_hook_time_limits_follow_the_plugins_rule(value: float) -> None:
    with pytest.raises(InvalidFieldsError) as caught:
        make_payment_channel_plugin(module([]))(server_options(lifecycleHookTimeout=value))
    assert str(caught.value) == (
        f'invalid "lifecycleHookTimeout": expected seconds above 0 and at most 86400; got {value!r}'
    )
