"""A connector author's view of ilp-paychan: two plugins on one trustline, in one process.

Alice runs the listener (a stateful plugin on an in-memory store); Bob dials in as a stateless
client. What a connector does with a ledger plugin, in order:

1. Bob answers requests (`register_request_handler`); Alice asks him for a quote with
   `send_request` and reads the answer.
2. Bob listens to `incoming_prepare`: he fulfils a transfer whose condition he can unlock
   (`fulfill_condition`) and rejects any other (`reject_incoming_transfer`).
3. Alice pays him twice with `send_transfer`: once with the condition of an invoice Bob issued
   (SHA-256 of a preimage only Bob knows), once with a condition nobody can unlock. She learns
   the outcomes from `outgoing_fulfill` and `outgoing_reject`.

Run it from the repository root: `python examples/connector_author.py`. It uses only 127.0.0.1,
picks a free port, and exits by itself (status 0 when everything went as described).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ilp_paychan import Plugin
from ilp_paychan.codec import IlpPayment, decode_ilp, encode_ilp

PREFIX = "example.trust."
SECRET = "alice-and-bob"
#: Every wait below ends after this many seconds, so the example never hangs.
WAIT = 10.0


def b64url(data: bytes) -> str:
    """Unpadded base64url, the text form of conditions, fulfillments and `ilp` data."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_bytes(text: str) -> bytes:
    """The bytes of an unpadded base64url string."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Receiver:
    """Bob's side: issues invoices and settles the transfers that pay them."""

    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin
        #: condition (base64url) -> fulfillment (base64url) of every invoice issued.
        self.invoices: dict[str, str] = {}
        plugin.on("incoming_prepare", self.on_incoming_prepare)
        plugin.register_request_handler(self.on_request)

    def invoice(self) -> str:
        """A fresh condition: the SHA-256 of a random preimage that only Bob keeps."""
        preimage = os.urandom(32)
        condition = b64url(hashlib.sha256(preimage).digest())
        self.invoices[condition] = b64url(preimage)
        return condition

    async def on_incoming_prepare(self, transfer: dict[str, Any]) -> None:
        """Fulfil a transfer that pays an invoice; reject anything else."""
        payment = decode_ilp(b64url_bytes(transfer["ilp"])) if transfer.get("ilp") else None
        destination = payment.account if isinstance(payment, IlpPayment) else "?"
        fulfillment = self.invoices.pop(transfer["executionCondition"], None)
        if fulfillment is not None:
            print(f"bob: incoming_prepare {transfer['amount']} for {destination}: fulfil")
            await self.plugin.fulfill_condition(transfer["id"], fulfillment)
        else:
            print(f"bob: incoming_prepare {transfer['amount']} for {destination}: reject")
            await self.plugin.reject_incoming_transfer(
                transfer["id"],
                {
                    "code": "F05",
                    "name": "Wrong Condition",
                    "additional_info": {"message": "no invoice has this condition"},
                },
            )

    def on_request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Answer a quote request (a handler may also be a coroutine function)."""
        amount = int(message.get("custom", {}).get("source_amount", "0"))
        return {"to": message["from"], "custom": {"destination_amount": str(amount * 2)}}


async def send_and_wait(alice: Plugin, amount: int, condition: str) -> str:
    """Send one transfer from Alice and wait for its outcome (fulfilled or rejected)."""
    transfer_id = str(uuid.uuid4())
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_fulfill(transfer: dict[str, Any], fulfillment: str, ilp: str | None) -> None:
        if transfer["id"] == transfer_id and not outcome.done():
            # The fulfillment is the preimage: Alice can check it against her condition.
            preimage_hash = b64url(hashlib.sha256(b64url_bytes(fulfillment)).digest())
            checked = "matches" if preimage_hash == condition else "DOES NOT MATCH"
            outcome.set_result(f"fulfilled (fulfillment {checked} the condition)")

    def on_reject(transfer: dict[str, Any], reason: dict[str, Any]) -> None:
        if transfer["id"] == transfer_id and not outcome.done():
            outcome.set_result(f"rejected: {reason['code']} {reason['name']}")

    alice.on("outgoing_fulfill", on_fulfill)
    alice.on("outgoing_reject", on_reject)
    try:
        await alice.send_transfer(
            {
                "id": transfer_id,
                "to": alice.get_peer_account(),
                "amount": str(amount),
                "executionCondition": condition,
                "expiresAt": (datetime.now(UTC) + timedelta(seconds=30)).isoformat(),
                "ilp": b64url(encode_ilp(IlpPayment(amount, "example.trust.client.shop"))),
            }
        )
        return await asyncio.wait_for(outcome, WAIT)
    finally:
        alice.off("outgoing_fulfill", on_fulfill)
        alice.off("outgoing_reject", on_reject)


async def main() -> None:
    """Connect Alice and Bob, run the three exchanges, print the balances, disconnect."""
    alice = Plugin(
        {
            "listener": {"port": 0, "host": "127.0.0.1"},
            "incomingSecret": SECRET,
            "prefix": PREFIX,
            "info": {
                "prefix": PREFIX,
                "currencyCode": "USD",
                "currencyScale": 2,
                "connectors": [PREFIX + "server"],
            },
            "store": "memory:",
            "maxBalance": "1000",
            "minBalance": "-1000",
        }
    )
    async with alice:
        print(f"alice: listening on 127.0.0.1:{alice.listener_port} as {alice.get_account()}")
        bob = Plugin({"server": f"btp+ws://:{SECRET}@127.0.0.1:{alice.listener_port}"})
        receiver = Receiver(bob)
        async with bob:
            print(f"bob: connected as {bob.get_account()}")

            answer = await alice.send_request(
                {"to": alice.get_peer_account(), "custom": {"source_amount": "25"}}
            )
            print(f"alice: quote for 25 is {answer['custom']['destination_amount']}")

            result = await send_and_wait(alice, 100, receiver.invoice())
            print(f"alice: transfer of 100 {result}")

            unknown = b64url(hashlib.sha256(os.urandom(32)).digest())
            result = await send_and_wait(alice, 50, unknown)
            print(f"alice: transfer of 50 {result}")

            print(f"balances: alice {await alice.get_balance()}, bob {await bob.get_balance()}")


if __name__ == "__main__":
    asyncio.run(main())
