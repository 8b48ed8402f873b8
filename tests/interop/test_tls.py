"""BTP over TLS (btp+wss) between our plugin and the JS reference, both pairings.

One self-signed certificate for 127.0.0.1 serves as server certificate and CA. The reference's
client trusts only the platform store and has no CA option, so node is told about the test CA
with NODE_EXTRA_CA_CERTS; our client gets it through its `ca` option.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import SERVER_MAX, SideFactory, js_server_config, py_server_options
from .sides import SECRET, JsSide, PySide, Side, make_transfer, new_fulfillment

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ilp-paychan interop")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / "cert.pem"
    key_path = folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def round_trip(server: Side, client: Side) -> None:
    for sender, receiver, amount in ((client, server, "5"), (server, client, "2")):
        fulfillment, condition = new_fulfillment()
        transfer = make_transfer(sender.peer_account, amount, condition)
        await sender.send_transfer(transfer)
        await receiver.wait_transfer_event("incoming_prepare", transfer["id"])
        await receiver.fulfill(transfer["id"], fulfillment)
        await sender.wait_transfer_event("outgoing_fulfill", transfer["id"])
    assert await server.balance() == "3"
    assert int(await client.balance()) == -3
    assert await client.limit() == "-" + SERVER_MAX


async def test_py_tls_server_js_client(sides: SideFactory, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    options = py_server_options("memory:", max_balance=SERVER_MAX, min_balance=None)
    options["listener"] = {
        "port": 0,
        "host": "127.0.0.1",
        "cert": str(cert),
        "key": str(key),
        "ca": str(cert),
    }
    server = PySide(options, "server")
    sides.started.append(server)
    await server.connect()
    client = await JsSide.start(
        {"options": {"server": f"btp+wss://:{SECRET}@127.0.0.1:{server.port}"}},
        "client",
        env={"NODE_EXTRA_CA_CERTS": str(cert)},
    )
    sides.started.append(client)
    await client.connect()
    await round_trip(server, client)


async def test_js_tls_server_py_client(sides: SideFactory, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    config = js_server_config(max_balance=SERVER_MAX, min_balance=None)
    config["options"]["listener"] = {"port": 0, "cert": str(cert), "key": str(key), "ca": str(cert)}
    server = await JsSide.start(config, "server")
    sides.started.append(server)
    await server.connect()
    client = PySide(
        {"server": f"btp+wss://:{SECRET}@127.0.0.1:{server.port}", "ca": str(cert)}, "client"
    )
    sides.started.append(client)
    await client.connect()
    await round_trip(server, client)
