"""Two in-memory v2 plugins joined by a pretend connector, for STREAM tests without sockets.

`LinkedPlugins` makes ``alice`` and ``bob``: each implements the `PluginV2` shape, answers ILDCP
for its own address and asset, and forwards every other Prepare to the other side's data handler
as a connector would: destination must start with the other's address (else F02), the amount
is converted at ``rate`` (floor) and checked against ``max_packet_amount`` (F08 with the RFC 27
data), and a returned Fulfill must match the condition (else F05). Knobs: ``t04`` (a callable
deciding per Prepare to answer T04), ``no_route`` (everything F02), ``drop`` (a callable: never
answer, so the sender's expiry watchdog must act), ``lose_reply`` (a callable: deliver the
Prepare, then answer the sender T00 whatever the receiver said, as when a reply is lost on the
way back). It counts what crossed, for exact accounting assertions; ``lost`` is the receiver's
amounts of Fulfills the sender never saw.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ilp_paychan.codec import ildcp
from ilp_paychan.codec.ilp4 import (
    IlpFulfill,
    IlpPrepare,
    IlpReject,
    decode_prepare,
    decode_reply,
    encode_amount_too_large_data,
    encode_prepare,
    encode_reject,
)
from ilp_paychan.v2.errors import DataHandlerAlreadyRegisteredError
from ilp_paychan.v2.interface import DataHandler, MoneyHandler

CONNECTOR = "test.connector"


@dataclass
class Tally:
    """What crossed one direction of the link."""

    prepares: int = 0
    fulfilled: int = 0
    rejected: int = 0
    source_fulfilled: int = 0
    destination_fulfilled: int = 0
    lost: int = 0
    codes: list[str] = field(default_factory=list)


class LinkedPlugin:
    """One end; see the module docstring."""

    def __init__(
        self, link: LinkedPlugins, address: str, asset_code: str, asset_scale: int
    ) -> None:
        self.link = link
        self.address = address
        self.asset_code = asset_code
        self.asset_scale = asset_scale
        self.peer: LinkedPlugin | None = None
        self.rate = Fraction(1)
        self.tally = Tally()
        self._handler: DataHandler | None = None
        self._connected = False
        self._listeners: dict[str, list[Callable[..., Any]]] = {}

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    async def send_money(self, amount: str) -> None:
        return None

    def register_data_handler(self, handler: DataHandler) -> None:
        if self._handler is not None:
            raise DataHandlerAlreadyRegisteredError("a data handler is already registered")
        self._handler = handler

    def deregister_data_handler(self) -> None:
        self._handler = None

    def register_money_handler(self, handler: MoneyHandler) -> None:
        return None

    def deregister_money_handler(self) -> None:
        return None

    def on(self, event: str, callback: Callable[..., Any]) -> None:
        self._listeners.setdefault(event, []).append(callback)

    def off(self, event: str, callback: Callable[..., Any]) -> None:
        self._listeners.get(event, []).remove(callback)

    async def send_data(self, data: bytes) -> bytes:
        prepare = decode_prepare(data)
        if ildcp.is_request(prepare):
            return ildcp.encode_response(
                ildcp.IldcpResponse(self.address, self.asset_scale, self.asset_code)
            )
        return await self.link.forward(self, prepare)

    async def deliver(self, prepare: IlpPrepare) -> bytes:
        """A Prepare arriving from the connector."""
        if self._handler is None:
            return encode_reject(IlpReject("F02", CONNECTOR, "no handler"))
        return await self._handler(encode_prepare(prepare))


class LinkedPlugins:
    """The pair and the pretend connector between them."""

    def __init__(
        self,
        *,
        rate: Fraction | int = 1,
        max_packet_amount: int | None = None,
        alice_asset: tuple[str, int] = ("USD", 9),
        bob_asset: tuple[str, int] = ("USD", 9),
        latency: float = 0.0,
    ) -> None:
        self.alice = LinkedPlugin(self, f"{CONNECTOR}.alice", *alice_asset)
        self.bob = LinkedPlugin(self, f"{CONNECTOR}.bob", *bob_asset)
        self.alice.peer, self.bob.peer = self.bob, self.alice
        self.alice.rate = Fraction(rate)
        self.bob.rate = 1 / Fraction(rate) if rate else Fraction(0)
        self.max_packet_amount = max_packet_amount
        self.t04: Callable[[IlpPrepare], bool] | None = None
        self.drop: Callable[[IlpPrepare], bool] | None = None
        self.lose_reply: Callable[[IlpPrepare], bool] | None = None
        self.no_route = False
        self.latency = latency

    async def forward(self, sender: LinkedPlugin, prepare: IlpPrepare) -> bytes:
        tally = sender.tally
        tally.prepares += 1
        receiver = sender.peer
        assert receiver is not None
        reply = await self._route(sender, receiver, prepare)
        parsed = decode_reply(reply)
        if self.lose_reply is not None and self.lose_reply(prepare):
            if isinstance(parsed, IlpFulfill):
                tally.lost += int(prepare.amount * sender.rate)
            reply = encode_reject(IlpReject("T00", CONNECTOR, "reply lost"))
            parsed = decode_reply(reply)
        if isinstance(parsed, IlpFulfill):
            tally.fulfilled += 1
            tally.source_fulfilled += prepare.amount
            tally.destination_fulfilled += int(prepare.amount * sender.rate)
        else:
            tally.rejected += 1
            tally.codes.append(parsed.code)
        return reply

    async def _route(
        self, sender: LinkedPlugin, receiver: LinkedPlugin, prepare: IlpPrepare
    ) -> bytes:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.no_route or not (
            prepare.destination == receiver.address
            or prepare.destination.startswith(receiver.address + ".")
        ):
            return encode_reject(IlpReject("F02", CONNECTOR, "no route"))
        if self.max_packet_amount is not None and prepare.amount > self.max_packet_amount:
            return encode_reject(
                IlpReject(
                    "F08",
                    CONNECTOR,
                    "amount too large",
                    encode_amount_too_large_data(prepare.amount, self.max_packet_amount),
                )
            )
        if self.t04 is not None and self.t04(prepare):
            return encode_reject(IlpReject("T04", CONNECTOR, "insufficient liquidity"))
        if self.drop is not None and self.drop(prepare):
            await asyncio.Event().wait()
        amount = int(prepare.amount * sender.rate)
        forwarded = IlpPrepare(
            amount,
            prepare.expires_at,
            prepare.execution_condition,
            prepare.destination,
            prepare.data,
        )
        reply = await receiver.deliver(forwarded)
        parsed = decode_reply(reply)
        if isinstance(parsed, IlpFulfill) and (
            hashlib.sha256(parsed.fulfillment).digest() != prepare.execution_condition
        ):
            return encode_reject(IlpReject("F05", CONNECTOR, "wrong fulfillment"))
        return reply
