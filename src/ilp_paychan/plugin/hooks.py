"""The settlement hooks a plugin calls at fixed points of the transfer flow.

The trustline default does nothing; `plugin.paychan` adapts a user's payment-channel module to
this interface (sync or async hooks, time limits, error isolation). The plugin never calls a
user's module directly, only these methods.
"""

from __future__ import annotations

from typing import Any

from ilp_paychan.codec.btp import Message, Response


class SettlementHooks:
    """Trustline mode: no settlement. Subclasses override what their mode needs."""

    def get_info(self) -> dict[str, Any] | None:
        """Ledger info to use instead of `options["info"]`, or None to use the options."""
        return None

    def get_account(self) -> str | None:
        """Own ILP address, or None for the reference's `<prefix>server`/`<prefix>client` rule."""
        return None

    def get_peer_account(self) -> str | None:
        """The peer's ILP address, or None for the same default rule seen from the other side."""
        return None

    def get_auth_token(self) -> str | None:
        """What `Plugin.is_authorized(token)` compares with, or None to use `options["token"]`."""
        return None

    async def connect(self) -> None:
        """Runs in `Plugin.connect()` after the link is up, before the `connect` event."""

    async def disconnect(self) -> None:
        """Runs in `Plugin.disconnect()` before the sockets close."""

    async def handle_incoming_prepare(self, transfer: dict[str, Any]) -> None:
        """Runs after an incoming transfer is prepared in the log; raising refuses it."""

    async def create_outgoing_claim(self, outgoing_fulfilled: str) -> Any:
        """Runs after an outgoing transfer is fulfilled; a non-None result travels as `claim`."""
        return None

    async def handle_incoming_claim(self, claim: Any) -> None:
        """Runs with the decoded `claim` the peer returned for one of our Fulfills."""

    async def handle_side_protocols(self, message: Message) -> Response | None:
        """Answers a Message whose side protocols the plugin itself does not know.

        None means "unsupported": the plugin then answers the reference's error.
        """
        return None
