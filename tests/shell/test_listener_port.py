"""The shell reads a plugin's bound port through the public `Plugin.listener_port` only."""

from __future__ import annotations

from types import SimpleNamespace

from ilp_paychan import Plugin
from ilp_paychan.shell.serve import listener_port


async def test_the_shell_reports_the_plugins_public_listener_port() -> None:
    plugin = Plugin(
        {
            "listener": {"port": 0, "host": "127.0.0.1"},
            "incomingSecret": "secret",
            "prefix": "example.red.",
            "info": {"currencyCode": "USD", "currencyScale": 2},
        }
    )
    assert listener_port(plugin) is None
    await plugin.connect()
    try:
        port = listener_port(plugin)
        assert isinstance(port, int)
        assert port > 0
        assert port == plugin.listener_port
    finally:
        await plugin.disconnect()


def test_the_shell_does_not_reach_into_the_link() -> None:
    stub = SimpleNamespace(listener_port=None, _link=SimpleNamespace(port=4321))
    assert listener_port(stub) is None
    assert listener_port(SimpleNamespace(listener_port=4321)) == 4321
    assert listener_port(SimpleNamespace(listener_port=True)) is None
