"""The `ilp-paychan` command line: help, version, a cheap import, and the demo end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ilp_paychan import __version__

from .conftest import run_cli


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ilp-paychan {__version__}"


def test_help_lists_the_subcommands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "demo", "status"):
        assert command in result.stdout


def test_serve_help_names_the_environment_variable() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    assert "CONNECTOR_LEDGERS" in result.stdout
    assert "--data-dir" in result.stdout


def test_no_subcommand_prints_help_and_exits_2() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "usage:" in result.stdout


def test_bad_demo_argument_exits_2_with_usage() -> None:
    result = run_cli("demo", "--payments", "-5")
    assert result.returncode == 2
    assert "positive integer" in result.stderr


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("ilp-paychan")
    assert script.exists()
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_importing_the_cli_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, ilp_paychan.shell.cli; "
        "heavy = {'pydantic', 'websockets', 'rich', 'prometheus_client', 'asyncpg', 'asyncio'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_demo_end_to_end_json(tmp_path: Path) -> None:
    result = run_cli(
        "demo", "--payments", "80", "--in-flight", "10", "--json", "--store-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    balances = summary["balances"]
    assert balances["agree"] is True
    assert int(balances["server"]) == -int(balances["client"])
    assert balances["server"] == balances["server_change"] == balances["expected_server_change"]
    assert summary["prepared_left"] == {"server": 0, "client": 0}
    for direction in summary["directions"].values():
        outcomes = direction["outcomes"]
        assert outcomes["fulfilled"] >= 30
        assert outcomes["rejected"] >= 1
        assert outcomes["expired"] >= 1
        assert sum(outcomes.values()) == 40
        assert direction["errors"] == 0
    assert (tmp_path / "server.db").exists()
    assert (tmp_path / "client.db").exists()


def test_demo_prints_tables_without_a_tty() -> None:
    result = run_cli("demo", "--payments", "20")
    assert result.returncode == 0, result.stderr
    for heading in ("Balances", "Payments by outcome", "round trip p50", "OK"):
        assert heading in result.stdout
