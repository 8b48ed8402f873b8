"""Two v2 plugins settling with claims: `cd examples && python -m claim_channel.v2_demo`.

Alice listens, Bob dials in; both keep a durable trustline on SQLite and settle through the
claim channel (`claim_channel.v2_module`). Bob sends Alice ILPv4 packets; whenever he owes her
more than 500 his trustline settles back to 0 with a claim. Both disconnect, Alice cashes in
her best claim, and the demo prints what each side counted and what the ledger paid.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from claim_channel.claims import channel_id, private_key, public_bytes
from claim_channel.ledger import ChannelLedger
from claim_channel.v2_module import ClaimSettlement
from ilp_paychan.codec import ilp4
from ilp_paychan.v2.plugin import BtpPlugin

SECRET = "demo_secret"


async def run(workdir: Path, count: int = 100, amount: int = 10) -> dict[str, Any]:
    """Run the demo in `workdir`; returns both balances, the money counted and the ledger's."""
    seeds = {"alice": os.urandom(32).hex(), "bob": os.urandom(32).hex()}
    keys = {name: public_bytes(private_key(seed)) for name, seed in seeds.items()}

    def settlement(me: str, peer: str) -> ClaimSettlement:
        return ClaimSettlement(
            secret=seeds[me],
            peer_public_key=keys[peer].hex(),
            ledger_path=str(workdir / "chain"),
            channel_amount=1_000_000,
        )

    alice = BtpPlugin(
        listener={"port": 0, "host": "127.0.0.1", "secret": SECRET},
        balance={"maximum": "1000"},
        store=str(workdir / "alice.db"),
        settlement=settlement("alice", "bob"),
    )
    await alice.connect()
    bob = BtpPlugin(
        server=f"btp+ws://bob:{SECRET}@127.0.0.1:{alice.listener_port}",
        balance={"maximum": "0", "minimum": "-1000", "settleThreshold": "-500", "settleTo": "0"},
        store=str(workdir / "bob.db"),
        settlement=settlement("bob", "alice"),
    )
    await bob.connect()
    preimage = os.urandom(32)
    fulfil = ilp4.encode_fulfill(ilp4.IlpFulfill(preimage, b""))

    async def answer(data: bytes) -> bytes:
        return fulfil

    alice.register_data_handler(answer)
    fulfilled = 0
    for _ in range(count):
        expires = datetime.now(UTC) + timedelta(seconds=30)
        packet = ilp4.IlpPrepare(
            amount, expires, hashlib.sha256(preimage).digest(), "example.alice", os.urandom(8)
        )
        reply = await bob.send_data(ilp4.encode_prepare(packet))
        if reply[0] == ilp4.TYPE_FULFILL:
            fulfilled += 1
        else:
            await asyncio.sleep(0.05)  # over the limit until Bob's settlement lands
    for _ in range(200):
        if int((await bob.accounting.get_balance())["balance"]) > -500:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.01)
    result = {
        "fulfilled": fulfilled,
        "alice": await alice.accounting.get_balance(),  # type: ignore[union-attr]
        "bob": await bob.accounting.get_balance(),  # type: ignore[union-attr]
    }
    await bob.disconnect()
    await alice.disconnect()
    channel = await ChannelLedger(workdir / "chain").get_channel(
        channel_id(keys["bob"], keys["alice"])
    )
    result["cashed"] = channel.claimed if channel is not None else 0
    print(f"bob sent {fulfilled} packets of {amount}")
    print(
        f"alice: balance {result['alice']['balance']}, received {result['alice']['moneyReceived']}"
    )
    print(f"bob:   balance {result['bob']['balance']}, sent {result['bob']['moneySent']}")
    print(f"ledger: alice cashed in {result['cashed']} from bob's channel")
    return result


def main() -> None:
    """Run the demo in a temporary directory."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="packets from Bob to Alice")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(run(Path(workdir), args.count))


if __name__ == "__main__":
    main()
