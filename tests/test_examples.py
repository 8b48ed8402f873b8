"""The connector-author example that README.md and docs/api.md point to runs as documented.

It is run as a user would run it (a separate Python process, from the repository root), so a
change of the public API that breaks it fails here rather than in a reader's terminal.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "connector_author.py"


def test_the_connector_author_example_pays_rejects_and_quotes() -> None:
    finished = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,  # a bound so a hang fails the test, not a measurement
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert re.fullmatch(
        r"alice: listening on 127\.0\.0\.1:\d+ as example\.trust\.server", lines[0]
    ), lines
    assert lines[1:] == [
        "bob: connected as example.trust.client",
        "alice: quote for 25 is 50",
        "bob: incoming_prepare 100 for example.trust.client.shop: fulfil",
        "alice: transfer of 100 fulfilled (fulfillment matches the condition)",
        "bob: incoming_prepare 50 for example.trust.client.shop: reject",
        "alice: transfer of 50 rejected: F05 Wrong Condition",
        "balances: alice -100, bob 100",
    ]
    assert "Traceback" not in finished.stderr
