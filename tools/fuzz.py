"""Long fuzz run: every decoder and a live listener, >= 1,000,000 inputs by default.

The implementation lives in tests/fuzzkit (the CI suite runs the same code with a fixed seed and
small counts, tests/fuzz/); this only puts tests/ on the import path and picks the target.

Usage:  .venv/bin/python tools/fuzz.py [--seed N] [--count 1000000] [--live-share 0.08]
                                       [--rss-limit-mb 200] [--quiet]
        .venv/bin/python tools/fuzz.py --target btp2 [--seed N] [--count 100000]
                                       [--rss-limit-mb 200] [--quiet]

`--target btp1` (the default) fuzzes the decoders and a BTP 1.0 Plugin listener; `--target btp2`
a BTP 2.0 BtpPlugin listener with the durable trustline (tests/fuzzkit/live_v2.py).
Prints the seed, the inputs and outcomes, the failures with their inputs, and the listener's
RSS; exits 1 on any undocumented exception or failed check.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))


def _split_target(argv: list[str]) -> tuple[str, list[str]]:
    """The `--target` value ("btp1" when absent) and the other arguments."""
    rest: list[str] = []
    target = "btp1"
    args = iter(argv)
    for arg in args:
        if arg == "--target":
            target = next(args, "")
        elif arg.startswith("--target="):
            target = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return target, rest


if __name__ == "__main__":
    target, rest = _split_target(sys.argv[1:])
    if target == "btp2":
        from fuzzkit.live_v2 import main as main_btp2

        sys.exit(main_btp2(rest))
    if target != "btp1":
        sys.exit(f'invalid --target: expected "btp1" or "btp2"; got {target!r}')
    from fuzzkit.run import main

    sys.exit(main(rest))
