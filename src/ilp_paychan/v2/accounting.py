"""The seam where a balance (the durable trustline) plugs into `BtpPlugin`.

Why a seam: `BtpPlugin` moves ILPv4 packets and BTP 2.0 Transfers and knows nothing of money
owed. A trustline needs to see every packet at fixed points (refuse an incoming Prepare over
the limit, move the balance when a Fulfill passes, settle when a threshold is crossed, count
money received) without the plugin's packet path depending on how it stores anything. So the
plugin calls an `Accounting` object at these points, and only these:

- `incoming_prepare(prepare)` before the data handler sees a Prepare from the peer; returning
  Reject bytes answers with them instead (e.g. T04 with the amounts), None lets it through.
- `incoming_settled(prepare, reply, fulfilled)` once our answer to it is decided, before it is
  sent back (a Fulfill we send: the peer owes us `prepare.amount`).
- `outgoing_prepare(prepare)` before `send_data` sends a Prepare; Reject bytes are returned to
  the caller instead of sending.
- `outgoing_settled(prepare, reply, fulfilled, answered)` when `send_data` has its result;
  `answered` is False when the Reject was made locally (no answer in time, link down), so the
  peer's view is unknown: a durable trustline keeps the amount in flight until the expiry.
  Returning Reject bytes replaces the result (a Fulfill the balance could not count).
- `incoming_money(amount, protocol_data)` on a BTP Transfer from the peer, before the money
  handler; raising refuses it (the peer gets a BTP Error).
- `incoming_money` may return False: a repeat it already counted; the money handler is not
  called again.
- `outgoing_money(amount)` before `send_money` sends a Transfer: returns the protocol data
  to attach (a payment-channel claim, say); `money_sent(amount)` after the peer accepted it;
  optional `money_failed(amount, exc)` when the Transfer failed (before `send_money` raises).
- optional `side_message(protocol_data)` for a Message without `ilp`: protocol data to answer
  with, or None (an empty Response).
- `open(plugin)` in `connect()` (before the link starts) and `close()` in `disconnect()`
  (after it stopped): where a store is opened and in-flight packets are re-read.

The default is no object at all (the plugin skips every call: pass-through, no balance, nothing
paid for on the hot path). `PassThrough` is the same behaviour as a base class to subclass.
An exception from a hook other than the money ones turns the packet into a T00 Reject and is
reported with the plugin's `error` event.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ilp_paychan.codec.btp import ProtocolData
from ilp_paychan.codec.ilp4 import IlpPrepare


@runtime_checkable
class Accounting(Protocol):
    """What `BtpPlugin` calls around packets and money; see the module docstring for when."""

    async def open(self, plugin: Any) -> None:
        """The plugin is connecting (store opening, state re-read)."""

    async def close(self) -> None:
        """The plugin has disconnected."""

    async def incoming_prepare(self, prepare: IlpPrepare) -> bytes | None:
        """None: let the Prepare through; bytes: answer this Reject instead."""

    async def incoming_settled(self, prepare: IlpPrepare, reply: bytes, fulfilled: bool) -> None:
        """Our answer to an incoming Prepare is decided (a Fulfill when `fulfilled`)."""

    async def outgoing_prepare(self, prepare: IlpPrepare) -> bytes | None:
        """None: send the Prepare; bytes: return this Reject to the caller instead."""

    async def outgoing_settled(
        self, prepare: IlpPrepare, reply: bytes, fulfilled: bool, answered: bool
    ) -> bytes | None:
        """`send_data` has its result; `answered` is False for a Reject made locally. Reject
        bytes: give the caller these instead."""

    async def incoming_money(
        self, amount: int, protocol_data: tuple[ProtocolData, ...]
    ) -> bool | None:
        """The peer sent a Transfer of `amount`; raise to refuse it, False: already counted."""

    async def outgoing_money(self, amount: int) -> tuple[ProtocolData, ...]:
        """`send_money(amount)` is about to send a Transfer: the protocol data to attach."""

    async def money_sent(self, amount: int) -> None:
        """The peer accepted our Transfer of `amount`."""


class PassThrough:
    """No balance: every hook lets everything through. Subclass it to override a few hooks."""

    async def open(self, plugin: Any) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def incoming_prepare(self, prepare: IlpPrepare) -> bytes | None:
        """Let it through."""
        return None

    async def incoming_settled(self, prepare: IlpPrepare, reply: bytes, fulfilled: bool) -> None:
        """No balance to move."""

    async def outgoing_prepare(self, prepare: IlpPrepare) -> bytes | None:
        """Send it."""
        return None

    async def outgoing_settled(
        self, prepare: IlpPrepare, reply: bytes, fulfilled: bool, answered: bool
    ) -> bytes | None:
        """No balance to move."""
        return None

    async def incoming_money(self, amount: int, protocol_data: tuple[ProtocolData, ...]) -> None:
        """Accept it."""

    async def outgoing_money(self, amount: int) -> tuple[ProtocolData, ...]:
        """No proof to attach."""
        return ()

    async def money_sent(self, amount: int) -> None:
        """Nothing to record."""
