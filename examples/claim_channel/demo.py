"""Two plugins settling with claims on loopback: `cd examples && python -m claim_channel.demo`.

Alice listens, Bob dials in; both run the claim-channel module over one simulated ledger in a
temporary directory. Bob pays Alice, Alice pays Bob back a little, then both disconnect and cash
in their best claims. Prints what each side secured.
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

from claim_channel import module as claim_module
from claim_channel.claims import channel_id, private_key, public_bytes
from claim_channel.ledger import ChannelLedger
from ilp_paychan import Plugin, make_payment_channel_plugin

PREFIX = "example.claims."
SECRET = "demo_secret"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class AutoFulfil:
    """Fulfils every incoming transfer whose condition we know the preimage of."""

    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin
        self.preimages: dict[str, str] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        plugin.on("incoming_prepare", self._on_prepare)

    def expect(self) -> str:
        preimage = os.urandom(32)
        condition = _b64url(hashlib.sha256(preimage).digest())
        self.preimages[condition] = _b64url(preimage)
        return condition

    def _on_prepare(self, transfer: dict[str, Any]) -> None:
        fulfillment = self.preimages.pop(transfer["executionCondition"], None)
        if fulfillment is not None:
            task = asyncio.ensure_future(self.plugin.fulfill_condition(transfer["id"], fulfillment))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


async def pay(sender: Plugin, receiver: AutoFulfil, amount: int) -> None:
    """One transfer; retried (new id) while the receiver says our claims lag behind."""
    for _ in range(100):
        transfer = {
            "id": str(uuid.uuid4()),
            "to": receiver.plugin.get_account(),
            "amount": str(amount),
            "executionCondition": receiver.expect(),
            "expiresAt": (datetime.now(UTC) + timedelta(seconds=30)).isoformat(),
        }
        try:
            await sender.send_transfer(transfer)
            return
        except Exception as exc:
            if "unsecured" not in str(exc):
                raise
            await asyncio.sleep(0.02)
    raise RuntimeError("the receiver kept refusing")


async def best_claim(plugin: Plugin) -> int:
    assert plugin.backend is not None
    entry = await plugin.backend.get_max_value_tracker("incoming_claim").get_max()
    return int(entry["value"])


async def run(workdir: Path, count: int = 100, amount: int = 10) -> dict[str, int]:
    """Run the demo in `workdir`; returns what each channel paid out on the ledger."""
    seeds = {"alice": os.urandom(32).hex(), "bob": os.urandom(32).hex()}
    keys = {name: public_bytes(private_key(seed)) for name, seed in seeds.items()}
    cls = make_payment_channel_plugin(claim_module)

    def options(me: str, peer: str) -> dict[str, Any]:
        return {
            "store": f"sqlite:///{workdir / (me + '.db')}",
            "maxBalance": "1000000000",
            "prefix": PREFIX,
            "info": {"currencyCode": "XCL", "currencyScale": 6},
            "secret": seeds[me],
            "peerPublicKey": keys[peer].hex(),
            "ledgerPath": str(workdir / "chain"),
            "channelAmount": "1000000",
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
    at_alice, at_bob = AutoFulfil(alice), AutoFulfil(bob)
    gate = asyncio.Semaphore(20)

    async def limited(sender: Plugin, receiver: AutoFulfil) -> None:
        async with gate:
            await pay(sender, receiver, amount)

    await asyncio.gather(*(limited(bob, at_alice) for _ in range(count)))
    await asyncio.gather(*(limited(alice, at_bob) for _ in range(count // 4)))
    for side in (at_alice, at_bob):
        await asyncio.gather(*side.tasks)
    print(
        f"alice received {await alice.transfer_log.get_incoming_fulfilled()}, "
        f"best claim {await best_claim(alice)}"
    )
    print(
        f"bob   received {await bob.transfer_log.get_incoming_fulfilled()}, "
        f"best claim {await best_claim(bob)}"
    )
    await bob.disconnect()
    await alice.disconnect()
    ledger = ChannelLedger(workdir / "chain")
    paid = {}
    for sender, receiver in (("bob", "alice"), ("alice", "bob")):
        channel = await ledger.get_channel(channel_id(keys[sender], keys[receiver]))
        paid[receiver] = channel.claimed if channel is not None else 0
        print(f"ledger: {receiver} cashed in {paid[receiver]} from {sender}'s channel")
    return paid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="transfers from Bob to Alice")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(run(Path(workdir), args.count))


if __name__ == "__main__":
    main()
