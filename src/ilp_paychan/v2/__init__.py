"""Today's Interledger for ilp-paychan: the v2 plugin interface, `BtpPlugin` (BTP 2.0), ILDCP and
the adapter that gives the v1 `Plugin` the v2 interface, and the durable trustline behind it.

Layering: this package composes `transport`, `ledger` and `codec` like `plugin` does, and may use
`plugin` (the adapter wraps it; events, the pruning interval); `stream` sits above it and sees
only `interface`, and `shell` builds the plugins from their options.
"""

from .interface import V2_EVENTS, DataHandler, MoneyHandler, PluginV2

__all__ = ["V2_EVENTS", "DataHandler", "MoneyHandler", "PluginV2"]
