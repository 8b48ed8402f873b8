"""The plugin interface of today's Interledger (LPI v2, as ilp-plugin-btp and ilp-connector use it).

Why a Protocol: STREAM, SPSP, ILDCP and the CLI work over anything that moves ILPv4 packets this
way: our `BtpPlugin` (BTP 2.0), the v1 `Plugin` behind `V1Adapter`, or a test double. They depend
on this shape only, never on a concrete plugin.

Packets cross this interface encoded (`send_data(prepare) -> fulfill or reject`, all ILPv4 bytes,
see `codec.ilp4`); money is a decimal string of a non-negative integer in the link's own units.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

#: Answers one incoming ILPv4 Prepare (bytes) with a Fulfill or Reject (bytes).
DataHandler = Callable[[bytes], Awaitable[bytes]]
#: Told of money the peer sent us (`send_money` on the other side), as a decimal string.
MoneyHandler = Callable[[str], Awaitable[None]]

#: The events every v2 plugin emits (`on(name, callback)`).
V2_EVENTS = frozenset({"connect", "disconnect", "error"})


@runtime_checkable
class PluginV2(Protocol):
    """What a v2 plugin offers; the names are those of the JS interface in snake_case."""

    async def connect(self) -> None:
        """Open the link (a client dials and authenticates; a listener binds)."""

    async def disconnect(self) -> None:
        """Close the link; calls in flight fail."""

    def is_connected(self) -> bool:
        """Whether packets can be sent now."""

    async def send_data(self, data: bytes) -> bytes:
        """Send one ILPv4 Prepare; returns the peer's Fulfill or Reject (ILPv4 bytes)."""

    async def send_money(self, amount: str) -> None:
        """Pay the peer `amount` units (settlement); returns once the peer has it."""

    def register_data_handler(self, handler: DataHandler) -> None:
        """Set the one handler of incoming Prepares (refused if one is set)."""

    def deregister_data_handler(self) -> None:
        """Remove the data handler; Prepares are then rejected (F02)."""

    def register_money_handler(self, handler: MoneyHandler) -> None:
        """Set the one handler of incoming money (refused if one is set)."""

    def deregister_money_handler(self) -> None:
        """Remove the money handler."""

    def on(self, event: str, callback: Callable[..., Any]) -> None:
        """Call `callback` on `event` (one of `V2_EVENTS`)."""

    def off(self, event: str, callback: Callable[..., Any]) -> None:
        """Stop calling `callback` on `event`."""
