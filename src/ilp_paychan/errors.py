"""Error classes of the plugin, and their mapping to the ILP codes the reference puts on the wire.

Every layer above the codecs raises these. The code table is the reference's,
not RFC 23's (the reference numbers F02 to F07 what RFC 23 numbers F03 to F08), because a
JavaScript peer prints and compares the names it knows.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar


class PluginError(Exception):
    """Base class of every error this package raises on purpose."""

    ilp_code: ClassVar[str] = "F00"

    @property
    def error_name(self) -> str:
        """The name sent in a BTP Error: the class name, as the reference does."""
        return type(self).__name__


class UnreachableError(PluginError):
    """The peer (or the plugin itself) cannot take the request now; nothing was done, try later."""

    ilp_code = "T00"


class NotAcceptedError(PluginError):
    """Refused on its merits: a limit, a wrong direction, a wrong fulfillment, and the like."""

    ilp_code = "F00"


class InvalidFieldsError(PluginError):
    """Malformed input: an option, a field, a reason or a frame entry; the message names it."""

    ilp_code = "F01"


class TransferNotFoundError(PluginError):
    """No transfer with that id is known (never prepared, or forgotten after settling)."""

    ilp_code = "F02"


class InvalidFulfillmentError(PluginError):
    """The fulfillment does not hash to the condition (on the wire: F00, as the reference)."""

    ilp_code = "F03"


class DuplicateIdError(PluginError):
    """A transfer id is reused with other contents."""

    ilp_code = "F04"


class AlreadyRolledBackError(PluginError):
    """The transfer was cancelled or has expired, so it can no longer be fulfilled."""

    ilp_code = "F05"


class AlreadyFulfilledError(PluginError):
    """The transfer was fulfilled, so it can no longer be rejected or cancelled."""

    ilp_code = "F06"


class InsufficientBalanceError(PluginError):
    """Kept for the reference's name; a limit refusal here is a NotAcceptedError, as there."""

    ilp_code = "F07"


class RequestHandlerAlreadyRegisteredError(PluginError):
    """`register_request_handler` while a handler is registered; deregister it first."""

    ilp_code = "F00"


class NotConnectedError(PluginError):
    """A method that needs a connection was called before `connect()`."""

    ilp_code = "T00"


class PeerTimeoutError(PluginError):
    """The peer did not answer a request within `requestTimeout`."""

    ilp_code = "T00"


class StoreUnavailableError(PluginError, ConnectionError):
    """The ledger store cannot be reached right now (its server is down, restarting, or the
    connection dropped during the operation).

    Temporary (T00): nothing is refused for good, and the same call may succeed once the store
    is back; the store reconnects by itself. A write whose connection dropped while committing
    may or may not have been committed (either way completely or not at all).
    """

    ilp_code = "T00"


class FulfillmentPendingError(PluginError):
    """Our fulfilment is committed, but the sender has not answered the Fulfill in time.

    Not a failure of the fulfilment: it stays stored and is delivered again until the sender
    answers. Until then the money is not final (a sender that cancelled at its expiry refuses
    it). The `incoming_fulfill_confirmed` event (paid) or `incoming_fulfill_reverted` (not
    paid; the transfer is cancelled) reports the outcome. Only ever raised locally.
    """

    ilp_code = "T00"

    def __init__(self, transfer_id: str) -> None:
        super().__init__(
            f"the fulfillment of {transfer_id} is stored, but the peer has not acknowledged it;"
            " it will be delivered until the peer answers, and the incoming_fulfill_confirmed"
            " or incoming_fulfill_reverted event will report the outcome"
        )
        self.transfer_id = transfer_id


class PeerError(PluginError):
    """The peer answered a request with a BTP Error.

    Where the peer's error name is one of this module's classes, `from_btp_error` returns an
    instance of both that class and `PeerError`, so `except DuplicateIdError` catches a remote
    duplicate too.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        name: str,
        data: str,
        triggered_at: datetime | None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.data = data
        self.triggered_at = triggered_at

    @property
    def error_name(self) -> str:
        return self.name

    @classmethod
    def from_btp_error(
        cls, *, code: str, name: str, data: str, triggered_at: datetime | None
    ) -> PeerError:
        """Build the exception for a received BTP Error, reconstructing a known class."""
        message = _message_of(data) or f"peer answered {code} {name}"
        known = ERRORS_BY_NAME.get(name)
        if known is None or issubclass(known, PeerError):
            return cls(message, code=code, name=name, data=data, triggered_at=triggered_at)
        combined = _PEER_CLASSES.get(name)
        if combined is None:
            combined = type(f"Peer{name}", (cls, known), {"ilp_code": known.ilp_code})
            _PEER_CLASSES[name] = combined
        error: PeerError = combined(
            message, code=code, name=name, data=data, triggered_at=triggered_at
        )
        return error


def _message_of(data: str) -> str:
    """The `message` of the reference's `{"message": ...}` error data, else the data itself."""
    try:
        parsed: Any = json.loads(data)
    except (ValueError, RecursionError):  # nesting too deep for the parser is not JSON either
        return data
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])
    return data


ERRORS_BY_NAME: dict[str, type[PluginError]] = {
    cls.__name__: cls
    for cls in (
        UnreachableError,
        NotAcceptedError,
        InvalidFieldsError,
        TransferNotFoundError,
        InvalidFulfillmentError,
        DuplicateIdError,
        AlreadyRolledBackError,
        AlreadyFulfilledError,
        InsufficientBalanceError,
        RequestHandlerAlreadyRegisteredError,
        NotConnectedError,
        PeerTimeoutError,
    )
}

_PEER_CLASSES: dict[str, type[PeerError]] = {}


def ilp_code_for(error: BaseException) -> str:
    """The ILP code the reference sends for an error of this kind; F00 for anything unknown."""
    if isinstance(error, PluginError):
        return error.ilp_code
    return "F00"


def error_name_for(error: BaseException) -> str:
    """The BTP Error name for an exception; internal exception names never leak to the peer."""
    if isinstance(error, PluginError):
        return error.error_name
    return "NotAcceptedError"
