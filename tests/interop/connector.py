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
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from .jspeer import npm_ci_command

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
    """Run `npm ci` in `directory` unless its node_modules matches package.json and the lock file.

    A file lock keeps parallel test workers from installing at once; a stamp written after a
    successful install makes later calls free.
    """
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((directory / name).read_bytes())
    wanted = digest.hexdigest()
    stamp = directory / "node_modules" / ".ilp-paychan-stamp"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (./dev test installs nodejs and npm)")
    lock_name = "ilp-paychan-npm-" + hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / (lock_name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if stamp.exists() and stamp.read_text() == wanted:
                return
            result = subprocess.run(
                npm_ci_command(npm),
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"npm ci failed ({result.returncode}):\n{result.stderr[-4000:]}")
            stamp.write_text(wanted)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class HarnessError(Exception):
    """A harness command failed; `name` is the JS error's name, `partial` any partial result."""

    def __init__(self, name: str, message: str, partial: dict[str, Any] | None = None) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.partial = partial


class HarnessDied(Exception):
    """The node process ended (or failed to start) while something waited for it."""


class ConnectorHarness:
    """One running harness process; start it with `await ConnectorHarness.start(config)`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._stderr: list[str] = []
        self._ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_stdout())
        self._err_reader = asyncio.create_task(self._read_stderr())
        self.ready: dict[str, Any] = {}

    @classmethod
    async def start(
        cls, config: dict[str, Any], *, ready_timeout: float = 40.0
    ) -> ConnectorHarness:
        """Spawn node with the harness and `config`; return once its `ready` line arrived."""
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed (./dev test installs nodejs and npm)")
        env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
        proc = await asyncio.create_subprocess_exec(
            node,
            str(HARNESS),
            json.dumps(config),
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=16 * 1024 * 1024,
        )
        harness = cls(proc)
        try:
            harness.ready = await asyncio.wait_for(asyncio.shield(harness._ready), ready_timeout)
        except BaseException:
            await harness.close()
            raise
        return harness

    async def __aenter__(self) -> ConnectorHarness:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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

    # -- process I/O ----------------------------------------------------------------------------

    @property
    def stderr(self) -> str:
        """What the process wrote to stderr so far (the connector's log), bounded."""
        return "".join(self._stderr)

    async def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        try:
            while True:
                line = await self._proc.stdout.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    self._stderr.append("[stdout] " + line.decode(errors="replace"))
                    continue
                if "id" in msg and msg["id"] in self._pending:
                    fut = self._pending.pop(msg["id"])
                    if not fut.done():
                        fut.set_result(msg)
                elif msg.get("event") in ("ready", "fatal") and not self._ready.done():
                    if msg["event"] == "ready":
                        self._ready.set_result(msg)
                    else:
                        self._ready.set_exception(
                            HarnessDied(f"harness failed to start: {msg.get('error')}")
                        )
                elif "event" in msg:
                    self.events.append(msg)
                    self._changed.set()
        finally:
            died = HarnessDied("node exited; stderr:\n" + self.stderr[-3000:])
            if not self._ready.done():
                self._ready.set_exception(died)
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(died)
            self._pending.clear()
            self._changed.set()

    async def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        size = 0
        while True:
            line = await self._proc.stderr.readline()
            if not line:
                return
            if size < 400_000:
                text = line.decode(errors="replace")
                self._stderr.append(text)
                size += len(text)

    def raise_if_dead(self) -> None:
        """Raise HarnessDied if the node process has ended."""
        if self._reader.done():
            raise HarnessDied("node exited; stderr:\n" + self.stderr[-2000:])

    async def call(self, cmd: str, *, wait: float = 15.0, **fields: Any) -> dict[str, Any]:
        """Run one command; return its result or raise HarnessError (the JS error's name)."""
        answer = await self.call_raw(cmd, wait=wait, **fields)
        if answer.get("ok"):
            return dict(answer.get("result") or {})
        err = answer.get("error") or {}
        raise HarnessError(str(err.get("name")), str(err.get("message")), err.get("partial"))

    async def call_raw(self, cmd: str, *, wait: float = 15.0, **fields: Any) -> dict[str, Any]:
        """Run one command and return the raw answer line ({"id", "ok", "result" | "error"})."""
        if self._proc.stdin is None or self._reader.done():
            raise HarnessDied("node is not running; stderr:\n" + self.stderr[-3000:])
        self._next_id += 1
        cid = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        request = {"id": cid, "cmd": cmd, **fields}
        self._proc.stdin.write((json.dumps(request) + "\n").encode())
        try:
            await self._proc.stdin.drain()
            return await asyncio.wait_for(fut, wait)
        finally:
            self._pending.pop(cid, None)

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

    async def close(self, grace: float = 5.0) -> None:
        """Close stdin (the harness shuts the connector down and exits); kill it if it lingers."""
        proc = self._proc
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), grace)
        for task in (self._reader, self._err_reader):
            if not task.done():
                try:
                    await asyncio.wait_for(task, grace)
                except (TimeoutError, asyncio.CancelledError):
                    task.cancel()

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
