"""`serve` start-up errors say what to do: the busy address, the option to change, the ledgers
found. Each runs the real CLI and reads the one line it prints."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import free_port, run_cli, write_config

PREFIX = "g.start."


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port somebody else is listening on."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        yield blocker.getsockname()[1]


def listener_ledger(port: int, **options: Any) -> dict[str, Any]:
    return {
        PREFIX: {
            "options": {
                "listener": {"port": port, "host": "127.0.0.1"},
                "incomingSecret": "shared_secret",
                "info": {"currencyCode": "EUR", "currencyScale": 2},
                **options,
            }
        }
    }


def start_failed(stderr: str) -> dict[str, Any]:
    """The one start_failed event of a JSON-logging serve."""
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    failures = [e for e in events if e.get("event") == "start_failed"]
    assert len(failures) == 1, stderr
    return failures[0]


def test_an_admin_port_in_use_says_to_use_the_admin_option(tmp_path: Path, busy_port: int) -> None:
    config = write_config(tmp_path / "c.json", listener_ledger(free_port()))
    result = run_cli(
        "serve",
        "--config",
        str(config),
        "--admin",
        f"127.0.0.1:{busy_port}",
        "--log-format",
        "json",
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    failure = start_failed(result.stderr)
    assert failure["component"] == "admin endpoint"
    assert failure["address"] == f"127.0.0.1:{busy_port}"
    assert failure["error"] == "Address already in use"
    assert failure["hint"] == (
        "use --admin HOST:PORT to pick another address (port 0 takes a free one), "
        "or --admin none to run without it"
    )


def test_a_listener_port_in_use_names_host_and_port(tmp_path: Path, busy_port: int) -> None:
    config = write_config(tmp_path / "c.json", listener_ledger(busy_port))
    result = run_cli(
        "serve", "--config", str(config), "--admin", "none", "--log-format", "json", timeout=60
    )
    assert result.returncode == 1, result.stderr
    failure = start_failed(result.stderr)
    assert failure["ledger"] == PREFIX
    assert failure["error"] == (
        "InvalidFieldsError: listener.port: cannot listen on "
        f"127.0.0.1:{busy_port}: Address already in use"
    )


def test_a_store_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").mkdir()
    store = f"sqlite:///{tmp_path}/ledger.db"
    config = write_config(
        tmp_path / "c.json", listener_ledger(free_port(), store=store, maxBalance="10")
    )
    result = run_cli(
        "serve", "--config", str(config), "--admin", "none", "--log-format", "json", timeout=60
    )
    assert result.returncode == 1, result.stderr
    failure = start_failed(result.stderr)
    assert failure["error"].startswith(
        f"StoreOpenError: cannot open store {store} (path {tmp_path}/ledger.db): "
        "the path is a folder, not a file"
    )


def test_no_ledger_for_this_plugin_lists_what_was_found(tmp_path: Path) -> None:
    document = {
        "g.us.usd.bells.": {"plugin": "ilp-plugin-bells", "options": {}},
        "g.xrp.escrow.": {"plugin": "ilp-plugin-xrp-escrow", "options": {}},
    }
    config = write_config(tmp_path / "c.json", document)
    result = run_cli("serve", "--config", str(config), "--admin", "none")
    assert result.returncode == 2
    assert result.stderr == (
        'ilp-paychan serve: config: no ledger uses plugin "ilp-plugin-payment-channel-framework",'
        ' "ilp-plugin-virtual" or "ilp-plugin-btp"; found 2 ledger(s) with other plugins:'
        ' "g.us.usd.bells." '
        '(ilp-plugin-bells), "g.xrp.escrow." (ilp-plugin-xrp-escrow)\n'
    )
