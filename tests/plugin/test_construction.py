"""The reference's indexSpec.js tests: construction and options, plus our own option rules."""

from __future__ import annotations

import socket

import pytest

from ilp_paychan import Plugin
from ilp_paychan.errors import InvalidFieldsError, NotConnectedError

from .conftest import server_options

CLIENT = {
    "prefix": "example.red.",
    "maxBalance": "10",
    "server": "btp+ws://:s@127.0.0.1:1",
    "store": "memory:",
}


def test_constructor_should_be_a_function() -> None:
    assert callable(Plugin)


def test_constructor_should_return_an_object() -> None:
    assert isinstance(Plugin(CLIENT), Plugin)


def test_constructor_should_give_an_error_without_max_balance() -> None:
    with pytest.raises(InvalidFieldsError, match="maxBalance"):
        Plugin({k: v for k, v in CLIENT.items() if k != "maxBalance"})


def test_stale_http_era_options_are_not_required() -> None:
    """The reference tests "without secret/peerPublicKey/_store/rpcUri/incorrect prefix" are
    vacuous (they check nothing): 1.3.5 needs none of those and accepts prefix `trash.`."""
    Plugin({**CLIENT, "prefix": "trash."})


def test_snake_case_keywords_construct_the_same_plugin() -> None:
    plugin = Plugin(
        prefix="example.red.", max_balance="10", server="btp+ws://:s@127.0.0.1:1", _store="memory:"
    )
    assert plugin.get_account() == "example.red.server"


def test_listener_needs_prefix_and_info() -> None:
    with pytest.raises(InvalidFieldsError, match="'prefix' and 'info'"):
        Plugin({"listener": {"port": 0}, "incomingSecret": "s"})


def test_nothing_listens_before_connect() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    plugin = Plugin(server_options(listener={"port": port, "host": "127.0.0.1"}))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # still free: the constructor opened nothing
    assert plugin.listener_port is None
    assert not plugin.is_connected()


async def test_methods_need_connect_first() -> None:
    plugin = Plugin(CLIENT)
    with pytest.raises(NotConnectedError, match="Must be connected before send_transfer"):
        await plugin.send_transfer({})
    with pytest.raises(NotConnectedError, match=r"get_limit can be called\. It asks the peer"):
        await plugin.get_limit()


async def test_listener_port_in_use_makes_connect_raise_and_a_retry_works() -> None:
    """Probe listener-port-in-use: the reference crashed the process."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    plugin = Plugin(server_options(listener={"port": port, "host": "127.0.0.1"}))
    try:
        with pytest.raises(InvalidFieldsError, match=r"listener\.port"):
            await plugin.connect()
        assert not plugin.is_connected()
    finally:
        blocker.close()
    await plugin.connect()
    assert plugin.listener_port == port
    await plugin.disconnect()


async def test_async_with_connects_and_disconnects() -> None:
    async with Plugin(server_options()) as plugin:
        assert plugin.is_connected()
    assert not plugin.is_connected()


def test_stateless_plugins_call_themselves_client() -> None:
    plugin = Plugin({"server": "btp+ws://:s@127.0.0.1:1", "prefix": "p."})
    assert (plugin.get_account(), plugin.get_peer_account()) == ("p.client", "p.server")
