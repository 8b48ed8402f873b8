"""Drive an in-process ilp-connector 23 and JavaScript end hosts (js_connector/harness.js).

The harness is one node process: an ilp-connector with the accounts a test configures (BTP 2.0
listeners and clients, mini-accounts, LPI v1 through ilp-plugin-payment-channel-framework), JS end
hosts attached to it (fulfiller, sender, STREAM server with SPSP, STREAM client) and stand-alone
ilp-plugin-btp peers. It speaks JSON lines: commands in on stdin, answers and events out on stdout
(tests/interop/README.md lists them). This wrapper installs the pinned packages with `npm ci`
once, starts the process, matches answers to commands, keeps every event, bounds every wait and
always ends the process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from .nodeproc import NodeProcess, npm_install

JS_DIR = Path(__file__).resolve().parent / "js_connector"
HARNESS = JS_DIR / "harness.js"


def fulfillment_for(data: bytes) -> bytes:
    """The fulfillment the harness's end hosts use for a Prepare carrying `data`: sha256(data)."""
    return hashlib.sha256(data).digest()


def condition_for(data: bytes) -> bytes:
    """The execution condition matching `fulfillment_for(data)`."""
    return hashlib.sha256(fulfillment_for(data)).digest()


def b64(raw: bytes) -> str:
    """Standard base64 text, the harness's encoding of every byte field."""
    return base64.b64encode(raw).decode("ascii")


def ensure_npm_project(directory: Path = JS_DIR, timeout: float = 300.0) -> None:
    """Run `npm ci` in `directory` (the harness's, by default) unless its install is current."""
    npm_install(directory, timeout)


class HarnessError(Exception):
    """A harness command failed; `name` is the JS error's name, `partial` any partial result."""

    def __init__(self, name: str, message: str, partial: dict[str, Any] | None = None) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.partial = partial


class HarnessDied(Exception):
    """The node process ended (or failed to start) while something waited for it."""


class ConnectorHarness(NodeProcess):
    """One running harness process; start it with `await ConnectorHarness.start(config)`."""

    DIED = HarnessDied
    FATAL_TEXT = "harness failed to start"
    STDERR_LIMIT = 400_000
    CLOSE_GRACE = 5.0

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        super().__init__(proc)
        self.ready: dict[str, Any] = {}

    @classmethod
    async def start(
        cls, config: dict[str, Any], *, ready_timeout: float = 40.0
    ) -> ConnectorHarness:
        """Spawn node with the harness and `config`; return once its `ready` line arrived."""
        harness, ready = await cls._launch(HARNESS, json.dumps(config), ready_timeout=ready_timeout)
        harness.ready = ready
        return harness

    # -- what `ready` reported ------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The connector's ILP address (empty when the config has no connector accounts)."""
        return str(self.ready.get("address") or "")

    def account(self, account_id: str) -> dict[str, Any]:
        """`ready`'s entry for a connector account: type, relation, port, url, address."""
        return dict(self.ready["accounts"][account_id])

    def account_url(self, account_id: str) -> str:
        """The btp+ws:// URL (with the secret) a Python client dials for a listener account."""
        return str(self.ready["accounts"][account_id]["url"])

    def host(self, name: str) -> dict[str, Any]:
        """`ready`'s entry for a JS end host: kind, address, and port or spsp when it has one."""
        return dict(self.ready["hosts"][name])

    def host_address(self, name: str) -> str:
        """The ILP address of a JS end host (from ILDCP for hosts attached to the connector)."""
        return str(self.ready["hosts"][name]["address"])

    # -- commands ------------------------------------------------------------------------------

    async def call(self, cmd: str, *, wait: float = 15.0, **fields: Any) -> dict[str, Any]:
        """Run one command; return its result or raise HarnessError (the JS error's name)."""
        answer = await self.call_raw(cmd, wait=wait, **fields)
        if answer.get("ok"):
            return dict(answer.get("result") or {})
        err = answer.get("error") or {}
        raise HarnessError(str(err.get("name")), str(err.get("message")), err.get("partial"))

    async def call_raw(self, cmd: str, *, wait: float = 15.0, **fields: Any) -> dict[str, Any]:
        """Run one command and return the raw answer line ({"id", "ok", "result" | "error"})."""
        return await self._request({"cmd": cmd, **fields}, wait)

    def events_named(self, name: str, **match: Any) -> list[dict[str, Any]]:
        """Every event `name` seen so far whose fields equal `match`."""
        return [
            e
            for e in self.events
            if e.get("event") == name and all(e.get(k) == v for k, v in match.items())
        ]

    async def wait_event(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        wait: float = 15.0,
        **match: Any,
    ) -> dict[str, Any]:
        """The first event `name` with fields `match` (and `predicate`), waiting `wait` s."""

        async def poll() -> dict[str, Any]:
            while True:
                self._changed.clear()
                for event in self.events_named(name, **match):
                    if predicate is None or predicate(event):
                        return event
                self.raise_if_dead()
                await self._changed.wait()

        return await asyncio.wait_for(poll(), wait)

    # -- commands, typed ------------------------------------------------------------------------

    async def wait_connected(
        self, *, account: str | None = None, host: str | None = None, wait: float = 15.0
    ) -> None:
        """Wait until a connector account's plugin (or a JS host's plugin) is connected."""
        fields: dict[str, Any] = {"timeoutMs": int(wait * 1000)}
        if account is not None:
            fields["account"] = account
        if host is not None:
            fields["host"] = host
        await self.call("wait_connected", wait=wait + 5, **fields)

    async def send(
        self,
        host: str,
        destination: str,
        amount: int | str,
        data: bytes = b"",
        *,
        condition: bytes | None = None,
        expires_in_ms: int | None = None,
        wait: float = 40.0,
    ) -> dict[str, Any]:
        """A JS host sends one Prepare; returns the reply described (type, code, fulfillment...).

        Without `condition` the Prepare carries `condition_for(data)`.
        """
        fields: dict[str, Any] = {
            "host": host,
            "destination": destination,
            "amount": str(amount),
            "data": b64(data),
        }
        if condition is not None:
            fields["executionCondition"] = b64(condition)
        if expires_in_ms is not None:
            fields["expiresInMs"] = expires_in_ms
        return await self.call("send", wait=wait, **fields)

    async def set_mode(self, host: str, mode: str, **fields: Any) -> None:
        """Make a JS plugin host fulfil, reject (`code`, `message`) or hang on incoming Prepares."""
        await self.call("set_mode", host=host, mode=mode, **fields)

    async def generate(self, host: str, connection_tag: str | None = None) -> tuple[str, bytes]:
        """A fresh (destination address, shared secret) from a JS STREAM server host."""
        fields: dict[str, Any] = {"host": host}
        if connection_tag is not None:
            fields["connectionTag"] = connection_tag
        result = await self.call("generate", **fields)
        return str(result["destination"]), base64.b64decode(result["secret"])

    async def received(self, host: str) -> dict[str, Any]:
        """A JS STREAM server host's totals: {"total", "connections": {destination: {...}}}."""
        return await self.call("received", host=host)

    async def pay(
        self,
        host: str,
        amount: int | str,
        *,
        destination: str | None = None,
        secret: bytes | None = None,
        spsp: str | None = None,
        data: bytes | None = None,
        wait: float = 30.0,
        **extra: Any,
    ) -> dict[str, Any]:
        """A JS STREAM client host pays `amount` to (destination, secret) or an SPSP URL.

        Returns {"sent", "delivered", "sourceAccount", "destination", "packets", "seconds"}.
        """
        fields: dict[str, Any] = {"host": host, "amount": str(amount), **extra}
        fields["timeoutMs"] = int(wait * 1000)
        if spsp is not None:
            fields["spsp"] = spsp
        else:
            if destination is None or secret is None:
                raise ValueError("pay needs destination and secret, or spsp")
            fields["destination"] = destination
            fields["secret"] = b64(secret)
        if data is not None:
            fields["data"] = b64(data)
        return await self.call("pay", wait=wait + 10, **fields)


class HarnessFactory:
    """Starts harness processes for one test and ends all of them at teardown."""

    def __init__(self) -> None:
        self.started: list[ConnectorHarness] = []

    async def start(self, config: dict[str, Any], **kwargs: Any) -> ConnectorHarness:
        """Start one harness with `config` (see tests/interop/README.md)."""
        harness = await ConnectorHarness.start(config, **kwargs)
        self.started.append(harness)
        return harness

    async def close(self) -> None:
        """End every harness this factory started."""
        for harness in reversed(self.started):
            await harness.close()


@contextlib.asynccontextmanager
async def running_harness(config: dict[str, Any], **kwargs: Any) -> AsyncIterator[ConnectorHarness]:
    """`async with running_harness(config) as h:` — a harness ended on the way out."""
    harness = await ConnectorHarness.start(config, **kwargs)
    try:
        yield harness
    finally:
        await harness.close()
