"""A real PostgreSQL for tests, on any machine: `postgres_url` names a fresh database.

Which server, in order:
1. the URL in the environment variable ILP_PAYCHAN_TEST_POSTGRES;
2. the development/CI server on 127.0.0.1:5432 (trust auth, user postgres, database test) if it
   answers;
3. a throwaway cluster: Debian's server is installed with apt-get when no `initdb` is found,
   `initdb` runs as the `postgres` system user (it refuses root) in a temporary directory, the
   server listens on 127.0.0.1 at a free port, and everything is removed afterwards.

Each session (so each xdist worker) creates its own database and drops it at the end. Use it from a
conftest with `from pgserver import postgres_url` (tests/ is on sys.path); `running_server()`
gives the admin URL to code that needs its own databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ENV_URL = "ILP_PAYCHAN_TEST_POSTGRES"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/test"
_INSTALL_LOCK = Path(tempfile.gettempdir()) / "ilp-paychan-postgres-install.lock"


def server_answers(url: str, timeout: float = 3.0) -> bool:
    """Whether a PostgreSQL server accepts a connection at `url`."""

    async def probe() -> None:
        connection = await asyncpg.connect(url, timeout=timeout)
        await connection.close()

    try:
        asyncio.run(probe())
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    return True


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database of the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _run_sql(url: str, *statements: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def drop_database(server: str, name: str) -> None:
    """Drop a test database even if a killed test left connections to it (FORCE: PG 13+)."""
    try:
        _run_sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except asyncpg.PostgresSyntaxError:
        _run_sql(
            server,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
            f'DROP DATABASE IF EXISTS "{name}"',
        )


def _find_bin(name: str) -> str | None:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    return shutil.which(name)


def _install_server() -> None:
    """apt-get install Debian's server, once per machine even with several xdist workers."""
    with open(_INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _find_bin("initdb") is not None:
            return
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "postgresql"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ThrowawayCluster:
    """A private PostgreSQL cluster in a temporary directory, loopback only."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ilp-paychan-pg-"))
        self.port = _free_port()
        self._pg_ctl = ""
        self._as_user: list[str] = []

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        initdb = _find_bin("initdb")
        if initdb is None:
            _install_server()
            initdb = _find_bin("initdb")
        if initdb is None:
            raise RuntimeError("no initdb found even after installing postgresql")
        self._pg_ctl = str(Path(initdb).with_name("pg_ctl"))
        if not Path(self._pg_ctl).exists():
            self._pg_ctl = _find_bin("pg_ctl") or "pg_ctl"
        if os.geteuid() == 0:
            owner = _system_user()
            self._as_user = ["runuser", "-u", owner, "--"]
            shutil.chown(self.root, user=owner)
        data = self.root / "data"
        subprocess.run(
            [*self._as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-N"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.resume()

    def resume(self) -> None:
        """Start the server on the cluster's data and port (again, after `halt()`)."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        subprocess.run(
            [
                *self._as_user,
                self._pg_ctl,
                "-D",
                str(self.root / "data"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "-l",
                str(self.root / "server.log"),
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def halt(self) -> None:
        """Stop the server at once (`pg_ctl -m immediate`: no clean shutdown, as if it crashed),
        keeping its data for `resume()`."""
        if self._pg_ctl:
            subprocess.run(
                [
                    *self._as_user,
                    self._pg_ctl,
                    "-D",
                    str(self.root / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        """Halt the server and remove the cluster."""
        self.halt()
        shutil.rmtree(self.root, ignore_errors=True)


def _system_user() -> str:
    """The unprivileged user that runs initdb and the server when we are root."""
    for name in ("postgres", "ilp-paychan-pg"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "ilp-paychan-pg"], check=True)
    return "ilp-paychan-pg"


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """Admin URL of a running server (see the module docstring for which one)."""
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    if server_answers(LOCAL_URL):
        yield LOCAL_URL
        return
    cluster = ThrowawayCluster()
    try:
        cluster.start()
        deadline = time.monotonic() + 60
        while not server_answers(cluster.url):
            if time.monotonic() > deadline:
                raise RuntimeError("throwaway PostgreSQL did not start")
            time.sleep(0.2)
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a database created for this test session (this xdist worker) and dropped after."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"ilp_test_{worker}_{uuid.uuid4().hex[:12]}"
    with running_server() as server:
        _run_sql(server, f'CREATE DATABASE "{name}"')
        try:
            yield with_database(server, name)
        finally:
            drop_database(server, name)
