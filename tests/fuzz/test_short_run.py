"""The fuzzer's short run: the same code as `tools/fuzz.py`, a fixed seed and small counts.

It fails on any undocumented outcome: an exception other than a decoder's documented one, a frame
or close code the listener may not send, an ERROR the listener logged, a well-behaved transfer not
fulfilled, a ledger that does not add up, or a listener that died or grew too much.
"""

from __future__ import annotations

import pytest

from fuzzkit.decoders import TARGETS
from fuzzkit.run import run_all

SEED = 20240601
DECODER_INPUTS = 30_000
LIVE_INPUTS = 1_500

pytestmark = pytest.mark.fuzz


async def test_short_fuzz_run_finds_nothing_undocumented() -> None:
    report = await run_all(SEED, DECODER_INPUTS, LIVE_INPUTS, rss_limit_kb=100 * 1024)
    assert report.ok, report.text()
    assert set(report.decoders) == set(TARGETS)
    for stats in report.decoders.values():  # every target really ran, both ways
        assert stats.inputs > 0, stats.name
        assert stats.refused > 0 or stats.name == "peer_errors", stats.name
        assert stats.accepted > 0, stats.name
    live = report.live
    assert live is not None
    assert live.frames == LIVE_INPUTS
    assert live.good_fulfilled >= 40  # both plugin clients and the authenticated fuzzer paid
    assert live.ledger["balance"] == str(live.good_amount)
    for kind in ("junk", "bad-auth", "good-prepare", "fragmented", "prepare-expired"):
        assert live.kinds[kind] > 0, kind
