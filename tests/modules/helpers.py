"""Helpers of the module tests: plugin pairs made by `make_payment_channel_plugin` on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from ilp_paychan import Plugin
from testkit.waiting import wait_until as poll_until

PREFIX = "example.paychan."
SECRET = "module_secret"
INFO = {"prefix": PREFIX, "currencyCode": "XCL", "currencyScale": 6, "connectors": []}
WAIT = 15.0


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_transfer(
    to: str, amount: int | str = 10, expires_in: float = 30.0
) -> tuple[dict[str, Any], str]:
    """(an outgoing LPI transfer, its fulfillment)."""
    preimage = os.urandom(32)
    transfer = {
        "id": str(uuid.uuid4()),
        "to": to,
        "amount": str(amount),
        "executionCondition": b64url(hashlib.sha256(preimage).digest()),
        "expiresAt": (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat(),
    }
    return transfer, b64url(preimage)


#: Every hook of the example modules (a module is a namespace of hook functions).
MODULE_HOOKS = (
    "plugin_name",
    "constructor",
    "get_auth_token",
    "get_info",
    "get_account",
    "get_peer_account",
    "connect",
    "disconnect",
    "handle_incoming_prepare",
    "create_outgoing_claim",
    "handle_incoming_claim",
)


def module_variant(module: Any, **overrides: Any) -> SimpleNamespace:
    """`module`'s hooks as a new module, with some replaced (to simulate forgery or a crash)."""
    hooks = {name: getattr(module, name) for name in MODULE_HOOKS}
    hooks.update(overrides)
    return SimpleNamespace(**hooks)


def listener_port(plugin: Plugin) -> int:
    port = getattr(plugin, "listener_port", None)
    if port is None:
        port = plugin._link.port  # type: ignore[attr-defined]
    assert isinstance(port, int)
    return port


def server_options(**extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "listener": {"port": 0, "host": "127.0.0.1"},
        "incomingSecret": SECRET,
        "maxBalance": "1000000",
        "prefix": PREFIX,
        "info": dict(INFO),
        "store": "memory:",
    }
    options.update(extra)
    return options


def client_options(port: int, **extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "server": f"btp+ws://:{SECRET}@127.0.0.1:{port}",
        "maxBalance": "1000000",
        "prefix": PREFIX,
        "info": dict(INFO),
        "store": "memory:",
    }
    options.update(extra)
    return options


async def wait_until(predicate: Callable[[], Any], what: str = "condition") -> None:
    """Poll an (a)sync predicate until true, bounded by WAIT."""
    await poll_until(predicate, what, WAIT)


async def pay(sender: Plugin, receiver: Plugin, amount: int | str = 10) -> str:
    """One transfer sender → receiver, fulfilled by the receiver; returns its id."""
    transfer, fulfillment = make_transfer(receiver.get_account(), amount)
    await sender.send_transfer(transfer)
    await receiver.fulfill_condition(transfer["id"], fulfillment)
    return str(transfer["id"])


async def pay_many(
    sender: Plugin,
    receiver: Plugin,
    count: int,
    amount: int = 10,
    concurrency: int = 20,
    retries: int = 200,
) -> int:
    """`count` payments with `concurrency` in flight; a payment the receiver refuses (its
    unsecured limit is reached until claims catch up) is retried after a pause, at most
    `retries` times in all. Returns the number of refusals seen."""
    from ilp_paychan.errors import NotAcceptedError

    refusals = 0
    todo = count
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        nonlocal refusals
        async with gate:
            while True:
                try:
                    await pay(sender, receiver, amount)
                    return
                except NotAcceptedError as exc:
                    if "unsecured" not in str(exc) or refusals >= retries:
                        raise
                    refusals += 1
                await asyncio.sleep(0.01)

    await asyncio.gather(*(one() for _ in range(todo)))
    return refusals
