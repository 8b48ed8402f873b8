"""The `ilp-paychan` command: argument parsing and dispatch to serve, demo, status, pay and receive.

Importing this module must stay cheap (`--help` and `--version` run on every shell completion),
so the subcommands import their heavy modules only when they run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ilp_paychan import __version__

DEFAULT_ADMIN = "127.0.0.1:7770"
#: Exit codes: 0 done, 1 failed at run time, 2 bad usage or configuration.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The `ilp-paychan` command line: serve, status, demo, receive and pay, with their flags."""
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
    demo.add_argument(
        "--stream",
        action="store_true",
        help="instead: one STREAM payment set up over SPSP, on a loopback link, with a progress "
        "bar and a summary table",
    )
    demo.add_argument(
        "--amount",
        type=_amount,
        default=1_000_000,
        help="with --stream: what to pay (default: %(default)s)",
    )
    demo.add_argument(
        "--max-packet",
        type=_amount,
        default=1000,
        help="with --stream: the receiver's maximum packet amount (default: %(default)s)",
    )
    demo.add_argument(
        "--link",
        choices=("auto", "connector", "btp", "v1"),
        default="auto",
        help="with --stream: through an ilp-connector 23 child process (needs Node.js and npm; "
        "installed into the user's cache on first use), or over our own two-party link of "
        "BtpPlugins (BTP 2.0) or of v1 trustline plugins behind V1Adapter; auto: the connector "
        "when Node.js and npm are there, btp otherwise (default: %(default)s)",
    )
    demo.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    demo.add_argument("--json", action="store_true", help="print the results as one JSON object")

    _add_stream_commands(sub)

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


def _add_stream_commands(sub: Any) -> None:
    """`receive` and `pay`: STREAM payments set up over SPSP (docs/stream.md)."""
    from ilp_paychan.shell.exit_codes import exit_codes_epilog

    receive = sub.add_parser(
        "receive",
        help="receive STREAM payments: serve SPSP and print each amount received",
        description="Attach the plugin of a config file (the shape `serve` reads, one ledger), "
        "serve SPSP on HOST:PORT and print a `ready` line with the SPSP URL, then one line per "
        "amount received, until SIGINT or SIGTERM; then stop cleanly and exit 0. The SPSP "
        "endpoint speaks plain HTTP: put it behind a TLS-terminating proxy for other hosts.",
    )
    _add_plugin_options(receive)
    receive.add_argument(
        "--spsp",
        metavar="HOST:PORT",
        required=True,
        type=_host_port,
        help="where to serve SPSP; port 0 picks a free one (the ready line names it)",
    )
    receive.add_argument(
        "--spsp-path",
        metavar="PATH",
        default="/.well-known/pay",
        help="the endpoint's path (default: %(default)s, what `$host` resolves to)",
    )
    receive.add_argument(
        "--max-packet-amount",
        metavar="N",
        type=_amount,
        help="refuse packets above N with F08 (as a connector does), so payers split payments",
    )
    receive.add_argument("--json", action="store_true", help="one JSON object per line")

    pay = sub.add_parser(
        "pay",
        help="pay an SPSP receiver (payment pointer or URL) over STREAM",
        description="Attach the plugin of a config file (the shape `serve` reads, one ledger), "
        "query the receiver's SPSP endpoint and pay AMOUNT over STREAM; print what was sent and "
        "delivered. Exit 0 only when the whole amount was delivered at an acceptable rate.",
        epilog=exit_codes_epilog(),
    )
    _add_plugin_options(pay)
    pay.add_argument(
        "--to",
        metavar="POINTER_OR_URL",
        required=True,
        help="a payment pointer ($example.com/alice) or the SPSP endpoint's https:// URL "
        "(http:// for a loopback host)",
    )
    pay.add_argument(
        "--amount",
        metavar="N",
        required=True,
        type=_amount,
        help="what to send, a positive integer in the plugin's units",
    )
    pay.add_argument(
        "--min-rate",
        metavar="R",
        type=_rate,
        help="least units the receiver must get per unit sent, a decimal (default: the "
        "measured rate less 1 %%)",
    )
    pay.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_float,
        default=60.0,
        help="give up after this long (default: %(default)s)",
    )
    pay.add_argument(
        "--allow-http",
        action="store_true",
        help="allow a plain http:// SPSP URL to a host that is not loopback (unsafe: whoever "
        "can change the answer can redirect the payment)",
    )
    pay.add_argument(
        "--max-packet-amount",
        metavar="N",
        type=_amount,
        help="never more than N in one packet, without waiting for an F08 to say so (for a "
        "link that cannot carry F08 back, e.g. an LPI v1 account of ilp-connector)",
    )
    pay.add_argument(
        "--send-only",
        action="store_true",
        help="do not tell the receiver our address, so it sends us no packet (for a link that "
        "cannot carry zero-amount packets to us, e.g. an LPI v1 account of ilp-connector)",
    )
    pay.add_argument("--json", action="store_true", help="print the result as one JSON object")


def _add_plugin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin-config",
        metavar="FILE",
        required=True,
        help="JSON: one plugin's options or a one-ledger map, as `serve --config` reads",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default="ilp-paychan-data",
        help='where "store": true keeps the SQLite file (default: %(default)s)',
    )


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _amount(text: str) -> int:
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or int(value) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer in the plugin's units, got {text!r}"
        )
    return int(value)


def _rate(text: str) -> str:
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected a decimal number, got {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"expected a decimal number >= 0, got {text!r}")
    return text.strip()


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
    if args.command == "demo" and args.stream:
        from ilp_paychan.shell.stream_demo import stream_demo_main

        return stream_demo_main(args)
    if args.command == "demo":
        from ilp_paychan.shell.demo import demo_main

        return demo_main(args)
    if args.command == "receive":
        from ilp_paychan.shell.stream_commands import receive_main

        return receive_main(args)
    if args.command == "pay":
        from ilp_paychan.shell.stream_commands import pay_main

        return pay_main(args)
    if args.command == "status":
        from ilp_paychan.shell.status import status_main

        return status_main(args)
    parser.print_help()
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
