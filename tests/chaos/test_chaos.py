"""Crash-and-restart chaos, CI-sized: both sides paying each other, each SIGKILLed several times.

The long run of the same harness is `tools/chaos.py` (>= 20 kills per side, thousands of
transfers). Each run draws a fresh seed and prints it; ILP_PAYCHAN_CHAOS_SEED=N replays a seed's
kill plan (the timing of a run on a shared machine is never exactly the same).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from chaos.harness import ChaosConfig, Outcome, run_chaos

TRANSFERS = 400
KILLS_PER_SIDE = 4


def chaos_seed() -> int:
    given = os.environ.get("ILP_PAYCHAN_CHAOS_SEED")
    return int(given) if given else random.SystemRandom().randrange(1_000_000)


def assert_agreement(outcome: Outcome, config: ChaosConfig) -> None:
    if not outcome.ok:
        pytest.fail(f"{outcome.summary()}\n{outcome.report}", pytrace=False)
    assert outcome.kills == {"server": config.kills, "client": config.kills}
    counts = outcome.counts
    assert counts["sent"] == config.transfers
    # The run went through every path: paid, refused on purpose, and expired.
    assert counts["fulfilled"] > 0, counts
    assert counts["rejected"] > 0, counts
    assert counts["expired"] > 0, counts


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sqlite_sides_agree_after_sigkills(tmp_path: Path) -> None:
    seed = chaos_seed()
    print(f"chaos seed {seed} (ILP_PAYCHAN_CHAOS_SEED={seed} to replay)")
    config = ChaosConfig(tmp_path, seed, transfers=TRANSFERS, kills=KILLS_PER_SIDE)
    assert_agreement(run_chaos(config), config)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(400)
def test_postgres_sides_agree_after_sigkills(tmp_path: Path, postgres_url: str) -> None:
    seed = chaos_seed()
    print(f"chaos seed {seed} (ILP_PAYCHAN_CHAOS_SEED={seed} to replay)")
    config = ChaosConfig(
        tmp_path,
        seed,
        transfers=TRANSFERS,
        kills=KILLS_PER_SIDE,
        store="postgres",
        postgres_url=postgres_url,
    )
    assert_agreement(run_chaos(config), config)
