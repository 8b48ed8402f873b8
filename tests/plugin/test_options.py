"""options.py: the options mapping or keywords → validated settings; errors name the field."""

from __future__ import annotations

from typing import Any

import pytest

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.plugin.options import normalise_options, parse_settings


def settings(options: dict[str, Any], **kwargs: Any) -> Any:
    return parse_settings(normalise_options(options, kwargs))


LISTENER = {"listener": {"port": 0}, "incomingSecret": "s", "prefix": "a.", "info": {}}


BASE = {"server": "btp+ws://:secret@127.0.0.1:1"}


def test_camel_case_and_snake_case_give_the_same_settings() -> None:
    camel = settings({**BASE, "maxBalance": "10", "minBalance": -5, "store": "memory:"})
    snake = settings({}, server=BASE["server"], max_balance=10, min_balance="-5", store="memory:")
    assert (
        (camel.max_balance, camel.min_balance)
        == (snake.max_balance, snake.min_balance)
        == (
            10,
            -5,
        )
    )


def test_underscore_store_is_an_alias_of_store() -> None:
    assert settings({**BASE, "_store": "memory:", "maxBalance": "1"}).store == "memory:"


def test_stateful_iff_a_store_is_given() -> None:
    assert not settings(BASE).stateful
    assert settings({**BASE, "store": "memory:", "maxBalance": "1"}).stateful


def test_stateful_plugin_needs_max_balance() -> None:
    with pytest.raises(InvalidFieldsError, match="maxBalance"):
        settings({**BASE, "store": "memory:"})


@pytest.mark.parametrize("value", ["1.5", "abc", 1.5, True, ""])
def test_max_balance_must_be_an_integer(value: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="maxBalance"):
        settings({**BASE, "store": "memory:", "maxBalance": value})


def test_stateless_plugin_ignores_limits() -> None:
    assert settings({**BASE, "maxBalance": "10"}).max_balance is None


@pytest.mark.parametrize("server", ["http://x", "ws://h:1", 5, ""])
def test_server_must_be_a_btp_url(server: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="server"):
        settings({"server": server})


@pytest.mark.parametrize(
    ("listener", "field"),
    [
        ({"port": 70000}, "listener.port"),
        ({"port": "1"}, "listener.port"),
        ("x", "listener"),
        ({"cert": 5}, "listener.cert"),
    ],
)
def test_listener_fields_are_checked(listener: Any, field: str) -> None:
    with pytest.raises(InvalidFieldsError, match=field.replace(".", r"\.")):
        settings({**LISTENER, "listener": listener})


def test_listener_defaults_to_the_reference_port() -> None:
    listener = settings({**LISTENER, "listener": {}}).listener
    assert listener is not None
    assert listener.port == 4195


def test_info_prefix_is_filled_from_prefix_without_mutating_the_caller() -> None:
    info = {"currencyCode": "USD"}
    parsed = settings({**BASE, "prefix": "a.", "info": info})
    assert parsed.info == {"currencyCode": "USD", "prefix": "a."}
    assert info == {"currencyCode": "USD"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("requestTimeout", 0),
        ("requestTimeout", "5"),
        ("shutdownTimeout", -1),
        ("storeKey", "a/b"),
        ("authCheck", "no"),
        ("incomingSecret", 5),
        ("store", True),
        ("store", object()),
    ],
)
def test_bad_values_name_their_field(key: str, value: Any) -> None:
    with pytest.raises(InvalidFieldsError, match=key):
        settings({**BASE, key: value})


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(InvalidFieldsError):
        normalise_options(["server"], {})  # type: ignore[arg-type]
