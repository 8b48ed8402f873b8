"""A module's `constructor(ctx, opts)` gets the options mapping exactly as the caller gave it."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace
from typing import Any

from ilp_paychan import make_payment_channel_plugin

from .helpers import INFO, PREFIX, server_options


def _module(seen: list[Any]) -> SimpleNamespace:
    def constructor(ctx: Any, opts: Any) -> None:
        seen.append(opts)

    return SimpleNamespace(
        plugin_name="seeing",
        constructor=constructor,
        get_info=lambda ctx: dict(INFO),
        get_account=lambda ctx: PREFIX + "me",
        get_peer_account=lambda ctx: PREFIX + "peer",
        create_outgoing_claim=lambda ctx, balance: None,
        handle_incoming_claim=lambda ctx, claim: None,
    )


def test_constructor_gets_the_very_mapping_given() -> None:
    seen: list[Any] = []
    given = server_options(_store="memory:", customOption={"a": 1})
    given.pop("store", None)
    make_payment_channel_plugin(_module(seen))(given)
    assert seen[0] is given
    assert "_store" in seen[0]  # not normalised: the alias is still there


def test_a_read_only_mapping_is_passed_through_too() -> None:
    seen: list[Any] = []
    given = MappingProxyType(server_options())
    make_payment_channel_plugin(_module(seen))(given)
    assert seen[0] is given


def test_with_keywords_the_constructor_gets_the_merged_camel_case_options() -> None:
    seen: list[Any] = []
    options = server_options()
    del options["maxBalance"]
    make_payment_channel_plugin(_module(seen))(max_balance="5", **options)
    assert seen[0]["maxBalance"] == "5"
    assert seen[0]["prefix"] == options["prefix"]
