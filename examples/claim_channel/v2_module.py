"""The Ed25519 claim channel as a v2 settlement module, for `BtpPlugin(settlement=...)`.

    from claim_channel.v2_module import ClaimSettlement
    plugin = BtpPlugin({..., "balance": {"maximum": "1000", "minimum": "-1000",
                                         "settleThreshold": "-500", "settleTo": "0"},
                        "store": "sqlite:///a.db",
                        "settlement": ClaimSettlement(secret=SEED_HEX, peer_public_key=PEER_HEX,
                                                      ledger_path="/var/lib/chain",
                                                      channel_amount=1_000_000)})

The same channel, claims and ledger as the v1 module (`claim_channel.module`), fitted to the
v2 trustline: the trustline decides when to settle and how much, and asks this module for a
claim on everything paid so far (`create_claim(total_sent)`); the receiving side checks that the
peer's claim is signed, on our channel, funded and covers everything the peer has paid
(`check_claim(claim, total_received)`), keeps the best one in a MaxValueTracker of the plugin's
store (so it survives a restart), and cashes it in on the ledger when the plugin disconnects.
"""

from __future__ import annotations

from typing import Any

from claim_channel.claims import (
    channel_id,
    claim_is_signed_by,
    parse_claim,
    parse_hex32,
    private_key,
    public_bytes,
    sign_claim,
)
from claim_channel.ledger import ChannelLedger
from ilp_paychan.errors import NotAcceptedError

BEST_CLAIM_KEY = "v2_incoming_claim"


class ClaimSettlement:
    """Claims on a unidirectional Ed25519 channel per direction (see the module docstring)."""

    def __init__(
        self, *, secret: str, peer_public_key: str, ledger_path: str, channel_amount: int = 0
    ) -> None:
        self.key = private_key(secret)
        self.public = public_bytes(self.key)
        self.peer_public = parse_hex32(peer_public_key, "peer_public_key")
        self.ledger = ChannelLedger(ledger_path)
        self.channel_amount = channel_amount
        self.outgoing_channel = channel_id(self.public, self.peer_public)
        self.incoming_channel = channel_id(self.peer_public, self.public)
        self.best: Any = None

    async def open(self, backend: Any) -> None:
        """Lock our funds in the channel to the peer; find the best claim kept so far."""
        self.best = backend.get_max_value_tracker(BEST_CLAIM_KEY)
        if self.channel_amount > 0:
            await self.ledger.open_channel(self.public, self.peer_public, self.channel_amount)

    async def create_claim(self, total_sent: int) -> dict[str, str]:
        """A claim for everything we have paid the peer (cumulative)."""
        return sign_claim(self.key, self.outgoing_channel, total_sent)

    async def check_claim(self, claim: Any, total_received: int) -> None:
        """Refuse unless `claim` is the peer's, on our channel, funded, and covers the total."""
        try:
            parsed = parse_claim(claim)
        except ValueError as exc:
            raise NotAcceptedError(f"no valid claim: {exc}") from None
        if parsed.channel != self.incoming_channel:
            raise NotAcceptedError(f"the claim is for channel {parsed.channel}, not ours")
        if not claim_is_signed_by(self.peer_public, parsed):
            raise NotAcceptedError("the claim's signature is not the peer's")
        if parsed.balance < total_received:
            raise NotAcceptedError(
                f"the claim covers {parsed.balance}, the peer has paid {total_received} in all"
            )
        channel = await self.ledger.get_channel(parsed.channel)
        capacity = channel.capacity if channel is not None else 0
        if capacity < total_received:
            raise NotAcceptedError(f"the channel holds {capacity}, less than {total_received}")
        await self.best.set_if_max({"value": str(parsed.balance), "data": parsed.to_json()})

    async def close(self) -> None:
        """Cash in the best claim (the ledger pays only what was not cashed in before)."""
        if self.best is None:
            return
        best = await self.best.get_max()
        if best.get("data") is not None:
            await self.ledger.submit_claim(parse_claim(best["data"]))
