"""bench/stream.py keeps working: a tiny run of every pair through a real ilp-connector.

Nothing here is timed: each payment only has to arrive whole, counted by the receiver.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
SCRIPT = REPO / "bench" / "stream.py"
PAIRS = ("JS → JS", "JS → Py", "Py → JS", "Py → Py", "Py → Py direct")


@pytest.mark.interop  # the connector and the JS STREAM hosts run in node
@pytest.mark.timeout(240)
def test_a_quick_run_pays_over_every_pair() -> None:
    finished = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--in-flight", "1,5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=230,  # a bound so a hang fails the test, not a measurement
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "appended" not in finished.stdout
    rows = [line for line in finished.stdout.splitlines() if line.startswith("| ")]
    for pair in PAIRS:
        matching = [row for row in rows if row.startswith(f"| {pair} |")]
        assert len(matching) == (1 if pair.startswith("JS") else 2), (pair, finished.stdout)
        for row in matching:
            cells = [cell.strip() for cell in row.split("|")]
            assert cells[3] == "20,000", row
            assert int(cells[4].replace(",", "")) >= 20, row  # at least amount / maxPacketAmount
