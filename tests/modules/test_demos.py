"""The example modules' demo scripts run end to end (they are what docs/modules.md tells users
to run first)."""

from __future__ import annotations

from pathlib import Path

from claim_channel import demo as claim_demo
from payment_channel import demo as payment_demo


async def test_the_claim_demo_cashes_in_every_claim(tmp_path: Path) -> None:
    paid = await claim_demo.run(tmp_path, count=40, amount=10)
    assert paid == {"alice": 400, "bob": 100}


async def test_the_payment_demo_moves_exactly_what_was_paid(tmp_path: Path) -> None:
    balances = await payment_demo.run(tmp_path, count=40, amount=10)
    assert balances == {"alice": 10_400, "bob": 9_600}
