"""Fixtures of the interop suite: the pinned JS reference, and connected Python/JS plugin pairs.

The reference is installed with `npm ci` into tests/interop/js/node_modules the first time a test
needs it (once per machine, a few seconds; see jspeer.ensure_node_modules). Every pairing runs one
side in this process (our `Plugin`) and the other as a node subprocess (peer.js), both on
127.0.0.1 with ports picked by the OS.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pgserver import postgres_url  # noqa: F401  (session fixture: a real PostgreSQL database)

from .connector import HarnessFactory, ensure_npm_project
from .jspeer import ensure_node_modules
from .nodeproc import require_node
from .sides import INFO, PREFIX, SECRET, JsSide, PySide, Side

SERVER_MAX = "1000"
SERVER_MIN = "-500"
CLIENT_MAX = "2000"


@pytest.fixture(scope="session")
def js_reference() -> None:
    """The pinned reference is installed (the suite is skipped without node, except in CI)."""
    require_node()
    ensure_node_modules()


@pytest.fixture(scope="session")
def js_connector() -> None:
    """ilp-connector 23 and its plugins, pinned in js_connector/, are installed (`npm ci`)."""
    require_node()
    ensure_npm_project()


@pytest.fixture
async def harnesses(js_connector: None) -> AsyncIterator[HarnessFactory]:
    """Starts connector harnesses (js_connector/harness.js) for a test; all end at teardown."""
    factory = HarnessFactory()
    try:
        yield factory
    finally:
        await factory.close()


def py_server_options(
    store: str | None, *, max_balance: str, min_balance: str | None
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "listener": {"port": 0, "host": "127.0.0.1"},
        "incomingSecret": SECRET,
        "maxBalance": max_balance,
        "prefix": PREFIX,
        "info": dict(INFO),
        "store": store,
    }
    if min_balance is not None:
        options["minBalance"] = min_balance
    return options


def js_server_config(*, max_balance: str, min_balance: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "listener": {"port": 0},
        "incomingSecret": SECRET,
        "maxBalance": max_balance,
        "prefix": PREFIX,
        "info": dict(INFO),
    }
    if min_balance is not None:
        options["minBalance"] = min_balance
    return {"stateful": True, "options": options}


def client_url(port: int, secret: str = SECRET, username: str = "") -> str:
    return f"btp+ws://{username}:{secret}@127.0.0.1:{port}"


class SideFactory:
    """Starts sides for one test and closes all of them at the end, clients first."""

    def __init__(self, tmp_path: Path, postgres: str | None) -> None:
        self.tmp_path = tmp_path
        self.postgres = postgres
        self.started: list[Side] = []

    def store_url(self, kind: str | None, name: str) -> str | None:
        if kind is None:
            return None
        if kind == "memory":
            return "memory:"
        if kind == "sqlite":
            return f"sqlite:///{self.tmp_path / name}.db"
        if kind == "postgres":
            # one database per test session (pgserver); each test keeps its own log key in it
            assert self.postgres is not None, "parametrize with a value naming postgres"
            return self.postgres
        raise ValueError(kind)

    def store_options(self, kind: str | None, name: str) -> dict[str, Any]:
        options: dict[str, Any] = {"store": self.store_url(kind, name)}
        if kind == "postgres":
            options["storeKey"] = name + "-" + uuid.uuid4().hex
        return options

    async def py_server(
        self,
        store: str = "memory",
        *,
        max_balance: str = SERVER_MAX,
        min_balance: str | None = SERVER_MIN,
        **extra: Any,
    ) -> PySide:
        options = py_server_options(None, max_balance=max_balance, min_balance=min_balance)
        side = PySide({**options, **self.store_options(store, "server"), **extra}, "server")
        self.started.append(side)
        await side.connect()
        return side

    async def js_server(
        self, *, max_balance: str = SERVER_MAX, min_balance: str | None = SERVER_MIN
    ) -> JsSide:
        side = await JsSide.start(
            js_server_config(max_balance=max_balance, min_balance=min_balance), "server"
        )
        self.started.append(side)
        await side.connect()
        return side

    async def py_client(
        self,
        port: int,
        *,
        store: str | None = None,
        secret: str = SECRET,
        username: str = "",
        connect: bool = True,
    ) -> PySide:
        options: dict[str, Any] = {"server": client_url(port, secret, username)}
        if store is not None:
            options.update(self.store_options(store, "client"))
            options["maxBalance"] = CLIENT_MAX
        side = PySide(options, "client")
        self.started.append(side)
        if connect:
            await side.connect()
        return side

    async def js_client(
        self,
        port: int,
        *,
        stateful: bool = False,
        secret: str = SECRET,
        username: str = "",
        connect: bool = True,
    ) -> JsSide:
        options: dict[str, Any] = {"server": client_url(port, secret, username)}
        if stateful:
            options["maxBalance"] = CLIENT_MAX
        side = await JsSide.start({"stateful": stateful, "options": options}, "client")
        self.started.append(side)
        if connect:
            await side.connect()
        return side

    async def close(self) -> None:
        for side in reversed(self.started):
            await side.close()


@pytest.fixture
def postgres_if_named(request: pytest.FixtureRequest) -> str | None:
    """The session's PostgreSQL URL when one of the test's parameters names postgres.

    A sync fixture, because starting or probing the server runs its own event loop.
    """
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    if any("postgres" in str(value) for value in params):
        return str(request.getfixturevalue("postgres_url"))
    return None


@pytest.fixture
async def sides(
    js_reference: None, tmp_path: Path, postgres_if_named: str | None
) -> AsyncIterator[SideFactory]:
    factory = SideFactory(tmp_path, postgres_if_named)
    try:
        yield factory
    finally:
        await factory.close()


@dataclass
class Pair:
    """A connected server (listener) and client; one of them is the JS reference."""

    server: Side
    client: Side
    name: str

    def sides(self) -> tuple[Side, Side]:
        return self.server, self.client


PairMaker = Callable[[SideFactory], Awaitable[Pair]]


async def _py_memory_js(f: SideFactory) -> Pair:
    server = await f.py_server("memory")
    return Pair(server, await f.js_client(server.port), "py-memory server + js client")


async def _py_sqlite_js(f: SideFactory) -> Pair:
    server = await f.py_server("sqlite")
    return Pair(server, await f.js_client(server.port), "py-sqlite server + js client")


async def _js_py(f: SideFactory) -> Pair:
    server = await f.js_server()
    return Pair(server, await f.py_client(server.port), "js server + py client")


async def _py_sqlite_js_stateful(f: SideFactory) -> Pair:
    server = await f.py_server("sqlite")
    client = await f.js_client(server.port, stateful=True)
    return Pair(server, client, "py-sqlite server + stateful js client")


async def _js_py_stateful(f: SideFactory) -> Pair:
    server = await f.js_server()
    client = await f.py_client(server.port, store="sqlite")
    return Pair(server, client, "js server + stateful py-sqlite client")


#: The basic pairings (the reference's usual statefulness: stateful server, stateless
#: client), with our side on memory: and sqlite: stores.
BASIC_PAIRS: dict[str, PairMaker] = {
    "pyserver-memory+jsclient": _py_memory_js,
    "pyserver-sqlite+jsclient": _py_sqlite_js,
    "jsserver+pyclient": _js_py,
}
#: Both sides stateful (both keep limits and expire transfers themselves).
STATEFUL_PAIRS: dict[str, PairMaker] = {
    "pyserver-sqlite+jsclient-stateful": _py_sqlite_js_stateful,
    "jsserver+pyclient-stateful": _js_py_stateful,
}
ALL_PAIRS = {**BASIC_PAIRS, **STATEFUL_PAIRS}


async def _js_js(f: SideFactory) -> Pair:
    server = await f.js_server()
    return Pair(server, await f.js_client(server.port), "js server + js client")


if os.environ.get("INTEROP_SELFTEST"):
    # Harness self-check: the scenarios against the reference on both ends (not run in CI).
    BASIC_PAIRS = {"jsserver+jsclient": _js_js}
    ALL_PAIRS = dict(BASIC_PAIRS)


@pytest.fixture(params=list(BASIC_PAIRS))
async def pair(request: pytest.FixtureRequest, sides: SideFactory) -> Pair:
    return await BASIC_PAIRS[request.param](sides)


@pytest.fixture(params=list(ALL_PAIRS))
async def any_pair(request: pytest.FixtureRequest, sides: SideFactory) -> Pair:
    return await ALL_PAIRS[request.param](sides)
