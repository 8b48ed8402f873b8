"""Settlement through a payment-channel module on v2: the Ed25519 claim channel of the examples
(`claim_channel.v2_module`) between two real BtpPlugins, and a claim that does not cover what
was paid refused without moving either balance."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from claim_channel import v2_demo  # noqa: E402
from claim_channel.claims import private_key, public_bytes  # noqa: E402
from claim_channel.v2_module import ClaimSettlement  # noqa: E402

from ilp_paychan.errors import PeerError  # noqa: E402

from .conftest import Pair  # noqa: E402
from .trustline_helpers import balance_of  # noqa: E402


async def test_the_v2_claim_demo_settles_and_cashes_in(tmp_path: Path) -> None:
    result = await v2_demo.run(tmp_path, count=100, amount=10)
    assert result["fulfilled"] == 100
    alice, bob = result["alice"], result["bob"]
    assert int(alice["balance"]) == -int(bob["balance"]) == 490
    assert alice["moneyReceived"] == bob["moneySent"] == "510"
    assert result["cashed"] == 510


class ShortClaims(ClaimSettlement):
    """Signs one unit less than it paid."""

    async def create_claim(self, total_sent: int) -> dict[str, str]:
        """A claim short of the total by one."""
        return await super().create_claim(total_sent - 1)


async def test_a_claim_short_of_the_total_is_refused(pair: Pair, tmp_path: Path) -> None:
    seeds = {name: os.urandom(32).hex() for name in ("alice", "bob")}
    keys = {name: public_bytes(private_key(seed)).hex() for name, seed in seeds.items()}
    chain = str(tmp_path / "chain")
    await pair.start(
        {
            "store": "memory:",
            "settlement": ClaimSettlement(
                secret=seeds["alice"], peer_public_key=keys["bob"], ledger_path=chain
            ),
        },
        {
            "store": "memory:",
            "settlement": ShortClaims(
                secret=seeds["bob"],
                peer_public_key=keys["alice"],
                ledger_path=chain,
                channel_amount=1000,
            ),
        },
    )
    with pytest.raises(PeerError, match="covers 99"):
        await pair.client.send_money("100")
    for plugin in (pair.client, pair.server):
        state = await balance_of(plugin)
        assert state["balance"] == state["incomingPrepared"] == state["outgoingPrepared"] == "0"
        assert state["moneySent"] == state["moneyReceived"] == "0"
