"""One validation path: `Plugin(options)` and `ilp-paychan serve --config` refuse the same options
with the same message (the plugin's, naming the field); the CLI only says which ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.shell.config import ConfigError, parse_settings

from .conftest import run_cli

SECRET = "s3cr3t-value-never-shown"
CLIENT: dict[str, Any] = {"server": f"btp+ws://:{SECRET}@127.0.0.1:1", "prefix": "g.x."}
LISTENER: dict[str, Any] = {
    "listener": {"port": 0, "host": "127.0.0.1"},
    "incomingSecret": SECRET,
    "prefix": "g.x.",
    "info": {"currencyCode": "EUR", "currencyScale": 2},
}

# (id, options) that both paths must refuse; each is a JSON-expressible options object
BAD_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("min-above-max", {**CLIENT, "store": "memory:", "maxBalance": "10", "minBalance": "20"}),
    ("listener-without-secret", {k: v for k, v in LISTENER.items() if k != "incomingSecret"}),
    ("prefix-without-dot", {**CLIENT, "prefix": "g.x"}),
    ("request-timeout-huge", {**CLIENT, "requestTimeout": 1e9}),
    ("request-timeout-zero", {**CLIENT, "requestTimeout": 0}),
    ("typo", {**CLIENT, "store": "memory:", "maxBalance": "10", "minBalence": "-5"}),
    ("listener-typo", {**LISTENER, "listener": {"prot": 4195}}),
    ("unsupported", {**CLIENT, "_backend": {}}),
    ("info-scale", {**LISTENER, "info": {"currencyScale": 256}}),
    ("info-prefix", {**LISTENER, "info": {"prefix": "g.y."}}),
    ("no-role", {"prefix": "g.x.", "info": {}, "incomingSecret": SECRET}),
    ("server-scheme", {**CLIENT, "server": f"http://:{SECRET}@127.0.0.1:1"}),
    ("store-scheme", {**CLIENT, "store": f"mysql://u:{SECRET}@h/db", "maxBalance": "1"}),
    ("secret-type", {**LISTENER, "incomingSecret": 987654321}),
    ("max-balance-type", {**CLIENT, "store": "memory:", "maxBalance": "12a"}),
    ("no-max-balance", {**CLIENT, "store": "memory:"}),
    ("ca-without-cert", {**LISTENER, "listener": {"port": 0, "ca": "ca.pem"}}),
]
IDS = [case[0] for case in BAD_OPTIONS]


def plugin_message(options: dict[str, Any]) -> str:
    with pytest.raises(InvalidFieldsError) as caught:
        Plugin(options)
    return str(caught.value)


@pytest.mark.parametrize("options", [case[1] for case in BAD_OPTIONS], ids=IDS)
def test_the_config_loader_refuses_with_the_plugins_message(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    expected = plugin_message(options)
    assert SECRET not in expected
    assert "987654321" not in expected
    with pytest.raises(ConfigError) as single:
        parse_settings(json.loads(json.dumps(options)), tmp_path, base_dir=tmp_path)
    name = options.get("prefix", "(options)")
    assert str(single.value) == f'ledger "{name}": {expected}'

    in_map = {k: v for k, v in options.items() if k != "prefix"}
    document = {options.get("prefix", "g.x."): {"options": in_map}}
    with pytest.raises(ConfigError) as mapped:
        parse_settings(json.loads(json.dumps(document)), tmp_path, base_dir=tmp_path)
    assert str(mapped.value) == f'ledger "{options.get("prefix", "g.x.")}": options: {expected}'


@pytest.mark.parametrize(
    "case",
    [
        "min-above-max",
        "listener-without-secret",
        "prefix-without-dot",
        "typo",
        "request-timeout-huge",
    ],
)
def test_serve_prints_the_plugins_message_and_exits_2(tmp_path: Path, case: str) -> None:
    options = dict(BAD_OPTIONS)[case]
    expected = plugin_message(options)
    config = tmp_path / "ledgers.json"
    config.write_text(json.dumps(options))
    result = run_cli(
        "serve", "--config", str(config), "--admin", "none", "--data-dir", str(tmp_path / "d")
    )
    assert result.returncode == 2, result.stderr
    name = options.get("prefix", "(options)")
    assert result.stderr == f'ilp-paychan serve: ledger "{name}": {expected}\n'
    assert SECRET not in result.stderr


def test_store_true_and_the_receiver_secret_stay_the_shells_own(tmp_path: Path) -> None:
    """What only a config file can say is resolved before the plugin's check runs."""
    document = {
        "g.x.": {"store": True, "options": {**CLIENT, "maxBalance": "5", "receiverSecret": "r"}}
    }
    (ledger,) = parse_settings(document, tmp_path / "data").ledgers
    assert ledger.store_url is not None
    assert ledger.store_url.startswith("sqlite:///")
    assert "receiverSecret" not in ledger.options
    Plugin(ledger.options)  # what the shell hands the plugin passes the plugin's check
