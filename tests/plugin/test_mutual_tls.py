"""Two plugins over mutual TLS, configured through the plugin options (listener.clientCa,
clientCert, clientKey): the right certificate pays, no certificate cannot connect."""

from __future__ import annotations

import pytest

from ilp_paychan import Plugin
from ilp_paychan.errors import InvalidFieldsError, UnreachableError
from testkit.tls import ThrowawayCa

from .conftest import SECRET, Recorder, client_options, make_transfer, server_options

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("mtls")
    ca = ThrowawayCa("plugin test CA")
    server_cert, server_key = ca.issue(folder, "server")
    client_cert, client_key = ca.issue(folder, "client", client=True)
    return {
        "ca": str(ca.write(folder / "ca.crt")),
        "server_cert": str(server_cert),
        "server_key": str(server_key),
        "client_cert": str(client_cert),
        "client_key": str(client_key),
    }


def wss(port: int) -> str:
    return f"btp+wss://:{SECRET}@127.0.0.1:{port}"


async def test_a_pair_over_mutual_tls_pays_and_a_client_without_certificate_is_refused(
    pki: dict[str, str],
) -> None:
    listener_opts = {
        "port": 0,
        "host": "127.0.0.1",
        "cert": pki["server_cert"],
        "key": pki["server_key"],
        "clientCa": pki["ca"],
    }
    server = Plugin(server_options(listener=listener_opts))
    await server.connect()
    assert server.listener_port is not None
    port = server.listener_port
    try:
        anonymous = Plugin(client_options(port, server=wss(port), ca=pki["ca"]))
        with pytest.raises(UnreachableError):
            await anonymous.connect()
        client = Plugin(
            client_options(
                port,
                server=wss(port),
                ca=pki["ca"],
                clientCert=pki["client_cert"],
                clientKey=pki["client_key"],
            )
        )
        events = Recorder(server, "incoming_prepare")
        await client.connect()
        try:
            transfer, _ = make_transfer(client.get_peer_account(), amount="5")
            await client.send_transfer(transfer)
            [(seen,)] = await events.wait("incoming_prepare")
            assert seen["id"] == transfer["id"]
        finally:
            await client.disconnect()
    finally:
        await server.disconnect()


def test_client_ca_without_a_certificate_and_a_key_without_a_cert_are_refused(
    pki: dict[str, str],
) -> None:
    with pytest.raises(InvalidFieldsError, match=r"listener\.clientCa"):
        Plugin(server_options(listener={"port": 0, "clientCa": pki["ca"]}))
    with pytest.raises(InvalidFieldsError, match="clientKey"):
        Plugin(client_options(1, clientKey=pki["client_key"]))
    with pytest.raises(InvalidFieldsError, match=r"listener\.clientCa"):
        Plugin(server_options(listener={"port": 0, "cert": "c.pem", "clientCa": 7}))
