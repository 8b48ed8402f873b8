"""`HookServices`: what a Plugin lends the settlement hooks it builds, and nothing more.

A payment-channel module's `ctx` is made of these (its rpc sends through `request`, its
`ctx.backend` and `ctx.transfer_log` read the plugin's store), so the module adapter needs no
access to the Plugin's private state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ilp_paychan.codec.btp import Packet, Response
from ilp_paychan.ledger import Backend, TransferLog
from ilp_paychan.plugin.options import PluginSettings


@dataclass(frozen=True, slots=True)
class HookServices:
    """Given to `Plugin._create_hooks`; every callable answers for the plugin's current state."""

    #: The validated options.
    settings: PluginSettings
    #: The options as camelCase keys (what option readers such as `hookTimeout` look in).
    options: Mapping[str, Any]
    #: The caller's own options mapping (what a module's constructor receives).
    options_as_given: Mapping[str, Any]
    #: Sends a request to the peer, timed as `kind` for the observers; raises as PeerLink does.
    request: Callable[[Packet, str], Awaitable[Response]]
    #: Whether an authenticated socket to the peer exists now.
    link_open: Callable[[], bool]
    #: The ledger backend (its store opens on first use).
    backend: Callable[[], Backend]
    #: The plugin's own TransferLog (its store opens on first use).
    transfer_log: Callable[[], TransferLog]
