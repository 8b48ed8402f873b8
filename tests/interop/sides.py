"""One interface over both implementations, so each interop scenario is written once.

A `Side` is one end of a BTP trustline: our Python `Plugin` (`PySide`) or the JavaScript reference
driven through `JsPeer` (`JsSide`). Calls take and return LPI-shaped data (decimal strings,
base64url conditions, ISO expiries); failures surface as `SideError` carrying the error's name and,
for an error the peer sent back over BTP, its ILP code — whatever shape each implementation gives
them (a Python `PeerError`, or the reference's generic Error whose message is the JSON of the
BTP Error).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ilp_paychan.errors import PeerError, PluginError
from ilp_paychan.plugin.events import EVENT_NAMES

from .jspeer import JsError, JsPeer, js_date

PREFIX = "test.interop."
SECRET = "interop_secret"
INFO: dict[str, Any] = {
    "prefix": PREFIX,
    "currencyCode": "USD",
    "currencyScale": 2,
    "connectors": [PREFIX + "server"],
}
SERVER_ACCOUNT = PREFIX + "server"
CLIENT_ACCOUNT = PREFIX + "client"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_fulfillment() -> tuple[str, str]:
    """A random (fulfillment, condition) pair as base64url strings."""
    preimage = os.urandom(32)
    return b64url(preimage), b64url(hashlib.sha256(preimage).digest())


def iso_in(seconds: float) -> str:
    """An expiry `seconds` from now, as the reference writes it (milliseconds, Z)."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_transfer(
    to: str, amount: str, condition: str, *, expires_in: float = 30.0, **extra: Any
) -> dict[str, Any]:
    transfer = {
        "id": str(uuid.uuid4()),
        "to": to,
        "amount": amount,
        "executionCondition": condition,
        "expiresAt": iso_in(expires_in),
    }
    transfer.update(extra)
    return transfer


@dataclass
class SideError(Exception):
    """A failed call: `name` as the failing implementation named it, `code` for remote errors."""

    name: str
    message: str
    code: str | None = None
    remote: bool = False

    def __str__(self) -> str:
        where = "remote" if self.remote else "local"
        return f"{where} {self.name} {self.code or ''}: {self.message}"


@dataclass
class EventLog:
    """Events seen by one side, in order, with a way to wait for one."""

    items: list[tuple[str, list[Any]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, name: str, args: list[Any]) -> None:
        self.items.append((name, args))
        self.changed.set()


class Side:
    """Common surface of PySide and JsSide (see those for the behaviour)."""

    kind = "?"
    role = "?"
    stateful = False

    @property
    def account(self) -> str:
        return SERVER_ACCOUNT if self.stateful else CLIENT_ACCOUNT

    @property
    def peer_account(self) -> str:
        return CLIENT_ACCOUNT if self.stateful else SERVER_ACCOUNT

    @property
    def port(self) -> int:
        raise NotImplementedError

    async def connect(self, wait: float = 10.0) -> None:
        raise NotImplementedError

    async def disconnect(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def send_transfer(self, transfer: Mapping[str, Any]) -> None:
        raise NotImplementedError

    async def fulfill(self, transfer_id: str, fulfillment: str, ilp: str | None = None) -> None:
        raise NotImplementedError

    async def reject(self, transfer_id: str, reason: Mapping[str, Any]) -> None:
        raise NotImplementedError

    async def send_request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def handle_requests(self, mode: str, spec: Mapping[str, Any] | None = None) -> None:
        """Answer requests: "echo" (ilp/custom as received), "fixed" (spec), "reject", "none"."""
        raise NotImplementedError

    async def auto_fulfill(self, fulfillments: list[str]) -> None:
        """Fulfil every incoming prepare whose condition is the hash of one of `fulfillments`."""
        raise NotImplementedError

    async def balance(self) -> str:
        raise NotImplementedError

    async def limit(self) -> str:
        raise NotImplementedError

    async def peer_balance(self) -> str:
        raise NotImplementedError

    async def info(self) -> Any:
        raise NotImplementedError

    async def get_account(self) -> str:
        raise NotImplementedError

    async def get_peer_account(self) -> str:
        raise NotImplementedError

    async def transfer_state(self, transfer_id: str) -> str | None:
        """The state in the side's own TransferLog, None when it has no record."""
        raise NotImplementedError

    def events_named(self, name: str) -> list[list[Any]]:
        raise NotImplementedError

    def _changed(self) -> asyncio.Event:
        """Set whenever an event is recorded."""
        raise NotImplementedError

    async def until(self, check: Callable[[], Any], *, wait: float = 10.0) -> Any:
        """Wait (at most `wait` s) until `check()` returns something truthy, and return it."""

        async def poll() -> Any:
            changed = self._changed()
            while True:
                changed.clear()
                found = check()
                if found:
                    return found
                self._raise_if_dead()
                await changed.wait()

        return await asyncio.wait_for(poll(), wait)

    def _raise_if_dead(self) -> None:
        """Stop waiting when the side can produce no more events."""

    async def wait_event(
        self,
        name: str,
        predicate: Callable[[list[Any]], bool] | None = None,
        *,
        wait: float = 10.0,
    ) -> list[Any]:
        """The args of the first event `name` (matching `predicate`)."""

        def find() -> list[Any] | None:
            for args in self.events_named(name):
                if predicate is None or predicate(args):
                    return [args]
            return None

        found = await self.until(find, wait=wait)
        return list(found[0])

    def transfer_events(self, name: str, transfer_id: str) -> list[list[Any]]:
        return [a for a in self.events_named(name) if a and _field(a[0], "id") == transfer_id]

    async def wait_transfer_event(
        self, name: str, transfer_id: str, *, wait: float = 10.0
    ) -> list[Any]:
        return await self.wait_event(
            name, lambda a: bool(a) and _field(a[0], "id") == transfer_id, wait=wait
        )


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _to_plain(value: Any) -> Any:
    """Python event arguments as JSON-like data (datetimes as ISO strings)."""
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class PySide(Side):
    """Our Plugin, with every event recorded."""

    kind = "py"

    def __init__(self, options: dict[str, Any], role: str) -> None:
        self.options = options
        self.role = role
        self.stateful = options.get("store") is not None
        from ilp_paychan import Plugin  # imported here so the harness loads without the plugin

        self.plugin = Plugin(options)
        self.log = EventLog()
        for name in EVENT_NAMES:
            self.plugin.on(name, self._recorder(name))
        self._auto: dict[str, str] = {}
        self.auto_failures: list[BaseException] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.log.add(name, [_to_plain(a) for a in args])
            if name == "incoming_prepare" and self._auto:
                self._maybe_auto_fulfill(args[0])

        return record

    def _maybe_auto_fulfill(self, transfer: Any) -> None:
        fulfillment = self._auto.get(str(_field(transfer, "executionCondition")))
        if fulfillment is None:
            return

        async def go() -> None:
            try:
                await self.plugin.fulfill_condition(str(_field(transfer, "id")), fulfillment)
            except Exception as exc:
                self.auto_failures.append(exc)

        task = asyncio.get_running_loop().create_task(go())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _error(exc: BaseException) -> SideError:
        if isinstance(exc, PeerError):
            return SideError(exc.name, str(exc), exc.code, remote=True)
        if isinstance(exc, PluginError):
            return SideError(type(exc).__name__, str(exc), exc.ilp_code)
        return SideError(type(exc).__name__, str(exc))

    async def _do(self, coro: Any) -> Any:
        try:
            return await coro
        except PluginError as exc:
            raise self._error(exc) from exc

    async def connect(self, wait: float = 10.0) -> None:
        await self._do(asyncio.wait_for(self.plugin.connect(), wait))

    async def disconnect(self) -> None:
        await self.plugin.disconnect()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.plugin.disconnect(), 5)

    @property
    def port(self) -> int:
        return listener_port(self.plugin)

    async def send_transfer(self, transfer: Mapping[str, Any]) -> None:
        await self._do(self.plugin.send_transfer(dict(transfer)))

    async def fulfill(self, transfer_id: str, fulfillment: str, ilp: str | None = None) -> None:
        await self._do(self.plugin.fulfill_condition(transfer_id, fulfillment, ilp))

    async def reject(self, transfer_id: str, reason: Mapping[str, Any]) -> None:
        await self._do(self.plugin.reject_incoming_transfer(transfer_id, dict(reason)))

    async def send_request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        result = await self._do(self.plugin.send_request(dict(message)))
        return dict(_to_plain(result))

    async def handle_requests(self, mode: str, spec: Mapping[str, Any] | None = None) -> None:
        self.plugin.deregister_request_handler()
        if mode == "none":
            return
        spec = dict(spec or {})

        async def handler(message: Mapping[str, Any]) -> dict[str, Any]:
            if mode == "reject":
                raise RuntimeError(spec.get("message", "refused by the interop peer"))
            source = message if mode == "echo" else spec
            answer: dict[str, Any] = {"to": self.peer_account, "from": self.account}
            for key in ("ilp", "custom"):
                if source.get(key):
                    answer[key] = source[key]
            return answer

        self.plugin.register_request_handler(handler)

    async def auto_fulfill(self, fulfillments: list[str]) -> None:
        self._auto = {
            b64url(hashlib.sha256(base64.urlsafe_b64decode(f + "=")).digest()): f
            for f in fulfillments
        }

    async def balance(self) -> str:
        return str(await self._do(self.plugin.get_balance()))

    async def limit(self) -> str:
        return str(await self._do(self.plugin.get_limit()))

    async def peer_balance(self) -> str:
        return str(await self._do(self.plugin.get_peer_balance()))

    async def info(self) -> Any:
        return _to_plain(self.plugin.get_info())

    async def get_account(self) -> str:
        return str(self.plugin.get_account())

    async def get_peer_account(self) -> str:
        return str(self.plugin.get_peer_account())

    async def transfer_state(self, transfer_id: str) -> str | None:
        try:
            record = await self.plugin.transfer_log.get(transfer_id)
        except PluginError:
            return None
        return str(record["state"])

    def events_named(self, name: str) -> list[list[Any]]:
        return [args for event, args in self.log.items if event == name]

    def _changed(self) -> asyncio.Event:
        return self.log.changed


def listener_port(plugin: Any) -> int:
    """The port a Python listener plugin bound (it was configured with port 0)."""
    for attr in ("port", "listener_port", "bound_port"):
        value = getattr(plugin, attr, None)
        if isinstance(value, int) and value:
            return value
    raise AssertionError("cannot find the Python listener's bound port")


class JsSide(Side):
    """The reference plugin in a node subprocess."""

    kind = "js"

    def __init__(self, peer: JsPeer, role: str, stateful: bool) -> None:
        self.peer = peer
        self.role = role
        self.stateful = stateful

    @classmethod
    async def start(
        cls, config: dict[str, Any], role: str, env: dict[str, str] | None = None
    ) -> JsSide:
        peer = await JsPeer.start(config, env=env)
        return cls(peer, role, bool(config.get("stateful")))

    @property
    def port(self) -> int:
        assert self.peer.port is not None
        return self.peer.port

    @staticmethod
    def _error(exc: JsError) -> SideError:
        # A BTP Error from the peer reaches the reference's caller as a generic Error whose
        # message is the JSON of the decoded BTP Error.
        if exc.name == "Error":
            try:
                packet = json.loads(exc.message)
            except ValueError:
                packet = None
            if isinstance(packet, dict) and "code" in packet and "name" in packet:
                try:
                    text = json.loads(packet.get("data") or "{}").get("message", "")
                except (ValueError, AttributeError):
                    text = str(packet.get("data"))
                return SideError(str(packet["name"]), str(text), str(packet["code"]), remote=True)
        return SideError(exc.name, exc.message)

    async def _call(self, cmd: str, *args: Any, **kw: Any) -> Any:
        try:
            return await self.peer.call(cmd, *args, **kw)
        except JsError as exc:
            raise self._error(exc) from exc

    async def connect(self, wait: float = 10.0) -> None:
        await self._call("connect", wait=wait + 2, driver_timeout=wait)

    async def disconnect(self) -> None:
        await self._call("disconnect")

    async def close(self) -> None:
        await self.peer.close()

    async def send_transfer(self, transfer: Mapping[str, Any]) -> None:
        await self._call("sendTransfer", dict(transfer))

    async def fulfill(self, transfer_id: str, fulfillment: str, ilp: str | None = None) -> None:
        await self._call("fulfillCondition", transfer_id, fulfillment, ilp)

    async def reject(self, transfer_id: str, reason: Mapping[str, Any]) -> None:
        reason = dict(reason)
        if isinstance(reason.get("triggered_at"), str):
            reason["triggered_at"] = js_date(reason["triggered_at"])
        await self._call("rejectIncomingTransfer", transfer_id, reason)

    async def send_request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        return dict(await self._call("sendRequest", dict(message)))

    async def handle_requests(self, mode: str, spec: Mapping[str, Any] | None = None) -> None:
        await self._call("deregisterRequestHandler")
        if mode != "none":
            await self._call("registerRequestHandler", mode, dict(spec or {}))

    async def auto_fulfill(self, fulfillments: list[str]) -> None:
        await self._call("autoFulfill", fulfillments)

    async def balance(self) -> str:
        return str(await self._call("getBalance"))

    async def limit(self) -> str:
        return str(await self._call("getLimit"))

    async def peer_balance(self) -> str:
        return str(await self._call("getPeerBalance"))

    async def info(self) -> Any:
        return await self._call("getInfo")

    async def get_account(self) -> str:
        return str(await self._call("getAccount"))

    async def get_peer_account(self) -> str:
        return str(await self._call("getPeerAccount"))

    async def transfer_state(self, transfer_id: str) -> str | None:
        try:
            record = await self._call("transferInfo", transfer_id)
        except SideError:
            return None
        if isinstance(record, str):  # the reference returns settled records as JSON text
            record = json.loads(record)
        return None if record is None else str(record.get("state"))

    def events_named(self, name: str) -> list[list[Any]]:
        return self.peer.events_named(name)

    def _changed(self) -> asyncio.Event:
        return self.peer.changed

    def _raise_if_dead(self) -> None:
        self.peer.raise_if_dead()


async def pay(sender: Side, receiver: Side, amount: str) -> dict[str, Any]:
    """One fulfilled transfer from sender to receiver."""
    fulfillment, condition = new_fulfillment()
    transfer = make_transfer(sender.peer_account, amount, condition)
    await sender.send_transfer(transfer)
    await receiver.wait_transfer_event("incoming_prepare", transfer["id"])
    await receiver.fulfill(transfer["id"], fulfillment)
    await sender.wait_transfer_event("outgoing_fulfill", transfer["id"])
    return transfer
