"""One fuzz run (decoders, then the live listener), its report, and the command line.

The CI suite calls `run_all` with a fixed seed and small counts; `tools/fuzz.py` calls `main`
with large ones. Same code, two sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from dataclasses import dataclass

from .decoders import TargetStats, run_decoders
from .live import LiveStats, kinds_summary, run_live

DEFAULT_COUNT = 1_000_000
DEFAULT_LIVE_SHARE = 0.08
DEFAULT_RSS_LIMIT_MB = 200


@dataclass
class Report:
    """Everything a run found; `ok` is False on any undocumented outcome."""

    seed: int
    decoders: dict[str, TargetStats]
    live: LiveStats | None
    decoder_seconds: float
    driver_peak_rss_kb: int

    @property
    def failure_count(self) -> int:
        count = sum(s.failures for s in self.decoders.values())
        return count + (self.live.failure_count if self.live else 0)

    @property
    def ok(self) -> bool:
        return self.failure_count == 0

    @property
    def total_inputs(self) -> int:
        count = sum(s.inputs for s in self.decoders.values())
        return count + (self.live.frames if self.live else 0)

    def text(self) -> str:
        lines = [
            f"seed {self.seed}: {self.total_inputs} inputs, {self.failure_count} failures",
            "",
            f"decoders ({self.decoder_seconds:.1f} s):",
            f"  {'target':<14} {'inputs':>9} {'accepted':>9} {'refused':>9} {'failures':>9}",
        ]
        for s in self.decoders.values():
            lines.append(
                f"  {s.name:<14} {s.inputs:>9} {s.accepted:>9} {s.refused:>9} {s.failures:>9}"
            )
        live = self.live
        if live is not None:
            lines += [
                "",
                f"live listener ({live.seconds:.1f} s): {live.frames} inputs over "
                f"{live.connections} connections, {live.failure_count} failures",
                f"  inputs: {kinds_summary(live.kinds.items())}",
                f"  answers: {kinds_summary(live.answers.items())}",
                f"  closes: {kinds_summary(live.closes.items())}",
                f"  well-behaved transfers: {live.good_sent} sent, {live.good_fulfilled} "
                f"fulfilled ({live.good_amount} in all), {live.good_lost} lost unanswered with "
                f"a socket the fuzzer made the listener close; listener balance "
                f"{live.ledger.get('balance')}, errors logged {live.ledger.get('errors_logged')}",
                f"  listener RSS: {live.rss_start_kb} KiB after warm-up, {live.rss_end_kb} KiB "
                f"at the end, peak {live.rss_peak_kb} KiB",
            ]
        lines.append(f"driver peak RSS: {self.driver_peak_rss_kb} KiB")
        failures = [f.line() for s in self.decoders.values() for f in s.kept]
        failures += live.failures if live is not None else []
        if failures:
            lines += ["", "failures (first of each target):", *failures]
        return "\n".join(lines)


async def run_all(
    seed: int,
    decoder_count: int,
    live_count: int,
    *,
    rss_limit_kb: int = DEFAULT_RSS_LIMIT_MB * 1024,
    progress: bool = False,
) -> Report:
    """Feed `decoder_count` inputs to the decoders and `live_count` to a live listener."""

    def say(text: str) -> None:
        if progress:
            print(text, flush=True)

    started = time.monotonic()
    decoders = run_decoders(
        seed, decoder_count, progress=lambda i: say(f"decoders: {i} inputs") if i else None
    )
    decoder_seconds = time.monotonic() - started
    say(f"decoders done in {decoder_seconds:.1f} s")
    live = None
    if live_count > 0:
        live = await run_live(seed, live_count, say, rss_growth_limit_kb=rss_limit_kb)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return Report(seed, decoders, live, decoder_seconds, peak)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fuzz every decoder and a live listener; exit 1 on any undocumented outcome."
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    parser.add_argument(
        "--count", type=int, default=DEFAULT_COUNT, help="inputs in all (default 1,000,000)"
    )
    parser.add_argument(
        "--live-share",
        type=float,
        default=DEFAULT_LIVE_SHARE,
        help="share of the inputs sent to the live listener (default 0.08)",
    )
    parser.add_argument(
        "--rss-limit-mb",
        type=int,
        default=DEFAULT_RSS_LIMIT_MB,
        help="largest allowed growth of the listener's RSS after warm-up (default 200)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    live_count = int(args.count * args.live_share)
    decoder_count = args.count - live_count
    print(f"fuzz: seed {seed}, {args.count} inputs ({decoder_count} decoders, {live_count} live)")
    started = time.monotonic()
    report = asyncio.run(
        run_all(
            seed,
            decoder_count,
            live_count,
            rss_limit_kb=args.rss_limit_mb * 1024,
            progress=not args.quiet,
        )
    )
    print()
    print(report.text())
    result = "OK" if report.ok else "FAILED"
    print(f"\ntotal time {time.monotonic() - started:.1f} s; result: {result}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
