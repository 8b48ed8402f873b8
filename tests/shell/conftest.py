"""Fixtures of the shell tests: the CLI as a subprocess, a running `serve`, example configs with
free ports, TLS files and PostgreSQL.

Every subprocess is bounded (a timeout on every wait) and killed at the end of its test.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgserver import postgres_url  # noqa: F401  (session fixture shared with other layers)
from testkit.cli import CLI, cli_env

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
WAIT = 30.0


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 90.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs `ilp-paychan ARGS` to completion and returns its output."""
    full_env = cli_env(env)
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load_example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return document


def only_ledger(document: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The single (prefix, entry) of an example ledger map."""
    assert len(document) == 1
    return next(iter(document.items()))


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document, indent=2))
    return path


class ServeProcess:
    """`ilp-paychan serve` in a subprocess with JSON logs, an admin port of its own choosing."""

    def __init__(
        self, config: Path, data_dir: Path, *extra: str, env: dict[str, str] | None = None
    ):
        self.config = config
        self.data_dir = data_dir
        self.extra = extra
        self.env = env
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None
        self.admin_url = ""

    def start(self) -> ServeProcess:
        args = [
            *CLI,
            "serve",
            "--admin",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
            str(self.data_dir),
            *self.extra,
        ]
        if self.config is not None:
            args += ["--config", str(self.config)]
        env = cli_env(self.env)
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            with self._lock:
                self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                found = re.search(r" ready .*admin=(\S+)", line)  # --log-format text
                if found:
                    self.admin_url = found.group(1)
                    self._ready.set()
                continue
            if not isinstance(event, dict):
                continue
            with self._lock:
                self.events.append(event)
            if event.get("event") == "ready":
                self.admin_url = str(event.get("admin", ""))
                self._ready.set()
        self._ready.set()  # the process ended: wake any waiter

    def wait_ready(self, timeout: float = WAIT) -> ServeProcess:
        assert self.proc is not None
        if not self._ready.wait(timeout) or not self.admin_url:
            raise AssertionError(f"serve did not get ready; log:\n{self.log_text()}")
        return self

    def log_text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def events_named(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("event") == name]

    def get(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) of GET admin_url + path."""
        with urllib.request.urlopen(self.admin_url + path, timeout=10) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read()

    def status(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.get("/status")[2])
        return document

    def stop(self, sig: int = signal.SIGTERM, timeout: float = WAIT) -> int:
        """Sends `sig` and waits for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"serve did not stop on {sig}; log:\n{self.log_text()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def serve_factory() -> Iterator[Any]:
    """`serve_factory(config, data_dir, *args)` starts a serve; all are killed at the end."""
    started: list[ServeProcess] = []

    def start(config: Path, data_dir: Path, *extra: str, **kw: Any) -> ServeProcess:
        process = ServeProcess(config, data_dir, *extra, **kw).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        found = dict(
            part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part
        )
        found = {k: v.strip('"') for k, v in found.items()}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt, server.crt (for 127.0.0.1, signed by the CA) and server.key in one folder."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tlsroot") / "tls"  # as the examples name it: tls/...
    folder.mkdir()
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ilp-paychan test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(ca_cert.public_bytes(pem))
    (folder / "server.crt").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder


def wait_until(condition: Any, what: str, limit: float = WAIT) -> None:
    """Polls a sync condition until true (bounded)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
