"""bench/transfers.py keeps working: a tiny run through real processes, and its check bites.

Nothing here is timed: the run only has to finish with every transfer checked on both sides.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

import pytest

from testkit.bench import REPO, run_bench

SCRIPT = REPO / "bench" / "transfers.py"
CONFIGS = {"memory": "Py ↔ Py, memory:", "full": "Py ↔ Py, SQLite FULL", "py-js": "JS client"}


@pytest.mark.interop  # one pairing runs the JS reference's client
@pytest.mark.timeout(180)
def test_a_quick_run_checks_every_transfer_of_each_pairing() -> None:
    stdout, rows = run_bench(
        "transfers.py",
        "--quick",
        "--n",
        "20",
        "--in-flight",
        "1,10",
        "--configs",
        ",".join(CONFIGS),
    )
    for label in CONFIGS.values():
        for in_flight in ("1", "10"):
            matching = [row for row in rows if label in row and f"| {in_flight} | 20 |" in row]
            assert len(matching) == 1, (label, in_flight, stdout)
            rate = matching[0].split("|")[4]
            assert re.match(r"\s*[\d,]+ \(", rate), matching[0]  # a measured rate, not "–"
    durable = next(row for row in rows if CONFIGS["full"] in row)
    assert re.search(r"\| \d+\.\d\d \(\d+\.\d\d\) / – \|$", durable), durable  # commits counted


def _bench_module() -> ModuleType:
    bench = str(REPO / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)  # transfers.py imports its sibling _harness
    spec = importlib.util.spec_from_file_location("bench_transfers", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_check_reports_a_missing_transfer_and_a_wrong_balance() -> None:
    bench = _bench_module()
    config = bench.BY_NAME["memory"]
    side = {"fulfilled": 25, "failed": 0, "digest": "7", "wall_s": 0.1}
    good = bench.Run(config, 20, 1, 25, {**side, "balance": "25"}, {**side, "balance": "-25"})
    assert bench.check(good, 25) == []
    short = bench.Run(
        config,
        20,
        1,
        25,
        {**side, "fulfilled": 24, "digest": "6", "balance": "24"},
        {**side, "balance": "-25"},
    )
    problems = bench.check(short, 25)
    assert any(problem.startswith("listener: 24 of 25 fulfilled") for problem in problems)
    assert "the two sides fulfilled different sets of transfer ids" in problems
    assert "listener balance 24, expected 25" in problems
