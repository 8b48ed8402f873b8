"""events.py: sync and async listeners, fire-and-forget, arity adaptation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ilp_paychan.plugin.events import EventEmitter


async def test_sync_listeners_run_inline_in_order() -> None:
    emitter = EventEmitter()
    seen: list[Any] = []
    emitter.on("x", lambda a: seen.append(("first", a)))
    emitter.on("x", lambda a: seen.append(("second", a)))
    emitter.emit("x", 1)
    assert seen == [("first", 1), ("second", 1)]


async def test_async_listeners_are_scheduled_not_awaited() -> None:
    emitter = EventEmitter()
    started = asyncio.Event()
    forever = asyncio.Event()

    async def slow(_: Any) -> None:
        started.set()
        await forever.wait()

    emitter.on("x", slow)
    emitter.emit("x", 1)  # returns at once although the listener never finishes
    await asyncio.wait_for(started.wait(), 5)
    forever.set()


async def test_listener_exceptions_are_logged_and_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emitter = EventEmitter()
    after: list[int] = []

    def broken(_: Any) -> None:
        raise RuntimeError("sync boom")

    async def broken_async(_: Any) -> None:
        raise RuntimeError("async boom")

    emitter.on("x", broken)
    emitter.on("x", broken_async)
    emitter.on("x", after.append)
    with caplog.at_level(logging.ERROR, logger="ilp_paychan.plugin"):
        emitter.emit("x", 7)
        await asyncio.sleep(0.01)
    assert after == [7]
    assert "sync boom" in caplog.text
    assert "async boom" in caplog.text


async def test_callbacks_get_only_the_arguments_they_accept() -> None:
    """Trailing arguments the reference did not pass must not break callbacks written for fewer."""
    emitter = EventEmitter()
    seen: list[Any] = []
    emitter.on(
        "incoming_fulfill", lambda transfer, fulfillment: seen.append((transfer, fulfillment))
    )
    emitter.on("incoming_fulfill", lambda *args: seen.append(args))
    emitter.emit("incoming_fulfill", "t", "f", "ilp")
    assert seen == [("t", "f"), ("t", "f", "ilp")]


async def test_off_removes_a_listener_and_unknown_pairs_are_ignored() -> None:
    emitter = EventEmitter()
    seen: list[int] = []
    emitter.on("x", seen.append)
    emitter.off("x", seen.append)
    emitter.off("y", seen.append)
    emitter.emit("x", 1)
    assert seen == []
    assert not emitter.has_listeners("x")


def test_bad_registrations_raise() -> None:
    emitter = EventEmitter()
    with pytest.raises(TypeError):
        emitter.on("x", "not callable")  # type: ignore[arg-type]
