"""BtpPlugin's options: ilp-plugin-btp's names, validated with errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.v2.options import check_btp_options
from ilp_paychan.v2.plugin import BtpPlugin

LISTENER = {"port": 0, "secret": "s"}


def test_snake_and_camel_case_give_the_same_settings() -> None:
    camel = BtpPlugin({"server": "btp+ws://:t@127.0.0.1:9", "responseTimeout": 500})
    snake = BtpPlugin(server="btp+ws://:t@127.0.0.1:9", response_timeout=500)
    assert camel.settings == snake.settings
    assert camel.settings.response_timeout == 0.5
    assert camel.settings.reconnect_interval == 1.0


def test_ilp_plugin_btp_defaults() -> None:
    settings = check_btp_options({"listener": LISTENER})
    assert settings.response_timeout == 35.0
    assert settings.is_listener


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({}, '"server"'),
        ({"server": "btp+ws://:t@h:1", "listener": LISTENER}, '"listener"'),
        ({"server": "http://h"}, "server"),
        ({"listener": {"port": 0}}, "listener.secret"),
        ({"listener": {"port": 70000, "secret": "s"}}, "listener.port"),
        ({"listener": {"port": 0, "secret": "s", "sercet": 1}}, "listener.secret"),
        ({"listener": {**LISTENER, "key": "k.pem"}}, "listener.key"),
        ({"listener": LISTENER, "responseTimout": 1}, "responseTimeout"),
        ({"listener": LISTENER, "responseTimeout": 0}, "responseTimeout"),
        ({"listener": LISTENER, "reconnectInterval": 1.5e9}, "reconnectInterval"),
        ({"listener": LISTENER, "reconnectIntervals": [1]}, "reconnectIntervals"),
        ({"listener": LISTENER, "btpToken": "x"}, "btpToken"),
        ({"server": "btp+ws://u:t@h:1", "btpToken": "x"}, "btpToken"),
        ({"server": "btp+ws://h:1", "clientKey": "k"}, "clientKey"),
        ({"server": "btp+ws://h:1", "address": "not an address"}, '"address"'),
        ({"server": "btp+ws://h:1", "ildcp": {}}, '"ildcp"'),
        ({"listener": LISTENER, "ildcp": {"assetCode": "X", "assetScale": 2}}, "ildcp"),
        (
            {"listener": LISTENER, "ildcp": {"clientAddress": "a b", "assetCode": "X"}},
            "ildcp.clientAddress",
        ),
        (
            {"listener": LISTENER, "ildcp": {"clientAddress": "test.a", "assetScale": 2}},
            "ildcp.assetCode",
        ),
        (
            {"listener": LISTENER, "ildcp": {"clientAddress": "test.a", "assetCode": "X"}},
            "ildcp.assetScale",
        ),
    ],
)
def test_bad_options_are_refused_naming_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFieldsError, match=field.replace(".", r"\.")):
        BtpPlugin(options)


def test_a_token_never_appears_in_an_error() -> None:
    with pytest.raises(InvalidFieldsError) as info:
        BtpPlugin(server="btp+ws://user:hunter2@h:99999")
    assert "hunter2" not in str(info.value)


def test_the_listener_address_defaults_to_what_it_assigns_under() -> None:
    prefix = {"addressPrefix": "test.parent", "assetCode": "X", "assetScale": 0}
    assert check_btp_options({"listener": LISTENER, "ildcp": prefix}).address == "test.parent"
    fixed = {"clientAddress": "test.parent.kid", "assetCode": "X", "assetScale": 0}
    assert check_btp_options({"listener": LISTENER, "ildcp": fixed}).address == "test.parent"
