"""The plugin's option rules: unknown keys, the rules the CLI used to apply alone, time limits.

Each refusal is an InvalidFieldsError whose message names the field; the messages asserted here
are the ones users see (the CLI shows the same, see tests/shell/test_validation_path.py).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.plugin.options import check_options, module_policy, normalise_options

SERVER = "btp+ws://:secret@127.0.0.1:1"
CLIENT: dict[str, Any] = {"server": SERVER}
LISTENER: dict[str, Any] = {
    "listener": {"port": 0, "host": "127.0.0.1"},
    "incomingSecret": "secret",
    "prefix": "g.x.",
    "info": {"currencyCode": "EUR", "currencyScale": 2},
}


def refusal(options: dict[str, Any], **kwargs: Any) -> str:
    """The message `Plugin(options, **kwargs)` refuses with."""
    with pytest.raises(InvalidFieldsError) as caught:
        Plugin(options, **kwargs)
    return str(caught.value)


# --- unknown keys -------------------------------------------------------------------------


def test_a_misspelt_key_is_refused_naming_the_closest_one() -> None:
    message = refusal({**CLIENT, "store": "memory:", "maxBalance": "10", "minBalence": "-5"})
    assert message == "unknown option 'minBalence' (did you mean 'minBalance'?)"


def test_a_misspelt_keyword_gets_the_keyword_spelling() -> None:
    message = refusal({}, server=SERVER, min_balence="-5")
    assert message == "unknown option 'min_balence' (did you mean 'min_balance'?)"


def test_snake_case_keys_in_a_mapping_point_to_the_reference_name() -> None:
    message = refusal({**CLIENT, "request_timeout": 3})
    assert message == "unknown option 'request_timeout' (did you mean 'requestTimeout'?)"


def test_a_key_close_to_nothing_lists_the_known_ones() -> None:
    message = refusal({**CLIENT, "colour": "blue"})
    assert message.startswith("unknown option 'colour' (known options: _store, authCheck, ca,")
    assert "settledRetention" in message


def test_a_misspelt_listener_key_is_refused() -> None:
    message = refusal({**LISTENER, "listener": {"prot": 4195}})
    assert message == "unknown option 'listener.prot' (did you mean 'listener.port'?)"


def test_the_reference_and_ilp_kit_names_still_load(caplog: pytest.LogCaptureFixture) -> None:
    """A JS config keeps loading: names the reference's world uses are accepted."""
    with caplog.at_level(logging.WARNING, logger="ilp_paychan.plugin"):
        plugin = Plugin(
            {
                **CLIENT,
                "_log": object(),
                "debugReplyNotifications": True,
                "rpcUri": "http://old.example/rpc",
                "peerPublicKey": "abc",
            }
        )
    assert plugin.settings.server == SERVER
    warned = [r.getMessage() for r in caplog.records]
    assert any("'rpcUri' is ignored" in text for text in warned)
    assert any("'peerPublicKey' is ignored" in text for text in warned)
    assert not any("_log" in text or "debugReply" in text for text in warned)


def test_the_reference_backend_option_is_refused_with_what_to_use() -> None:
    message = refusal({**CLIENT, "_backend": object()})
    assert message == (
        'invalid "_backend": not supported; give "store" (a store URL or an object with '
        "get/put/delete)"
    )


def test_hook_time_limits_are_for_module_plugins_only() -> None:
    message = refusal({**CLIENT, "hookTimeout": 1})
    assert message == (
        'invalid "hookTimeout": only a plugin made by make_payment_channel_plugin has hooks to time'
    )


def test_a_module_that_declares_nothing_gets_unknown_keys_but_not_typos() -> None:
    policy = module_policy(None)
    options = {**CLIENT, "store": "memory:", "maxBalance": "1", "maxUnsecured": "5"}
    assert normalise_options(options, {}, policy)["maxUnsecured"] == "5"
    with pytest.raises(InvalidFieldsError) as caught:
        normalise_options({**options, "maxBalence": "1"}, {}, policy)
    assert str(caught.value) == (
        "unknown option 'maxBalence' (did you mean 'maxBalance'?); a payment-channel module "
        "that reads 'maxBalence' itself can declare it in its option_names"
    )


def test_a_module_that_declares_its_options_gets_those_only() -> None:
    policy = module_policy(["maxUnsecured", "maxBalence"])
    options = {**CLIENT, "maxUnsecured": "5", "maxBalence": "1", "hookTimeout": 1}
    assert normalise_options(options, {}, policy)["maxBalence"] == "1"
    with pytest.raises(InvalidFieldsError) as caught:
        normalise_options({**options, "maxUnsecure": "1"}, {}, policy)
    assert str(caught.value) == "unknown option 'maxUnsecure' (did you mean 'maxUnsecured'?)"


# --- the rules the CLI applied alone before --------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {**CLIENT, "store": "memory:", "maxBalance": "10", "minBalance": "11"},
            'invalid "minBalance": must not be above "maxBalance" (11 > 10)',
        ),
        (
            {**LISTENER, "incomingSecret": None},
            'invalid "incomingSecret": required for a listener (without it every client is '
            'refused), unless "authCheck" is given',
        ),
        (
            {**LISTENER, "incomingSecret": ""},
            'invalid "incomingSecret": required for a listener (without it every client is '
            'refused), unless "authCheck" is given',
        ),
        (
            {**CLIENT, "prefix": "g.x"},
            "invalid \"prefix\": expected an ILP prefix ending with '.' (printable ASCII, no "
            "spaces, at most 1023 characters); got 'g.x'",
        ),
        (
            {**LISTENER, "info": {"prefix": "g.other."}},
            "invalid \"info.prefix\": expected the same as \"prefix\" ('g.x.'); got 'g.other.'",
        ),
        (
            {**LISTENER, "info": {"currencyScale": 300}},
            'invalid "info.currencyScale": expected an integer from 0 to 255; got 300',
        ),
        (
            {**LISTENER, "info": {"connectors": "g.x.server"}},
            'invalid "info.connectors": expected a list of ILP addresses',
        ),
        (
            {"prefix": "g.x.", "info": {}},
            'invalid options: give "listener" (server role) or "server" (client role) to '
            "reach a peer",
        ),
        (
            {**LISTENER, "listener": {"port": 0, "ca": "ca.pem"}},
            'invalid "listener.ca": needs "listener.cert" (TLS)',
        ),
        (
            {**CLIENT, "store": "mysql://ilp:pw-secret@db/ledger", "maxBalance": "1"},
            "invalid \"store\": unknown store URL scheme 'mysql': expected memory:, "
            "sqlite:///PATH or postgresql://...",
        ),
        (
            {**CLIENT, "store": "postgresql://ilp:pw-secret@db/x?schema=Bad", "maxBalance": "1"},
            "invalid \"store\": schema must be a lowercase SQL identifier, got 'Bad'",
        ),
        (
            {**CLIENT, "store": "memory:"},
            'invalid "maxBalance": required when the plugin has a store (an integer string)',
        ),
    ],
    ids=[
        "min-above-max",
        "listener-without-secret",
        "listener-empty-secret",
        "prefix-without-dot",
        "info-prefix-mismatch",
        "currency-scale",
        "connectors",
        "no-role",
        "ca-without-cert",
        "store-scheme",
        "store-schema",
        "max-balance-required",
    ],
)
def test_refusals_name_the_field(options: dict[str, Any], message: str) -> None:
    options = {k: v for k, v in options.items() if v is not None}
    assert refusal(options) == message
    assert "pw-secret" not in message


def test_an_auth_check_replaces_the_incoming_secret() -> None:
    options = {**LISTENER, "authCheck": lambda user, token: token == "t"}
    del options["incomingSecret"]
    assert Plugin(options).settings.auth_check is not None


def test_minimum_above_maximum_is_refused_for_a_stateless_plugin_too() -> None:
    """The limits are unused without a store, but contradicting ones are still a mistake."""
    message = refusal({**CLIENT, "maxBalance": "1", "minBalance": "2"})
    assert message.startswith('invalid "minBalance": must not be above')


# --- time limits ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["requestTimeout", "shutdownTimeout"])
@pytest.mark.parametrize("value", [0, -1, 1e9, math.inf, math.nan, "5", True])
def test_time_limits_are_finite_seconds_up_to_a_day(name: str, value: Any) -> None:
    message = refusal({**CLIENT, name: value})
    assert message == (
        f'invalid "{name}": expected seconds above 0 and at most 86400; got {value!r}'
    )


def test_a_day_is_the_longest_time_limit() -> None:
    settings = check_options({**CLIENT, "requestTimeout": 86_400, "shutdownTimeout": 0.001})
    assert (settings.request_timeout, settings.shutdown_timeout) == (86_400.0, 0.001)
