"""Drive one JavaScript reference plugin (tests/interop/js/peer.js) as a subprocess peer.

The driver speaks JSON lines: commands in on stdin, answers and plugin events out on stdout. This
wrapper matches answers to commands, keeps every event for later assertions, bounds every wait,
and always ends the process it started.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from .nodeproc import NodeProcess, npm_install

JS_DIR = Path(__file__).resolve().parent / "js"
DRIVER = JS_DIR / "peer.js"


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


def ensure_node_modules(timeout: float = 300.0) -> None:
    """Install the pinned reference with `npm ci` unless node_modules matches the lock file."""
    npm_install(JS_DIR, timeout)


class JsPeer(NodeProcess):
    """One running reference plugin; use `await JsPeer.start(config)` or `async with`."""

    DIED = JsPeerDied
    FATAL_TEXT = "driver failed"

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        super().__init__(proc)
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
        args = [json.dumps(config)]
        if module is not None:
            args += ["--module", module]
        peer, ready = await cls._launch(DRIVER, *args, ready_timeout=ready_timeout, env=env)
        peer.port = ready.get("port")
        return peer

    def _event(self, msg: dict[str, Any]) -> dict[str, Any]:
        if "args" in msg:
            msg["args"] = _from_wire(msg["args"])
        return msg

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
        request: dict[str, Any] = {"cmd": cmd, "args": list(args)}
        if driver_timeout is not None:
            request["timeoutMs"] = int(driver_timeout * 1000)
        return await self._request(request, wait)

    def events_named(self, name: str) -> list[list[Any]]:
        """The argument lists of every event of that name seen so far."""
        return [e.get("args", []) for e in self.events if e.get("event") == name]

    @property
    def changed(self) -> asyncio.Event:
        """Set whenever an event line arrives (or the process ends)."""
        return self._changed

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
                self._changed.clear()
                for event in self.events:
                    if event.get("event") == name:
                        args = event.get("args", [])
                        if predicate is None or predicate(args):
                            return list(args)
                self.raise_if_dead()
                await self._changed.wait()

        return await asyncio.wait_for(poll(), wait)
