"""The ledger objects a module's `ctx` hands out, usable from the module's constructor on.

A module's `constructor` runs inside the plugin's constructor and asks `ctx.backend` for its
TransferLogs and MaxValueTrackers there, synchronously; but the plugin's Backend changes: before
connect() it is a stand-in whose durable store opens on first use, while connected it is bound to
the open store, and disconnect() closes it. So `ctx.backend` gives out handles that check the key
at once and find the real object of the plugin's current Backend on every call. They never cache
data, only the handle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ilp_paychan.ledger import Backend, MaxValueTracker, TransferLog
from ilp_paychan.ledger.inputs import check_key, parse_limit

_TRANSFER_LOG_METHODS = frozenset(
    name for name in dir(TransferLog) if not name.startswith("_") and name != "key"
)
_TRACKER_METHODS = frozenset({"get_max", "set_if_max"})


class _Deferred:
    """Forwards the async methods in `methods` to the object `resolve()` returns at call time."""

    __slots__ = ("_methods", "_resolve", "key")

    def __init__(self, resolve: Callable[[], Any], methods: frozenset[str], key: str) -> None:
        self._resolve = resolve
        self._methods = methods
        self.key = key

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name not in self._methods:
            raise AttributeError(name)

        async def forward(*args: Any, **kwargs: Any) -> Any:
            return await getattr(self._resolve(), name)(*args, **kwargs)

        forward.__name__ = name
        return forward

    def __repr__(self) -> str:
        return f"<{type(self).__name__} key={self.key!r}>"


class DeferredTransferLog(_Deferred):
    """A TransferLog handle that works from construction on (its calls need an open store)."""


class DeferredMaxValueTracker(_Deferred):
    """A MaxValueTracker handle that works from construction on (its calls need an open store)."""


class ModuleBackend:
    """`ctx.backend`: `get_transfer_log` / `get_max_value_tracker` usable before `connect()`."""

    __slots__ = ("_backend",)

    def __init__(self, current: Callable[[], Backend]) -> None:
        """`current` returns the plugin's Backend now."""
        self._backend = current

    def get_transfer_log(
        self,
        key: str | Mapping[str, Any] = "",
        maximum: int | str | None = None,
        minimum: int | str | None = None,
    ) -> DeferredTransferLog:
        """The TransferLog at `key` (base64url alphabet; the reference ignored a string key).

        Raises:
            ValueError: the key uses other characters.
            InvalidFieldsError: a limit is not an integer.
        """
        if isinstance(key, Mapping):
            options = key
            key = options.get("key", "")
            maximum = options.get("maximum", maximum)
            minimum = options.get("minimum", minimum)
        checked = check_key(key)
        parse_limit(maximum, "maximum")
        parse_limit(minimum, "minimum")
        handle: list[tuple[Backend, TransferLog]] = []

        def resolve() -> TransferLog:
            backend = self._backend()
            if not handle or handle[0][0] is not backend:
                handle[:] = [(backend, backend.get_transfer_log(checked, maximum, minimum))]
            return handle[0][1]

        return DeferredTransferLog(resolve, _TRANSFER_LOG_METHODS, checked)

    def get_max_value_tracker(self, key: str | Mapping[str, Any]) -> DeferredMaxValueTracker:
        """The MaxValueTracker at `key` (required; base64url alphabet).

        Raises:
            ValueError: the key is missing or uses other characters.
        """
        if isinstance(key, Mapping):
            key = key.get("key")  # type: ignore[assignment]
        checked = check_key(key, required=True)

        def resolve() -> MaxValueTracker:
            return self._backend().get_max_value_tracker(checked)

        return DeferredMaxValueTracker(resolve, _TRACKER_METHODS, checked)


def own_transfer_log(current: Callable[[], TransferLog], key: str) -> DeferredTransferLog:
    """`ctx.transfer_log`: the plugin's own TransferLog (at `key`), whichever one `current`
    returns at call time."""
    return DeferredTransferLog(current, _TRANSFER_LOG_METHODS, key)
