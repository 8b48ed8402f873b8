"""The plugin's events: `on`/`off` and a fire-and-forget `emit`.

What this module is for: telling listeners what happened without ever letting them delay or break
the plugin. A sync callback runs inline; an async one is scheduled as a task; any exception is
logged and swallowed. It must never raise into the caller of `emit`.

Arity: some events carry more arguments than the reference passed (`incoming_fulfill` gets `ilp`,
`*_cancel` get the reason). A callback receives only as many positional arguments as
it accepts, so a callback written for the reference's shorter argument list keeps working.

Cost: `emit` of an event nobody listens to is one dict lookup, so the hot path pays nothing.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

log = logging.getLogger("ilp_paychan.plugin")

#: The events about one transfer's progress (each carries the transfer).
TRANSFER_EVENTS = (
    "incoming_prepare",
    "outgoing_prepare",
    "incoming_fulfill",
    "outgoing_fulfill",
    "incoming_reject",
    "outgoing_reject",
    "incoming_cancel",
    "outgoing_cancel",
    # The sender's answer to our Fulfill: acknowledged (paid), or refused as already cancelled
    # (the fulfilment was rolled back: not paid).
    "incoming_fulfill_confirmed",
    "incoming_fulfill_reverted",
)

EVENT_NAMES = frozenset(
    {
        "connect",
        "disconnect",
        *TRANSFER_EVENTS,
        "incoming_request",
        "outgoing_request",
        "incoming_response",
        "outgoing_response",
    }
)

Callback = Callable[..., Any]


def _accepted_positionals(callback: Callback) -> int | None:
    """How many positional arguments `callback` takes; None when it takes any number."""
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            count += 1
    return count


class EventEmitter:
    """Named events with sync or async listeners.

    With `names`, `on`/`off` refuse any other name: a listener registered under a misspelt
    event (`incomming_prepare`) would otherwise wait forever without a word.
    """

    def __init__(self, names: Collection[str] | None = None) -> None:
        self._listeners: dict[str, list[tuple[Callback, int | None]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._names = None if names is None else frozenset(names)

    def _check_name(self, name: object) -> None:
        if not isinstance(name, str):
            raise TypeError(f"event name must be a string; got {name!r}")
        if self._names is not None and name not in self._names:
            close = difflib.get_close_matches(name, sorted(self._names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown event {name!r}{hint}; the events are: {', '.join(sorted(self._names))}"
            )

    def on(self, name: str, callback: Callback) -> None:
        """Call `callback` on every `name` event, in registration order."""
        self._check_name(name)
        if not callable(callback):
            raise TypeError(f"callback must be callable; got {callback!r}")
        listeners = list(self._listeners.get(name, ()))
        listeners.append((callback, _accepted_positionals(callback)))
        self._listeners[name] = listeners

    def off(self, name: str, callback: Callback) -> None:
        """Remove one registration of `callback` for `name`; an unregistered callback is ignored."""
        self._check_name(name)
        listeners = list(self._listeners.get(name, ()))
        for index, (registered, _) in enumerate(listeners):
            if registered == callback:
                del listeners[index]
                break
        if listeners:
            self._listeners[name] = listeners
        else:
            self._listeners.pop(name, None)

    def has_listeners(self, name: str) -> bool:
        """Whether anyone listens to `name`, so a caller can skip building unused arguments."""
        return name in self._listeners

    def emit(self, name: str, *args: Any) -> None:
        """Call every listener of `name`; never raises, never waits."""
        listeners = self._listeners.get(name)
        if not listeners:
            return
        for callback, arity in listeners:
            call_args = args if arity is None or arity >= len(args) else args[:arity]
            try:
                result = callback(*call_args)
            except Exception:
                log.exception("listener of %r raised", name)
                continue
            if result is None:
                continue
            if isinstance(result, asyncio.Future):
                result.add_done_callback(self._future_done(name))
            elif inspect.isawaitable(result):
                self._schedule(name, result)

    @staticmethod
    def _future_done(name: str) -> Callable[[asyncio.Future[Any]], None]:
        """A listener returned a future or task already running: just log its failure."""

        def done(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is not None:
                log.error("async listener of %r raised", name, exc_info=future.exception())

        return done

    def _schedule(self, name: str, awaitable: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                log.exception("async listener of %r raised", name)

        try:
            task = asyncio.get_running_loop().create_task(run())
        except RuntimeError:
            log.error("async listener of %r needs a running event loop; skipped", name)
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
