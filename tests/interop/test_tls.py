"""BTP over TLS (btp+wss) between our plugin and the JS reference, both pairings.

One self-signed certificate for 127.0.0.1 serves as server certificate and CA. The reference's
client trusts only the platform store and has no CA option, so node is told about the test CA
with NODE_EXTRA_CA_CERTS; our client gets it through its `ca` option.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.tls import write_self_signed

from .conftest import SERVER_MAX, SideFactory, js_server_config, py_server_options
from .sides import SECRET, JsSide, PySide, Side, pay

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_self_signed(tmp_path_factory.mktemp("tls"), "ilp-paychan interop")


async def round_trip(server: Side, client: Side) -> None:
    for sender, receiver, amount in ((client, server, "5"), (server, client, "2")):
        await pay(sender, receiver, amount)
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
