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
    from rich.console import Console
    from rich.table import Table

    ledgers: dict[str, Any] = document.get("ledgers", {})
    title = f"ilp-paychan {document.get('version', '?')}: {document.get('state', '?')}"
    table = Table(title=title)
    for column in ("ledger", "role", "peer"):
        table.add_column(column)
    for column in ("balance", "min", "max", "prepared", "in flight"):
        table.add_column(column, justify="right")
    for name, entry in ledgers.items():
        peer = "up" if entry.get("peer_connected") else "down"
        if entry.get("error"):
            peer = f"error: {entry['error']}"
        table.add_row(
            name,
            str(entry.get("role", "")),
            peer,
            str(entry.get("balance", "")),
            str(entry.get("minBalance", "")),
            str(entry.get("maxBalance", "")),
            str(entry.get("prepared", "")),
            "" if entry.get("in_flight") is None else str(entry["in_flight"]),
        )
    Console().print(table)
