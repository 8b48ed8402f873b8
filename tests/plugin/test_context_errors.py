"""Errors with context, as a plugin user meets them: a misspelt event, a prefix that differs from
the peer's, a busy listener port, a store that cannot be opened."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ilp_paychan import Plugin
from ilp_paychan.errors import InvalidFieldsError, NotAcceptedError
from ilp_paychan.ledger import StoreOpenError
from ilp_paychan.plugin.events import EVENT_NAMES

from .conftest import client_options, server_options


def test_a_misspelt_event_is_refused_naming_the_known_ones() -> None:
    plugin = Plugin(server_options())
    with pytest.raises(ValueError, match="unknown event") as caught:
        plugin.on("incomming_prepare", lambda transfer: None)
    message = str(caught.value)
    assert message.startswith(
        "unknown event 'incomming_prepare' (did you mean 'incoming_prepare'?)"
    )
    assert message.endswith("the events are: " + ", ".join(sorted(EVENT_NAMES)))
    with pytest.raises(ValueError, match=r"^unknown event 'conect'"):
        plugin.off("conect", lambda: None)


def test_every_known_event_can_be_listened_to() -> None:
    plugin = Plugin(server_options())
    for name in EVENT_NAMES:
        plugin.on(name, print)
        plugin.off(name, print)


async def test_a_prefix_mismatch_names_both_prefixes() -> None:
    server = Plugin(server_options(prefix="g.server.", info={"currencyCode": "EUR"}))
    await server.connect()
    try:
        assert server.listener_port is not None
        client = Plugin(client_options(server.listener_port, prefix="g.client."))
        with pytest.raises(NotAcceptedError) as caught:
            await client.connect()
        assert str(caught.value) == (
            "Remote prefix does not match configured prefix: the peer's info says 'g.server.', "
            "this plugin is configured with 'g.client.'"
        )
        await client.disconnect()
    finally:
        await server.disconnect()


async def test_a_busy_listener_port_names_host_and_port() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        plugin = Plugin(server_options(listener={"port": port, "host": "127.0.0.1"}))
        with pytest.raises(InvalidFieldsError) as caught:
            await plugin.connect()
    assert str(caught.value) == (
        f"listener.port: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


async def test_a_store_that_cannot_be_opened_is_named_by_the_plugin(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/no-such-folder/ledger.db"
    plugin = Plugin(server_options(store=store))
    with pytest.raises(StoreOpenError) as caught:
        await plugin.connect()
    assert str(caught.value) == (
        f"cannot open store {store} (path {tmp_path}/no-such-folder/ledger.db): the folder "
        f"{tmp_path}/no-such-folder does not exist (unable to open database file)"
    )
    assert not plugin.is_connected()
    await plugin.disconnect()
