"""The v2 form of a payment-channel module: what the trustline asks a module when money moves.

Why a smaller interface than the v1 module hooks: on v2 the trustline already decides when to
settle and how much (`balance.settleThreshold`/`settleTo`) and carries the money as a BTP
Transfer, so a module only has to turn "we have now paid N in all" into a proof for the peer
(a signed claim), and check the peer's proof against "the peer has now paid us N in all".
Totals are cumulative, so a lost or repeated proof is healed by the next one, and the same
Transfer retried after a crash gets the same proof.

A module is any object with:
- `async create_claim(total_sent: int) -> Any`: a JSON value to send with a Transfer that brings
  what we have paid the peer to `total_sent` (None: nothing to attach);
- `async check_claim(claim: Any, total_received: int) -> None`: the peer's Transfer brings what
  it has paid us to `total_received`; raise to refuse it (the peer gets a BTP Error and the
  balance does not move); `claim` is None when the peer attached none;
- optionally `async open(backend)` (the plugin's ledger `Backend`, for the module's own durable
  state, e.g. a `MaxValueTracker` of the best claim) and `async close()`.

examples/claim_channel/v2_module.py is the Ed25519 claim channel in this form.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ilp_paychan.errors import InvalidFieldsError

_REQUIRED = ("create_claim", "check_claim")


@runtime_checkable
class SettlementModule(Protocol):
    """A payment-channel module on v2 (see the module docstring)."""

    async def create_claim(self, total_sent: int) -> Any:
        """The proof for the peer that we have paid `total_sent` in all (JSON, or None)."""

    async def check_claim(self, claim: Any, total_received: int) -> None:
        """Raise unless `claim` proves the peer has paid us `total_received` in all."""


def check_settlement_module(module: object) -> None:
    """Refuse an object that lacks a required method, naming the missing ones.

    Raises:
        InvalidFieldsError: `settlement` lacks `create_claim` or `check_claim`.
    """
    missing = [name for name in _REQUIRED if not callable(getattr(module, name, None))]
    if missing:
        raise InvalidFieldsError(
            f'invalid "settlement": the module has no {" and no ".join(missing)}'
            " (see ilp_paychan.v2.settlement)"
        )
