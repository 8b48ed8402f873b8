"""TLS with a throwaway CA on loopback: server-only, and mutual (the listener checks clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ilp_paychan.codec.btp import Message, Response
from ilp_paychan.errors import InvalidFieldsError, UnreachableError
from ilp_paychan.transport import BtpClient, BtpListener
from ilp_paychan.transport.events import Request
from testkit.tls import ThrowawayCa

from .conftest import LOOPBACK, SECRET

pytestmark = pytest.mark.timeout(30)


@dataclass(frozen=True)
class Pki:
    """Two unrelated CAs and what they issued."""

    ca: Path  # the CA both sides trust
    other_ca: Path  # a CA nobody here trusts
    server: tuple[Path, Path]
    client: tuple[Path, Path]
    stranger: tuple[Path, Path]  # a client certificate from other_ca
    stranger_server: tuple[Path, Path]  # a server certificate from other_ca


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    good, bad = ThrowawayCa("ilp-paychan test CA"), ThrowawayCa("some other CA")
    return Pki(
        ca=good.write(folder / "ca.crt"),
        other_ca=bad.write(folder / "other-ca.crt"),
        server=good.issue(folder, "server"),
        client=good.issue(folder, "client", client=True),
        stranger=bad.issue(folder, "stranger", client=True),
        stranger_server=bad.issue(folder, "stranger-server"),
    )


async def echo(packet: Request) -> Response:
    return Response(0, packet.protocol_data)


def client_for(port: int, *, ca: Path | None, cert: tuple[Path, Path] | None = None) -> BtpClient:
    return BtpClient(
        f"btp+wss://:{SECRET}@{LOOPBACK}:{port}",
        ca=None if ca is None else str(ca),
        cert=None if cert is None else str(cert[0]),
        key=None if cert is None else str(cert[1]),
        request_timeout=3.0,
    )


async def works(client: BtpClient) -> None:
    """Connect, make one round trip, stop."""
    await client.start()
    try:
        assert isinstance(await client.request(Message(0, ())), Response)
    finally:
        await client.stop()


async def refused(client: BtpClient) -> str:
    """Connecting fails with UnreachableError; returns its message."""
    with pytest.raises(UnreachableError) as caught:
        await client.start()
    assert not client.is_open()
    await client.stop()
    return str(caught.value)


@pytest.fixture
async def tls_listener(pki: Pki) -> AsyncIterator[BtpListener]:
    cert, key = pki.server
    server = BtpListener(0, LOOPBACK, cert=str(cert), key=str(key), incoming_secret=SECRET)
    server.set_request_handler(echo)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def mtls_listener(pki: Pki) -> AsyncIterator[BtpListener]:
    cert, key = pki.server
    server = BtpListener(
        0, LOOPBACK, cert=str(cert), key=str(key), client_ca=str(pki.ca), incoming_secret=SECRET
    )
    server.set_request_handler(echo)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_server_only_tls_with_a_private_ca(tls_listener: BtpListener, pki: Pki) -> None:
    port = tls_listener.port
    await works(client_for(port, ca=pki.ca))
    await works(client_for(port, ca=pki.ca, cert=pki.client))  # a cert nobody asked for: fine
    assert "certificate" in (await refused(client_for(port, ca=None))).lower()  # system store
    assert "certificate" in (await refused(client_for(port, ca=pki.other_ca))).lower()
    await works(client_for(port, ca=pki.ca))  # the listener kept serving


async def test_mutual_tls_accepts_a_client_certificate_from_the_client_ca(
    mtls_listener: BtpListener, pki: Pki
) -> None:
    await works(client_for(mtls_listener.port, ca=pki.ca, cert=pki.client))
    assert mtls_listener.unauthenticated_count == 0


async def test_mutual_tls_refuses_clients_without_a_good_certificate(
    mtls_listener: BtpListener, pki: Pki
) -> None:
    port = mtls_listener.port
    await refused(client_for(port, ca=pki.ca))  # no certificate at all
    await refused(client_for(port, ca=pki.ca, cert=pki.stranger))  # signed by another CA
    assert not mtls_listener.is_open()
    await works(client_for(port, ca=pki.ca, cert=pki.client))  # the real peer still gets in


async def test_a_client_that_trusts_another_ca_refuses_the_server(
    mtls_listener: BtpListener, pki: Pki
) -> None:
    message = await refused(client_for(mtls_listener.port, ca=pki.other_ca, cert=pki.client))
    assert "certificate verify failed" in message
    assert not mtls_listener.is_open()


async def test_mutual_tls_trusts_only_the_client_ca_not_the_chain_ca(pki: Pki) -> None:
    # The server's own certificate comes from other_ca, sent as its chain with `ca`: that CA
    # must not vouch for clients, only client_ca does.
    cert, key = pki.stranger_server
    server = BtpListener(
        0,
        LOOPBACK,
        cert=str(cert),
        key=str(key),
        ca=str(pki.other_ca),
        client_ca=str(pki.ca),
        incoming_secret=SECRET,
    )
    server.set_request_handler(echo)
    await server.start()
    try:
        await refused(client_for(server.port, ca=pki.other_ca, cert=pki.stranger))
        await works(client_for(server.port, ca=pki.other_ca, cert=pki.client))
    finally:
        await server.stop()


async def test_tls_option_errors_name_the_field(pki: Pki, tmp_path: Path) -> None:
    cert, key = pki.server
    with pytest.raises(InvalidFieldsError, match=r"listener\.clientCa .*listener\.cert"):
        BtpListener(0, LOOPBACK, client_ca=str(pki.ca))
    unreadable = BtpListener(
        0, LOOPBACK, cert=str(cert), key=str(key), client_ca=str(tmp_path / "none.pem")
    )
    with pytest.raises(InvalidFieldsError, match=r"listener\.clientCa: cannot load"):
        await unreadable.start()
    with pytest.raises(InvalidFieldsError, match="clientKey is given but clientCert is not"):
        BtpClient(f"btp+wss://:{SECRET}@{LOOPBACK}:1", key=str(key))
    bad_cert = client_for(1, ca=pki.ca, cert=(tmp_path / "none.crt", tmp_path / "none.key"))
    with pytest.raises(InvalidFieldsError, match="clientCert/clientKey: cannot load"):
        await bad_cert.start()
