"""Errors of the v2 plugin interface that the v1 errors do not already cover.

Why separate classes: a program registering a second data or money handler has a bug of its own
to fix, and ilp-plugin-btp and ilp-compat-plugin name exactly these two, so a caller can catch
them by name whichever plugin sits behind the interface (`BtpPlugin` and `V1Adapter` both raise
them). Both are also `RequestHandlerAlreadyRegisteredError`s (the v1 plugin's, code F00), so a
caller that catches that keeps working.

Bad input to `BtpPlugin` is an `InvalidInputError`: an `InvalidFieldsError` (malformed input,
F01) that is also a `ValueError`, as a codec error is, naming the field. `IldcpError` is
`ildcp.fetch`'s: the parent did not tell us our address.
"""

from __future__ import annotations

from ilp_paychan.errors import InvalidFieldsError, PluginError, RequestHandlerAlreadyRegisteredError

__all__ = [
    "DataHandlerAlreadyRegisteredError",
    "IldcpError",
    "InvalidInputError",
    "MoneyHandlerAlreadyRegisteredError",
]


class DataHandlerAlreadyRegisteredError(RequestHandlerAlreadyRegisteredError):
    """`register_data_handler` while a handler is set (deregister it first)."""


class MoneyHandlerAlreadyRegisteredError(RequestHandlerAlreadyRegisteredError):
    """`register_money_handler` while a handler is set (deregister it first)."""


class InvalidInputError(InvalidFieldsError, ValueError):
    """A malformed argument: a Prepare `send_data` cannot read, an amount that is no integer."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class IldcpError(PluginError):
    """The parent did not tell us our address: it rejected the ILDCP request (`code`,
    `reject_message` and `triggered_by` are the Reject's), or answered something that is no
    ILDCP response."""

    def __init__(
        self, message: str, *, code: str = "", reject_message: str = "", triggered_by: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reject_message = reject_message
        self.triggered_by = triggered_by
