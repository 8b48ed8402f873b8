"""Fixtures for the transport tests: loopback listeners, clients, raw sockets, a TLS certificate."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ilp_paychan.codec.btp import ContentType, Message, ProtocolData
from ilp_paychan.transport import BtpClient, BtpListener

SECRET = "shared_secret"
LOOPBACK = "127.0.0.1"


def auth_message(request_id: int, token: str = SECRET, username: str = "") -> Message:
    return Message(
        request_id,
        (
            ProtocolData("auth", ContentType.OCTET_STREAM, b""),
            ProtocolData("auth_username", ContentType.TEXT_PLAIN_UTF8, username.encode()),
            ProtocolData("auth_token", ContentType.TEXT_PLAIN_UTF8, token.encode()),
        ),
    )


async def eventually(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Wait (bounded) until `condition()` holds; a correctness check, not a speed check."""
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
async def listener() -> AsyncIterator[BtpListener]:
    server = BtpListener(0, LOOPBACK, incoming_secret=SECRET, auth_timeout=2.0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class ClientFactory:
    """Builds clients for a test and stops them all at its end."""

    def __init__(self) -> None:
        self.made: list[BtpClient] = []

    def __call__(
        self,
        port: int,
        token: str = SECRET,
        username: str = "",
        *,
        scheme: str = "btp+ws",
        ca: str | None = None,
        request_timeout: float = 5.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
    ) -> BtpClient:
        client = BtpClient(
            f"{scheme}://{username}:{token}@{LOOPBACK}:{port}",
            ca=ca,
            request_timeout=request_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            backoff_initial=0.02,
            backoff_max=0.2,
        )
        self.made.append(client)
        return client


@pytest.fixture
async def clients() -> AsyncIterator[ClientFactory]:
    factory = ClientFactory()
    try:
        yield factory
    finally:
        for client in factory.made:
            await client.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ilp-paychan test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
            ),
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
