"""Drive one JavaScript reference plugin (tests/interop/js/peer.js) as a subprocess peer.

The driver speaks JSON lines: commands in on stdin, answers and plugin events out on stdout. This
wrapper matches answers to commands, keeps every event for later assertions, bounds every wait,
and always ends the process it started.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).resolve().parent / "js"
DRIVER = JS_DIR / "peer.js"
STAMP = JS_DIR / "node_modules" / ".ilp-paychan-stamp"


class JsError(Exception):
    """A driver command failed; `name` is the JS error's name (e.g. DuplicateIdError)."""

    def __init__(self, name: str, message: str, code: Any = None) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.code = code


class JsPeerDied(Exception):
    """The node process ended while a command was waiting for its answer."""


def js_date(value: datetime | str) -> dict[str, str]:
    """A value the driver turns into a JS Date (the reference wants Dates in rejection reasons)."""
    return {"$date": value if isinstance(value, str) else value.isoformat()}


def _from_wire(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$buffer"}:
            return base64.b64decode(value["$buffer"])
        return {k: _from_wire(v) for k, v in value.items()}
    return value


def _install_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((JS_DIR / name).read_bytes())
    return digest.hexdigest()


#: npm before 9.8 (Debian 12 ships 9.2) crashes on an override of a git dependency (its override
#: matching feeds the git URL to semver); there the install runs a pinned newer npm via `npm exec`.
MIN_NPM = (9, 8)
FALLBACK_NPM = "npm@10.9.2"
NPM_CI_ARGS = ["ci", "--no-audit", "--no-fund", "--loglevel=error"]


def npm_ci_command(npm: str) -> list[str]:
    """The `npm ci` command line for this machine's npm."""
    out = subprocess.run(
        [npm, "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    version = tuple(int(part) for part in re.findall(r"\d+", out)[:2])
    if version >= MIN_NPM:
        return [npm, *NPM_CI_ARGS]
    return [npm, "exec", "--yes", f"--package={FALLBACK_NPM}", "--", "npm", *NPM_CI_ARGS]


def ensure_node_modules(timeout: float = 300.0) -> None:
    """Install the pinned reference with `npm ci` unless node_modules matches the lock file.

    A file lock in the temp dir keeps parallel test workers from installing at the same time;
    the stamp written after a successful install makes later calls free.
    """
    wanted = _install_digest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (./dev test installs nodejs and npm)")
    lock_name = "ilp-paychan-npm-" + hashlib.sha256(str(JS_DIR).encode()).hexdigest()[:16] + ".lock"
    with open(Path(tempfile.gettempdir()) / lock_name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if STAMP.exists() and STAMP.read_text() == wanted:
                return
            result = subprocess.run(
                npm_ci_command(npm),
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"npm ci failed ({result.returncode}):\n{result.stderr[-4000:]}")
            STAMP.write_text(wanted)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class JsPeer:
    """One running reference plugin; use `await JsPeer.start(config)` or `async with`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._event_added = asyncio.Event()
        self._stderr: list[str] = []
        self._ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_stdout())
        self._err_reader = asyncio.create_task(self._read_stderr())
        self.port: int | None = None

    @classmethod
    async def start(
        cls,
        config: dict[str, Any],
        *,
        module: str | None = None,
        ready_timeout: float = 20.0,
        env: dict[str, str] | None = None,
    ) -> JsPeer:
        """Spawn node with the driver and wait for its `ready` line (`env`: extra variables)."""
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed (./dev test installs nodejs and npm)")
        argv = [node, str(DRIVER), json.dumps(config)]
        if module is not None:
            argv += ["--module", module]
        child_env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
        child_env.update(env or {})
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_env,
            limit=16 * 1024 * 1024,
        )
        peer = cls(proc)
        try:
            ready = await asyncio.wait_for(asyncio.shield(peer._ready), ready_timeout)
        except BaseException:
            await peer.close()
            raise
        peer.port = ready.get("port")
        return peer

    async def __aenter__(self) -> JsPeer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def stderr(self) -> str:
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
                        self._ready.set_exception(JsPeerDied(f"driver failed: {msg.get('error')}"))
                elif "event" in msg:
                    if "args" in msg:
                        msg["args"] = _from_wire(msg["args"])
                    self.events.append(msg)
                    self._event_added.set()
        finally:
            died = JsPeerDied("node exited; stderr:\n" + self.stderr[-3000:])
            if not self._ready.done():
                self._ready.set_exception(died)
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(died)
            self._pending.clear()
            self._event_added.set()

    async def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        size = 0
        while True:
            line = await self._proc.stderr.readline()
            if not line:
                return
            if size < 200_000:
                text = line.decode(errors="replace")
                self._stderr.append(text)
                size += len(text)

    async def call(
        self, cmd: str, *args: Any, wait: float = 10.0, driver_timeout: float | None = None
    ) -> Any:
        """Run one driver command; raise JsError with the JS error's name if it fails.

        `driver_timeout` (seconds) makes the driver itself give up on a call that the reference
        never settles (its client `connect()` after an auth refusal, for example).
        """
        answer = await self.call_raw(cmd, *args, wait=wait, driver_timeout=driver_timeout)
        if answer["ok"]:
            return _from_wire(answer.get("result"))
        err = answer.get("error") or {}
        raise JsError(str(err.get("name")), str(err.get("message")), err.get("code"))

    async def call_raw(
        self, cmd: str, *args: Any, wait: float = 10.0, driver_timeout: float | None = None
    ) -> dict[str, Any]:
        """Run one command and return the driver's raw answer object."""
        if self._proc.stdin is None or self._reader.done():
            raise JsPeerDied("node is not running; stderr:\n" + self.stderr[-3000:])
        self._next_id += 1
        cid = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        request: dict[str, Any] = {"id": cid, "cmd": cmd, "args": list(args)}
        if driver_timeout is not None:
            request["timeoutMs"] = int(driver_timeout * 1000)
        self._proc.stdin.write((json.dumps(request) + "\n").encode())
        try:
            await self._proc.stdin.drain()
            return await asyncio.wait_for(fut, wait)
        finally:
            self._pending.pop(cid, None)

    def events_named(self, name: str) -> list[list[Any]]:
        """The argument lists of every event of that name seen so far."""
        return [e.get("args", []) for e in self.events if e.get("event") == name]

    @property
    def changed(self) -> asyncio.Event:
        """Set whenever an event line arrives (or the process ends)."""
        return self._event_added

    def raise_if_dead(self) -> None:
        if self._reader.done():
            raise JsPeerDied("node exited; stderr:\n" + self.stderr[-2000:])

    async def wait_event(
        self,
        name: str,
        predicate: Callable[[list[Any]], bool] | None = None,
        *,
        wait: float = 10.0,
    ) -> list[Any]:
        """The args of the first event `name` (matching `predicate`), waiting `wait` s at most."""

        async def poll() -> list[Any]:
            while True:
                self._event_added.clear()
                for event in self.events:
                    if event.get("event") == name:
                        args = event.get("args", [])
                        if predicate is None or predicate(args):
                            return list(args)
                self.raise_if_dead()
                await self._event_added.wait()

        return await asyncio.wait_for(poll(), wait)

    async def close(self, grace: float = 3.0) -> None:
        """Close stdin (the driver disconnects and exits), then kill if it lingers."""
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
