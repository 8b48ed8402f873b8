"""bench/btp_v2.py keeps working: a tiny run of every pairing through real processes.

Nothing here is timed: each pairing only has to finish with every Prepare fulfilled and give a
row with a measured rate.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
SCRIPT = REPO / "bench" / "btp_v2.py"
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
    finished = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--n",
            "60",
            "--warmup",
            "10",
            "--reps",
            "1",
            "--configs",
            ",".join([*LABELS, "full"]),
            "--no-append",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,  # a bound so a hang fails the test, not a measurement
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "FAILED" not in finished.stdout
    assert "appended" not in finished.stdout
    rows = [line for line in finished.stdout.splitlines() if line.startswith("| ")]
    labels = list(LABELS.values())
    if "trustline pairing skipped" not in finished.stdout:
        labels.append("BtpPlugin ↔ BtpPlugin, trustline SQLite FULL")
    for label in labels:
        (row,) = [row for row in rows if row.startswith(f"| {label} |")]
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert cells[1:3] == ["60", "100"], row
        assert re.fullmatch(r"[\d,]+", cells[3]), row  # a measured rate, not "–"
        assert re.fullmatch(r"\d+\.\d\d", cells[4]), row  # a ratio to the JS pairing
