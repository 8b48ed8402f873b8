"""Running a script of bench/ from a smoke test: a tiny run that must finish cleanly.

The smoke tests only check that a benchmark still works end to end, so each runs its script the
same way and reads the same things back: the Markdown table rows it printed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def run_bench(script: str, *arguments: str) -> tuple[str, list[str]]:
    """Run `bench/<script>` with `arguments` (never appending to RESULTS.md); its stdout and the
    table rows in it. Fails the test when it exits non-zero, reports a failed run, or appended."""
    finished = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *arguments, "--no-append"],
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
    return finished.stdout, rows
