"""Configuration of mutual TLS: listener.clientCa, clientCert and clientKey are resolved like the
other TLS paths and checked, each problem naming its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.shell.config import ConfigError, parse_settings

SECRET = "s3cr3t-never-shown"
INFO = {"currencyCode": "EUR", "currencyScale": 9, "prefix": "g.x."}


def pem_files(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_text("-----BEGIN CERTIFICATE-----\n")  # only existence is checked


def listener_doc(**listener: Any) -> dict[str, Any]:
    return {
        "g.x.": {
            "options": {
                "listener": {"port": 0, **listener},
                "incomingSecret": SECRET,
                "info": INFO,
            }
        }
    }


def client_doc(**options: Any) -> dict[str, Any]:
    return {"g.x.": {"options": {"server": f"btp+wss://:{SECRET}@127.0.0.1:1", **options}}}


def test_client_ca_and_client_certificate_paths_resolve_against_the_config_folder(
    tmp_path: Path,
) -> None:
    pem_files(tmp_path, "server.crt", "server.key", "ca.crt", "client.crt", "client.key")
    [listener] = parse_settings(
        listener_doc(cert="server.crt", key="server.key", clientCa="ca.crt"), base_dir=tmp_path
    ).ledgers
    assert listener.options["listener"]["clientCa"] == str(tmp_path / "ca.crt")
    assert listener.describe()["client_certificates"] == "required"
    [client] = parse_settings(
        client_doc(ca="ca.crt", clientCert="client.crt", clientKey="client.key"),
        base_dir=tmp_path,
    ).ledgers
    assert client.options["clientCert"] == str(tmp_path / "client.crt")
    assert client.options["clientKey"] == str(tmp_path / "client.key")


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        (listener_doc(clientCa="ca.crt"), ('invalid "listener.clientCa"', 'needs "listener.cert"')),
        (
            listener_doc(cert="server.crt", key="server.key", clientCa="missing.crt"),
            ("options.listener.clientCa", "does not exist"),
        ),
        (client_doc(clientKey="client.key"), ('invalid "clientKey"', 'without "clientCert"')),
        (
            client_doc(clientCert="missing.crt", clientKey="client.key"),
            ("options.clientCert", "does not exist"),
        ),
    ],
    ids=["client-ca-without-tls", "client-ca-missing", "no-cert", "cert-missing"],
)
def test_mutual_tls_mistakes_name_the_field(
    tmp_path: Path, document: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    pem_files(tmp_path, "server.crt", "server.key", "ca.crt", "client.crt", "client.key")
    with pytest.raises(ConfigError) as caught:
        parse_settings(document, base_dir=tmp_path)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    assert SECRET not in message


def test_a_client_certificate_file_may_hold_its_key(tmp_path: Path) -> None:
    """As for the plugin (the transport loads the key from the cert file then)."""
    pem_files(tmp_path, "client.pem")
    [client] = parse_settings(client_doc(clientCert="client.pem"), base_dir=tmp_path).ledgers
    assert client.options["clientCert"] == str(tmp_path / "client.pem")
    assert "clientKey" not in client.options
