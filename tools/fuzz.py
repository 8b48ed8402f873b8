"""Long fuzz run: every decoder and a live listener, >= 1,000,000 inputs by default.

The implementation lives in tests/fuzzkit (the CI suite runs the same code with a fixed seed and
small counts, tests/fuzz/test_short_run.py); this only puts tests/ on the import path.

Usage:  .venv/bin/python tools/fuzz.py [--seed N] [--count 1000000] [--live-share 0.08]
                                       [--rss-limit-mb 200] [--quiet]

Prints the seed, the inputs and outcomes per target, the failures with their inputs, and the
peak RSS of the listener; exits 1 on any undocumented exception or failed check.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from fuzzkit.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
