"""Errors of the v2 plugin interface that the v1 errors do not already cover.

Why separate classes: a program registering a second data or money handler has a bug of its own
to fix, and ilp-plugin-btp and ilp-compat-plugin name exactly these two, so a caller can catch
them by name whichever plugin sits behind the interface. Both are `PluginError`s (code F00).
"""

from __future__ import annotations

from ilp_paychan.errors import PluginError

__all__ = ["DataHandlerAlreadyRegisteredError", "MoneyHandlerAlreadyRegisteredError"]


class DataHandlerAlreadyRegisteredError(PluginError):
    """`register_data_handler` while a handler is set (deregister it first)."""


class MoneyHandlerAlreadyRegisteredError(PluginError):
    """`register_money_handler` while a handler is set (deregister it first)."""
