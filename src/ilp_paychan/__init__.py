"""ilp-paychan: the Interledger payment-channel framework ledger plugin for Python.

The public names are imported lazily so that `import ilp_paychan.codec` stays free of the
asyncio and database layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "BtpPlugin",
    "FulfillmentPendingError",
    "Plugin",
    "V1Adapter",
    "__version__",
    "errors",
    "ildcp",
    "make_payment_channel_plugin",
    "open_backend",
]

if TYPE_CHECKING:
    from ilp_paychan import errors, ildcp
    from ilp_paychan.errors import FulfillmentPendingError
    from ilp_paychan.ledger import open_backend
    from ilp_paychan.plugin.paychan import make_payment_channel_plugin
    from ilp_paychan.plugin.plugin import Plugin
    from ilp_paychan.v2.adapter import V1Adapter
    from ilp_paychan.v2.plugin import BtpPlugin

_LAZY = {
    "BtpPlugin": ("ilp_paychan.v2.plugin", "BtpPlugin"),
    "ildcp": ("ilp_paychan.ildcp", None),
    "Plugin": ("ilp_paychan.plugin.plugin", "Plugin"),
    "V1Adapter": ("ilp_paychan.v2.adapter", "V1Adapter"),
    "make_payment_channel_plugin": ("ilp_paychan.plugin.paychan", "make_payment_channel_plugin"),
    "open_backend": ("ilp_paychan.ledger", "open_backend"),
    "errors": ("ilp_paychan.errors", None),
    "FulfillmentPendingError": ("ilp_paychan.errors", "FulfillmentPendingError"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'ilp_paychan' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(target[0])
    value = module if target[1] is None else getattr(module, target[1])
    globals()[name] = value
    return value
