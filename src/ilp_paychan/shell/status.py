"""`ilp-paychan status`: asks a running `serve` for its `/status` and prints it."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from ilp_paychan.shell.admin import parse_address

TIMEOUT = 10.0


def fetch_status(address: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """GET /status from the admin endpoint at `HOST:PORT`; raises OSError or ValueError."""
    host, port = parse_address(address)
    shown = f"[{host}]" if ":" in host else host
    with urllib.request.urlopen(f"http://{shown}:{port}/status", timeout=timeout) as reply:
        document = json.loads(reply.read())
    if not isinstance(document, dict):
        raise ValueError("the endpoint did not answer a JSON object")
    return document


def status_main(args: argparse.Namespace) -> int:
    """`ilp-paychan status`: a running `serve`'s /status as tables (or JSON); the exit code."""
    try:
        document = fetch_status(args.admin)
    except (OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        print(f"ilp-paychan status: cannot query {args.admin}: {reason}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    _print_table(document)
    return 0


def _print_table(document: dict[str, Any]) -> None:
    """One two-column table per ledger: fits an 80-column pipe as well as a terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"ilp-paychan {document.get('version', '?')}: {document.get('state', '?')}")
    ledgers: dict[str, Any] = document.get("ledgers", {})
    for name, entry in ledgers.items():
        table = Table(title=name, show_header=False, title_justify="left")
        table.add_column("field")
        table.add_column("value", overflow="fold")
        for key in _SHOWN:
            if key in entry and entry[key] is not None:
                table.add_row(key, _cell(entry[key]))
        console.print(table)


def _cell(value: Any) -> str:
    """A value as one table cell; a v2 ledger's nested counts read
    `incoming: prepare 3, fulfill 1; outgoing: ...`."""
    if not isinstance(value, dict):
        return str(value)
    parts = []
    for key, inner in value.items():
        if isinstance(inner, dict):
            counts = ", ".join(f"{name} {count}" for name, count in inner.items()) or "none"
            parts.append(f"{key}: {counts}")
        else:
            parts.append(f"{key}: {inner}")
    return "; ".join(parts)


_SHOWN = (
    "plugin",
    "role",
    "listen",
    "server",
    "tls",
    "store",
    "currency",
    "connected",
    "peer_connected",
    "account",
    "peer_account",
    "balance",
    "minBalance",
    "maxBalance",
    "settleThreshold",
    "settleTo",
    "incomingPrepared",
    "outgoingPrepared",
    "moneySent",
    "moneyReceived",
    "prepared",
    "in_flight",
    "packets",
    "reject_codes",
    "reconnects",
    "error",
)
