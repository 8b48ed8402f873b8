"""The options of a v1 trustline pair on loopback, as the plugin tests and the v1 adapter's
tests build it: a stateful listener (`memory:`) with the reference's `info`, and a stateless
client that dials it.
"""

from __future__ import annotations

from typing import Any

PREFIX = "example.red."
SECRET = "shared_secret"
INFO = {"currencyCode": "USD", "currencyScale": 2, "connectors": ["example.red.server"]}


def server_options(**overrides: Any) -> dict[str, Any]:
    """A listener on 127.0.0.1 (an OS-picked port) with maxBalance 1000; `overrides` win."""
    options: dict[str, Any] = {
        "listener": {"port": 0, "host": "127.0.0.1"},
        "incomingSecret": SECRET,
        "maxBalance": "1000",
        "prefix": PREFIX,
        "info": dict(INFO),
        "store": "memory:",
    }
    options.update(overrides)
    return options


def client_options(port: int, **overrides: Any) -> dict[str, Any]:
    """A client of the listener on 127.0.0.1:`port`; `overrides` win."""
    options: dict[str, Any] = {"server": f"btp+ws://:{SECRET}@127.0.0.1:{port}"}
    options.update(overrides)
    return options
