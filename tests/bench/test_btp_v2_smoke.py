"""bench/btp_v2.py keeps working: a tiny run of every pairing through real processes.

Nothing here is timed: each pairing only has to finish with every Prepare fulfilled and give a
row with a measured rate.
"""

from __future__ import annotations

import re

import pytest

from testkit.bench import run_bench

LABELS = {
    "js": "ilp-plugin-btp ↔ ilp-plugin-btp",
    "py": "BtpPlugin ↔ BtpPlugin",
    "py-js": "JS listener ← our client",
    "js-py": "our listener ← JS client",
    "js-pair": "ilp-plugin-btp pair, one process",
}


@pytest.mark.interop  # ilp-plugin-btp runs in node
@pytest.mark.timeout(180)
def test_a_tiny_run_of_every_pairing() -> None:
    stdout, rows = run_bench(
        "btp_v2.py",
        "--n",
        "60",
        "--warmup",
        "10",
        "--reps",
        "1",
        "--configs",
        ",".join([*LABELS, "full"]),
    )
    labels = list(LABELS.values())
    if "trustline pairing skipped" not in stdout:
        labels.append("BtpPlugin ↔ BtpPlugin, trustline SQLite FULL")
    for label in labels:
        (row,) = [row for row in rows if row.startswith(f"| {label} |")]
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert cells[1:3] == ["60", "100"], row
        assert re.fullmatch(r"[\d,]+", cells[3]), row  # a measured rate, not "–"
        assert re.fullmatch(r"\d+\.\d\d", cells[4]), row  # a ratio to the JS pairing
