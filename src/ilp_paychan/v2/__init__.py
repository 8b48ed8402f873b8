"""Today's Interledger for ilp-paychan: the v2 plugin interface, `BtpPlugin` (BTP 2.0), ILDCP and
the adapter that gives the v1 `Plugin` the v2 interface.

Layering: this package composes `transport`, `ledger` and `codec` like `plugin` does, and may use
`plugin` (the adapter wraps it); `stream` and `shell` sit above it and see only `interface`.
"""

from .interface import V2_EVENTS, DataHandler, MoneyHandler, PluginV2

__all__ = ["V2_EVENTS", "DataHandler", "MoneyHandler", "PluginV2"]
