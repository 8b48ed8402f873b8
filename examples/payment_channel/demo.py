"""Two plugins settling by ledger payments on loopback: `cd examples && python -m
payment_channel.demo`.

Alice listens, Bob dials in; both run the payment-channel module over one simulated ledger in a
temporary directory where each starts with 10000. Bob pays Alice over the trustline; his module
pays her on the ledger only what he owes. Prints the trustline and the ledger at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ilp_paychan import Plugin, make_payment_channel_plugin
from payment_channel import module as payment_module
from payment_channel.ledger import PaymentLedger

PREFIX = "example.payments."
SECRET = "demo_secret"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


async def run(workdir: Path, count: int = 100, amount: int = 10) -> dict[str, int]:
    """Run the demo in `workdir`; returns the ledger balances at the end."""
    ledger = PaymentLedger(workdir / "bank")
    for name in ("alice", "bob"):
        await ledger.fund(name, 10_000)
    cls = make_payment_channel_plugin(payment_module)

    def options(me: str, peer: str) -> dict[str, Any]:
        return {
            "store": f"sqlite:///{workdir / (me + '.db')}",
            "maxBalance": "1000000000",
            "prefix": PREFIX,
            "info": {"currencyCode": "XPY", "currencyScale": 2},
            "ledgerPath": str(workdir / "bank"),
            "ledgerAccount": me,
            "peerLedgerAccount": peer,
            "maxUnsecured": str(amount * 20),
        }

    alice = cls(
        {
            **options("alice", "bob"),
            "listener": {"port": 0, "host": "127.0.0.1"},
            "incomingSecret": SECRET,
        }
    )
    await alice.connect()
    port = alice.listener_port
    bob = cls({**options("bob", "alice"), "server": f"btp+ws://:{SECRET}@127.0.0.1:{port}"})
    await bob.connect()
    preimages: dict[str, str] = {}
    fulfils: set[asyncio.Task[None]] = set()

    def on_prepare(transfer: dict[str, Any]) -> None:
        fulfillment = preimages.pop(transfer["executionCondition"], None)
        if fulfillment is not None:
            task = asyncio.ensure_future(alice.fulfill_condition(transfer["id"], fulfillment))
            fulfils.add(task)
            task.add_done_callback(fulfils.discard)

    alice.on("incoming_prepare", on_prepare)
    gate = asyncio.Semaphore(10)

    async def pay_once(sender: Plugin) -> None:
        async with gate:
            for _ in range(100):
                preimage = os.urandom(32)
                condition = _b64url(hashlib.sha256(preimage).digest())
                preimages[condition] = _b64url(preimage)
                transfer = {
                    "id": str(uuid.uuid4()),
                    "to": alice.get_account(),
                    "amount": str(amount),
                    "executionCondition": condition,
                    "expiresAt": (datetime.now(UTC) + timedelta(seconds=30)).isoformat(),
                }
                try:
                    await sender.send_transfer(transfer)
                    return
                except Exception as exc:
                    if "unsecured" not in str(exc):
                        raise
                    await asyncio.sleep(0.02)

    await asyncio.gather(*(pay_once(bob) for _ in range(count)))
    await asyncio.gather(*fulfils)
    payments = await ledger.payments("bob", "alice")
    print(f"trustline: bob paid alice {await bob.transfer_log.get_outgoing_fulfilled()}")
    print(f"ledger: {len(payments)} settlement payments, {sum(p.amount for p in payments)} in all")
    await bob.disconnect()
    await alice.disconnect()
    balances = {name: await ledger.balance(name) for name in ("alice", "bob")}
    print(f"ledger balances: {balances}")
    return balances


def main() -> None:
    parser = argparse.ArgumentParser(description="payment-channel module demo")
    parser.add_argument("--count", type=int, default=200, help="transfers from Bob to Alice")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(run(Path(workdir), args.count))


if __name__ == "__main__":
    main()
