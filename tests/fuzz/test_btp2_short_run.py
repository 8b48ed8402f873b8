"""The BTP 2.0 fuzzer's short run: the same code as `tools/fuzz.py --target btp2`, a fixed seed
and a small count.

It fails on any undocumented outcome of a live `BtpPlugin` listener with the durable trustline
on SQLite: a frame it may not send, an ERROR it logged, an exception a handler let out, a good
Prepare not fulfilled, something still held at the end, a balance that is not the fulfilled
good amounts minus the money it accepted, or a listener that died or grew too much.
"""

from __future__ import annotations

import pytest

from fuzzkit.live_v2 import run_live_v2

SEED = 20240612
INPUTS = 1_500

pytestmark = pytest.mark.fuzz


async def test_short_btp2_fuzz_run_finds_nothing_undocumented() -> None:
    stats = await run_live_v2(SEED, INPUTS, rss_growth_limit_kb=100 * 1024)
    assert stats.failure_count == 0, stats.text()
    assert stats.frames >= INPUTS
    assert stats.good_fulfilled >= 50, stats.text()
    assert int(stats.ledger["balance"]["balance"]) == stats.good_amount - int(
        stats.ledger["balance"]["moneyReceived"]
    )
    for kind in ("junk", "bad-auth", "good-prepare", "money", "side-status", "ilp-mutated"):
        assert stats.kinds[kind] > 0, kind
