"""Configuration: good documents become settings; every bad one is one line naming ledger and
field, exits 2 from the CLI, and never shows a secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.shell.config import ConfigError, parse_settings, redact_url

from .conftest import EXAMPLES, load_example, run_cli

SECRET = "s3cr3t-value-never-shown"


def listener_entry(**options: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "listener": {"port": 4195, "host": "127.0.0.1"},
        "incomingSecret": SECRET,
        "maxBalance": "1000",
        "info": {"currencyCode": "EUR", "currencyScale": 9, "prefix": "g.x."},
    }
    base.update(options)
    return {"g.x.": {"currency": "EUR", "store": True, "options": base}}


def client_entry(**options: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"server": f"btp+ws://:{SECRET}@127.0.0.1:1234"}
    base.update(options)
    return {"g.x.": {"store": False, "options": base}}


# (id, config text or document, fragments the one line must contain)
BAD_CONFIGS: list[tuple[str, Any, tuple[str, ...]]] = [
    ("invalid-json", '{"g.x.": {', ("invalid JSON", "line 1")),
    ("not-an-object", "[1, 2]", ("expected a JSON object", "a list")),
    (
        "max-balance-not-integer",
        listener_entry(maxBalance="12a"),
        ('ledger "g.x."', 'options: invalid "maxBalance"', "integer string", "'12a'"),
    ),
    (
        "max-balance-missing-with-store",
        listener_entry(maxBalance=None),
        ('ledger "g.x."', 'options: invalid "maxBalance"', "required"),
    ),
    (
        "secret-not-a-string",
        listener_entry(incomingSecret=987654321),
        ('ledger "g.x."', 'options: invalid "incomingSecret"', "expected a string", "got int"),
    ),
    (
        "server-bad-scheme",
        client_entry(server=f"http://:{SECRET}@127.0.0.1:1"),
        ('ledger "g.x."', "options: server protocol must be", '"btp+ws:"'),
    ),
    (
        "port-as-string",
        listener_entry(listener={"port": "1234"}),
        ('ledger "g.x."', 'options: invalid "listener.port"', "0..65535", "'1234'"),
    ),
    (
        "port-out-of-range",
        listener_entry(listener={"port": 70000}),
        ('ledger "g.x."', 'options: invalid "listener.port"', "65535"),
    ),
    (
        "listener-without-info",
        listener_entry(info=None),
        ('ledger "g.x."', "options:", "'info'", "required"),
    ),
    (
        "no-role",
        {"g.x.": {"options": {"incomingSecret": SECRET}}},
        ('ledger "g.x."', "options", '"listener"', '"server"'),
    ),
    (
        "typo-in-entry",
        {"g.x.": {"stroe": True, "options": {"server": "btp+ws://:a@h:1"}}},
        ('ledger "g.x."', "stroe", "unknown field (did you mean 'store'?)"),
    ),
    (
        "key-not-a-prefix",
        {"g.x": {"options": {"server": "btp+ws://:a@h:1"}}},
        ('ledger "g.x"', 'invalid "prefix"', "ending with '.'"),
    ),
    (
        "store-url-unknown",
        client_entry(maxBalance="5", store=f"mysql://u:{SECRET}@h/db"),
        ('ledger "g.x."', 'options: invalid "store"', "store URL scheme 'mysql'"),
    ),
    (
        "postgres-schema-not-an-identifier",
        {
            "g.x.": {
                "store": f"postgresql://u:{SECRET}@h/db?schema=Bad-Name",
                "options": {"server": "btp+ws://:a@h:1", "maxBalance": "1"},
            }
        },
        ('ledger "g.x."', "store", "lowercase SQL identifier"),
    ),
    (
        "listener-without-secret",
        listener_entry(incomingSecret=None),
        ('ledger "g.x."', 'options: invalid "incomingSecret"', "required for a listener"),
    ),
    (
        "option-only-the-plugin-checks",
        client_entry(authCheck="not expressible in JSON"),
        ('ledger "g.x."', "authCheck", "callable"),
    ),
    (
        "tls-cert-missing-file",
        listener_entry(listener={"port": 1, "cert": "nope.crt", "key": "nope.key"}),
        ('ledger "g.x."', "options.listener.cert", "does not exist"),
    ),
    (
        "info-prefix-mismatch",
        listener_entry(info={"prefix": "g.other.", "currencyCode": "EUR", "currencyScale": 2}),
        ('ledger "g.x."', 'options: invalid "info.prefix"', "'g.other.'"),
    ),
    (
        "request-timeout-negative",
        client_entry(requestTimeout=-1),
        ('ledger "g.x."', 'options: invalid "requestTimeout"', "above 0"),
    ),
    (
        "duplicate-port",
        {
            **listener_entry(),
            "g.y.": {
                "options": {
                    "listener": {"port": 4195, "host": "127.0.0.1"},
                    "info": {},
                    "incomingSecret": "other",
                }
            },
        },
        ('ledger "g.y."', "options.listener.port", '"g.x."'),
    ),
    (
        "single-object-bad-token",
        {"server": "btp+ws://:a@127.0.0.1:1", "prefix": "g.s.", "token": ["x"]},
        ('ledger "g.s."', "token", "expected a string"),
    ),
]


def _text(config: Any) -> str:
    if isinstance(config, str):
        return config
    # None in an options object means "leave the field out"
    for entry in config.values():
        if isinstance(entry, dict) and isinstance(entry.get("options"), dict):
            entry["options"] = {k: v for k, v in entry["options"].items() if v is not None}
    return json.dumps(config)


@pytest.mark.parametrize(
    ("config", "fragments"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, config: Any, fragments: tuple[str, ...]):
    path = tmp_path / "bad.json"
    path.write_text(_text(config))
    result = run_cli(
        "serve", "--config", str(path), "--admin", "none", "--data-dir", str(tmp_path / "data")
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert SECRET not in result.stderr
    assert SECRET not in result.stdout
    assert "987654321" not in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was created for a refused config


def test_bad_config_from_environment_exits_2(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        "--admin",
        "none",
        env={"CONNECTOR_LEDGERS": _text(listener_entry(maxBalance="1.5"))},
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert 'ledger "g.x.": options: invalid "maxBalance"' in result.stderr


def test_no_config_at_all_exits_2() -> None:
    result = run_cli("serve", "--admin", "none")
    assert result.returncode == 2
    assert "CONNECTOR_LEDGERS" in result.stderr
    assert "--config" in result.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("serve", "--config", str(tmp_path / "absent.json"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


IN_PROCESS = [c for c in BAD_CONFIGS if not isinstance(c[1], str) and "plugin" not in c[0]]


@pytest.mark.parametrize("config", [c[1] for c in IN_PROCESS], ids=[c[0] for c in IN_PROCESS])
def test_bad_config_raises_config_error_in_process(tmp_path: Path, config: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(json.loads(_text(config)), tmp_path, base_dir=tmp_path)
    assert "\n" not in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        "server.json",
        "client.json",
        "tls-server.json",
        "tls-client.json",
        "postgres-server.json",
        "postgres-client.json",
        "single-options.json",
    ],
)
def test_every_example_parses(tmp_path: Path, name: str, tls_dir: Path) -> None:
    document = load_example(name)
    base = tls_dir.parent if "tls" in name else EXAMPLES
    settings = parse_settings(document, tmp_path, base_dir=base)
    assert settings.ledgers
    for ledger in settings.ledgers:
        text = json.dumps(ledger.describe())
        assert "shared_secret" not in text
        assert "change-me" not in text


def test_ilp_kit_map_key_becomes_prefix_and_store_true_is_sqlite_in_data_dir(tmp_path: Path):
    settings = parse_settings(load_example("server.json"), tmp_path / "data")
    (ledger,) = settings.ledgers
    assert ledger.name == "g.eur.mytrustline."
    assert ledger.options["prefix"] == "g.eur.mytrustline."
    assert ledger.store_url == "sqlite:///" + str(tmp_path / "data" / "g.eur.mytrustline.db")
    assert ledger.options["store"] == ledger.store_url
    assert ledger.role == "listener"


def test_store_false_is_stateless_and_secrets_stay_out_of_describe(tmp_path: Path) -> None:
    (ledger,) = parse_settings(load_example("client.json"), tmp_path).ledgers
    assert ledger.store_url is None
    assert "store" not in ledger.options
    assert ledger.describe()["server"] == "btp+ws://:***@127.0.0.1:1234"


def test_other_plugins_in_connector_ledgers_are_skipped(tmp_path: Path) -> None:
    document = {
        "g.us.usd.myledger.": {
            "currency": "USD",
            "plugin": "ilp-plugin-bells",
            "options": {"account": "https://x/accounts/a"},
        },
        **load_example("client.json"),
    }
    settings = parse_settings(document, tmp_path)
    assert [ledger.name for ledger in settings.ledgers] == ["g.eur.mytrustline."]
    assert settings.skipped == (("g.us.usd.myledger.", "ilp-plugin-bells"),)


def test_receiver_secret_is_taken_out_of_the_plugin_options(tmp_path: Path) -> None:
    (ledger,) = parse_settings(client_entry(receiverSecret="r"), tmp_path).ledgers
    assert ledger.receiver_secret == b"r"
    assert "receiverSecret" not in ledger.options


def test_limits_accept_json_integers_and_keep_strings(tmp_path: Path) -> None:
    (ledger,) = parse_settings(listener_entry(maxBalance=10**30, minBalance="-5"), tmp_path).ledgers
    assert ledger.options["maxBalance"] == str(10**30)
    assert ledger.options["minBalance"] == "-5"


def test_redact_url_hides_passwords() -> None:
    assert redact_url("postgresql://ilp:pw@db:5432/x") == "postgresql://ilp:***@db:5432/x"
    assert redact_url("btp+wss://:tok@h:1/p") == "btp+wss://:***@h:1/p"
    assert redact_url("sqlite:////var/x.db") == "sqlite:////var/x.db"
