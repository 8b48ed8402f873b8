"""The `ilp-paychan` command: argument parsing and dispatch to serve, demo and status.

Importing this module must stay cheap (`--help` and `--version` run on every shell completion),
so the subcommands import their heavy modules only when they run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ilp_paychan import __version__

DEFAULT_ADMIN = "127.0.0.1:7770"
#: Exit codes: 0 done, 1 failed at run time, 2 bad usage or configuration.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The `ilp-paychan` command line: `serve`, `status` and `demo` with their flags."""
    parser = argparse.ArgumentParser(
        prog="ilp-paychan",
        description="Interledger payment-channel framework ledger plugin: BTP trustlines.",
        epilog="Run `ilp-paychan demo` for a two-minute tour; docs/config.md lists every option.",
    )
    parser.add_argument("--version", action="version", version=f"ilp-paychan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run every ledger of a configuration until SIGINT/SIGTERM",
        description="Run every ledger in the configuration (a JSON file, or the "
        "CONNECTOR_LEDGERS environment variable when --config is absent) until SIGINT or "
        "SIGTERM, then shut down gracefully and exit 0. A bad configuration prints one line "
        "and exits 2.",
    )
    serve.add_argument("--config", metavar="FILE", help="JSON: one options object or a ledger map")
    serve.add_argument(
        "--data-dir",
        metavar="DIR",
        default="ilp-paychan-data",
        help='where "store": true keeps one SQLite file per ledger (default: %(default)s)',
    )
    serve.add_argument(
        "--admin",
        metavar="HOST:PORT",
        default=DEFAULT_ADMIN,
        help="address of the /metrics and /status endpoint; port 0 picks a free one; "
        "'none' disables it (default: %(default)s)",
    )
    serve.add_argument(
        "--shutdown-timeout",
        metavar="SECONDS",
        type=_positive_float,
        default=10.0,
        help="how long in-flight requests may take to finish on shutdown (default: %(default)s)",
    )
    _add_log_options(serve)

    demo = sub.add_parser(
        "demo",
        help="pay back and forth between a server and a client on loopback",
        description="Start a server and a client plugin on loopback with SQLite stores in a "
        "temporary directory, send payments both ways (most fulfilled, a few rejected, a few "
        "left to expire) and print balances, counts, throughput and round-trip times.",
    )
    demo.add_argument(
        "--payments",
        type=_positive_int,
        default=3000,
        help="payments in total, half each way (default: %(default)s)",
    )
    demo.add_argument(
        "--in-flight",
        type=_positive_int,
        default=100,
        help="payments outstanding at once per direction (default: %(default)s)",
    )
    demo.add_argument(
        "--store-dir",
        metavar="DIR",
        help="keep the SQLite stores here instead of a temporary directory",
    )
    demo.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    demo.add_argument("--json", action="store_true", help="print the results as one JSON object")

    status = sub.add_parser(
        "status",
        help="show the ledgers of a running `serve`",
        description="Query the /status endpoint of a running `ilp-paychan serve`.",
    )
    status.add_argument(
        "--admin",
        metavar="HOST:PORT",
        default=DEFAULT_ADMIN,
        help="the serve's admin address (default: %(default)s)",
    )
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    return parser


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON object a line (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="(default: %(default)s)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        from ilp_paychan.shell.serve import serve_main

        return serve_main(args)
    if args.command == "demo":
        from ilp_paychan.shell.demo import demo_main

        return demo_main(args)
    if args.command == "status":
        from ilp_paychan.shell.status import status_main

        return status_main(args)
    parser.print_help()
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
