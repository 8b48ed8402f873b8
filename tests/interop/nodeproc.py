"""What every JavaScript helper of the tests shares: installing a pinned npm project, and one
node process spoken to in JSON lines.

`npm_install` runs `npm ci` in a folder unless its node_modules already matches package.json
and the lock file. `NodeProcess` is the process side of `jspeer.JsPeer` (the reference plugin)
and `connector.ConnectorHarness` (ilp-connector and JS end hosts): commands go in on stdin as
`{"id", "cmd", ...}`, answers come back with that id, every other line with an `event` is kept,
a `ready` (or `fatal`) line ends the start, every wait is bounded and the process always ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, ClassVar, TypeVar

#: npm before 9.8 (Debian 12 ships 9.2) crashes on an override of a git dependency (its override
#: matching feeds the git URL to semver); there the install runs a pinned newer npm via `npm exec`.
MIN_NPM = (9, 8)
FALLBACK_NPM = "npm@10.9.2"
NPM_CI_ARGS = ["ci", "--no-audit", "--no-fund", "--loglevel=error"]
STAMP_NAME = ".ilp-paychan-stamp"

_P = TypeVar("_P", bound="NodeProcess")


def npm_ci_command(npm: str) -> list[str]:
    """The `npm ci` command line for this machine's npm."""
    out = subprocess.run(
        [npm, "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    version = tuple(int(part) for part in re.findall(r"\d+", out)[:2])
    if version >= MIN_NPM:
        return [npm, *NPM_CI_ARGS]
    return [npm, "exec", "--yes", f"--package={FALLBACK_NPM}", "--", "npm", *NPM_CI_ARGS]


def npm_install(directory: Path, timeout: float = 300.0) -> None:
    """Run `npm ci` in `directory` unless its node_modules matches package.json and the lock file.

    A file lock in the temp dir keeps parallel test workers from installing at the same time;
    the stamp written after a successful install makes later calls free.
    """
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((directory / name).read_bytes())
    wanted = digest.hexdigest()
    stamp = directory / "node_modules" / STAMP_NAME
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


class NodeProcess:
    """One node process speaking JSON lines; subclasses say what its errors and events are."""

    #: Raised when the process ended (or failed to start) while something waited for it.
    DIED: ClassVar[type[Exception]] = RuntimeError
    #: What a `fatal` line at start-up is reported as (before its error text).
    FATAL_TEXT: ClassVar[str] = "node failed to start"
    #: How much of its stderr is kept, in characters.
    STDERR_LIMIT: ClassVar[int] = 200_000
    #: How long `close` waits for the process (and again after killing it).
    CLOSE_GRACE: ClassVar[float] = 3.0

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

    @classmethod
    async def _launch(
        cls: type[_P],
        script: Path,
        *args: str,
        ready_timeout: float,
        env: dict[str, str] | None = None,
    ) -> tuple[_P, dict[str, Any]]:
        """Spawn `node script args...` in the script's folder (DEBUG unset, `env` added); the
        process and its `ready` line, or the error of its start (the process then ended)."""
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed (./dev test installs nodejs and npm)")
        child_env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
        child_env.update(env or {})
        proc = await asyncio.create_subprocess_exec(
            node,
            str(script),
            *args,
            cwd=script.parent,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_env,
            limit=16 * 1024 * 1024,
        )
        child = cls(proc)
        try:
            ready = await asyncio.wait_for(asyncio.shield(child._ready), ready_timeout)
        except BaseException:
            await child.close()
            raise
        return child, ready

    async def __aenter__(self: _P) -> _P:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def stderr(self) -> str:
        """What the process wrote to stderr so far, bounded."""
        return "".join(self._stderr)

    def _event(self, msg: dict[str, Any]) -> dict[str, Any]:
        """An event line as it is kept (subclasses decode what they need)."""
        return msg

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
                            self.DIED(f"{self.FATAL_TEXT}: {msg.get('error')}")
                        )
                elif "event" in msg:
                    self.events.append(self._event(msg))
                    self._changed.set()
        finally:
            died = self.DIED("node exited; stderr:\n" + self.stderr[-3000:])
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
            if size < self.STDERR_LIMIT:
                text = line.decode(errors="replace")
                self._stderr.append(text)
                size += len(text)

    def raise_if_dead(self) -> None:
        """Raise `DIED` if the node process has ended."""
        if self._reader.done():
            raise self.DIED("node exited; stderr:\n" + self.stderr[-2000:])

    async def _request(self, fields: dict[str, Any], wait: float) -> dict[str, Any]:
        """Send `{"id": <next>, **fields}` and return the answer line with that id."""
        if self._proc.stdin is None or self._reader.done():
            raise self.DIED("node is not running; stderr:\n" + self.stderr[-3000:])
        self._next_id += 1
        cid = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        self._proc.stdin.write((json.dumps({"id": cid, **fields}) + "\n").encode())
        try:
            await self._proc.stdin.drain()
            return await asyncio.wait_for(fut, wait)
        finally:
            self._pending.pop(cid, None)

    async def close(self, grace: float | None = None) -> None:
        """Close stdin (the script ends what it runs and exits); kill it if it lingers."""
        grace = self.CLOSE_GRACE if grace is None else grace
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


def require_node() -> None:
    """Skip the calling test or fixture when node or npm is missing; in CI, where they must be
    there, fail instead."""
    import pytest

    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are required for the interop tests in CI")
        pytest.skip("node/npm not installed (./dev test installs them)")
